package inventory

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Report is what a consistency check found. The invariants are: the schema
// version is known; every record decodes (tag, version, checksum, valid
// values) and sits under its own key; every VIF's VM is stored; no record's
// generation exceeds the store's.
type Report struct {
	// Generation is the store generation after the check (and repair).
	Generation uint64 `json:"generation"`
	// VMs counts the VM records that passed.
	VMs int `json:"vms"`
	// VIFs counts the VIF records that passed.
	VIFs int `json:"vifs"`
	// Problems lists what failed, with what was done about it.
	Problems []Problem `json:"problems,omitempty"`

	wrote bool // the check modified the file (created buckets or repaired)
}

// OK reports whether the check found nothing wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Problem is one failed invariant.
type Problem struct {
	// Bucket is where: "meta", "vms" or "vifs".
	Bucket string `json:"bucket"`
	// Key is the record's key in hex (or the meta key's name).
	Key string `json:"key"`
	// Detail says what is wrong.
	Detail string `json:"detail"`
	// Action says what the repair did: "quarantined" (the record moved to
	// the quarantine bucket, from where the next full reconcile's data
	// replaces it), "generation raised", or "none" (read-only check).
	Action string `json:"action"`
}

// check verifies the file inside tx and, when repair is set (tx writable),
// creates missing buckets, quarantines bad records and fixes the generation.
// Every repair raises the generation by one, so that observers of the
// generation (the LLDP inventory digest) see that the content changed.
func check(ctx context.Context, tx *bolt.Tx, repair bool) (Report, error) {
	var r Report
	meta := tx.Bucket(bucketMeta)
	fresh := meta == nil && tx.Bucket(bucketVMs) == nil && tx.Bucket(bucketVIFs) == nil
	if repair {
		for _, name := range [][]byte{bucketMeta, bucketVMs, bucketVIFs, bucketQuarantine} {
			if tx.Bucket(name) != nil {
				continue
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return r, fmt.Errorf("create bucket %s: %w", name, err)
			}
			r.wrote = true
			if !fresh {
				r.Problems = append(r.Problems, Problem{Bucket: string(name), Detail: "bucket missing", Action: "created"})
			}
		}
		meta = tx.Bucket(bucketMeta)
		if meta.Get(keySchema) == nil {
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return r, fmt.Errorf("write schema version: %w", err)
			}
			r.wrote = true
			if !fresh {
				r.Problems = append(r.Problems, Problem{Bucket: "meta", Key: "schema", Detail: "schema version missing", Action: fmt.Sprintf("set to %d", SchemaVersion)})
			}
		}
	} else if fresh {
		return r, errors.New("not a tether inventory: no buckets (the file was never opened read-write)")
	}
	if meta == nil || tx.Bucket(bucketVMs) == nil || tx.Bucket(bucketVIFs) == nil {
		return r, fmt.Errorf("not a tether inventory: buckets missing")
	}
	if b := meta.Get(keySchema); len(b) != 4 {
		return r, fmt.Errorf("schema version is missing or malformed (%x)", b)
	} else if v := binary.BigEndian.Uint32(b); v != SchemaVersion {
		return r, fmt.Errorf("schema version %d, this tetherd reads version %d", v, SchemaVersion)
	}

	gen := uint64(0)
	genOK := true
	genProblem := func(detail string) {
		genOK = false
		r.Problems = append(r.Problems, Problem{Bucket: "meta", Key: "generation", Detail: detail, Action: "none"})
		if repair {
			r.Problems[len(r.Problems)-1].Action = "generation raised"
		}
	}
	if b := meta.Get(keyGeneration); b != nil {
		if len(b) == 8 {
			gen = binary.BigEndian.Uint64(b)
		} else {
			genProblem(fmt.Sprintf("malformed generation %x", b))
		}
	}
	action := "none"
	if repair {
		action = "quarantined"
	}
	type bad struct {
		bucket []byte
		key    []byte
	}
	var bads []bad
	maxGen := uint64(0)

	vms := map[UUID]struct{}{}
	if err := tx.Bucket(bucketVMs).ForEach(func(k, b []byte) error {
		vm, err := decodeVM(b, nil)
		if err == nil && !bytes.Equal(k, vm.UUID[:]) {
			err = fmt.Errorf("record for VM %s under key %x", vm.UUID, k)
		}
		if err != nil {
			r.Problems = append(r.Problems, Problem{Bucket: "vms", Key: fmt.Sprintf("%x", k), Detail: err.Error(), Action: action})
			bads = append(bads, bad{bucketVMs, bytes.Clone(k)})
			return nil
		}
		vms[vm.UUID] = struct{}{}
		maxGen = max(maxGen, vm.Generation)
		r.VMs++
		return nil
	}); err != nil {
		return r, fmt.Errorf("read VMs: %w", err)
	}
	n := 0
	if err := tx.Bucket(bucketVIFs).ForEach(func(k, b []byte) error {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		v, err := decodeVIF(b, nil)
		if err == nil && !bytes.Equal(k, v.MAC[:]) {
			err = fmt.Errorf("record for VIF %s under key %x", v.MAC, k)
		}
		if err == nil {
			if _, ok := vms[v.VM]; !ok {
				err = fmt.Errorf("VIF %s belongs to VM %s, which is not stored", v.MAC, v.VM)
			}
		}
		if err != nil {
			r.Problems = append(r.Problems, Problem{Bucket: "vifs", Key: fmt.Sprintf("%x", k), Detail: err.Error(), Action: action})
			bads = append(bads, bad{bucketVIFs, bytes.Clone(k)})
			return nil
		}
		maxGen = max(maxGen, v.Generation)
		r.VIFs++
		return nil
	}); err != nil {
		return r, fmt.Errorf("read VIFs: %w", err)
	}
	if maxGen > gen {
		genProblem(fmt.Sprintf("generation %d is below a record's generation %d", gen, maxGen))
	}
	r.Generation = max(gen, maxGen)
	if !repair || (len(bads) == 0 && genOK) {
		return r, nil
	}

	q := tx.Bucket(bucketQuarantine)
	for _, b := range bads {
		src := tx.Bucket(b.bucket)
		qk := append(append(append([]byte(nil), b.bucket...), '/'), b.key...)
		if err := q.Put(qk, bytes.Clone(src.Get(b.key))); err != nil {
			return r, fmt.Errorf("quarantine %s/%x: %w", b.bucket, b.key, err)
		}
		if err := src.Delete(b.key); err != nil {
			return r, fmt.Errorf("quarantine %s/%x: %w", b.bucket, b.key, err)
		}
	}
	r.Generation++
	if err := meta.Put(keyGeneration, binary.BigEndian.AppendUint64(nil, r.Generation)); err != nil {
		return r, fmt.Errorf("write generation: %w", err)
	}
	r.wrote = true
	return r, nil
}
