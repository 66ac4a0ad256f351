// Package atomicfile replaces files so that a crash at any moment leaves
// either the old or the new content, never a mix: write a temporary file in
// the same directory, fsync it, rename it over the target, fsync the
// directory. Every piece of tether that persists small state (keys, replay
// counters, the hook spool) writes through it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm. The temporary file is named
// ".BASE.tmp-*" next to path.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteTemp(path, data, perm, "."+filepath.Base(path)+".tmp-*")
}

// WriteTemp is Write with the temporary file's name pattern given (as for
// os.CreateTemp), for directories whose readers must recognise and skip
// temporary files.
func WriteTemp(path string, data []byte, perm os.FileMode, tempPattern string) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that a rename or removal in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
