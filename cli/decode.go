package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tether-net/tether/inspect"
	"github.com/tether-net/tether/internal/pcapfile"
	"github.com/tether-net/tether/wire"
)

// Output formats of tetherctl decode.
const (
	outputText = "text"
	outputJSON = "json"
)

// newDecodeCommand returns "tetherctl decode FILE".
func newDecodeCommand(s *Streams) *cobra.Command {
	var output, cid string
	cmd := &cobra.Command{
		Use:   "decode FILE.pcap",
		Short: "Decode the LLDP and ECP/VDP frames of a pcap file",
		Long: `decode prints every LLDP (EtherType 0x88cc) and ECP/VDP (0x8940) frame
of a classic pcap capture (not pcapng; convert with editcap -F pcap),
one line per frame and one line per TLV with its decoded fields: the
basic LLDP TLVs, IEEE 802.1 EVB, CDCP, ETS, PFC and APP, tether's own
TLVs, the ECP header and every VDP TLV. Frames of other EtherTypes are
counted in the summary and not shown. FILE "-" reads standard input.

A frame that does not decode shows its error (which TLV, at which
offset) and decoding goes on with the next frame.

With -o json the output is one JSON array with an object per frame
(members: number, time, length, src, dst, dst_name, tags, ethertype,
protocol, tlvs, error; each TLV is an object whose "tlv" member names
its kind and whose other members are its fields, all lower_snake_case).
The summary line then goes to standard error.

Exit status: 0 when every frame decoded, 1 when at least one frame
failed, 2 when the file cannot be read or the command line is wrong.`,
		Example: `  # Decode a capture taken on a hypervisor uplink
  tcpdump -i eth0 -w /tmp/evb.pcap 'ether proto 0x88cc or ether proto 0x8940'
  tetherctl decode /tmp/evb.pcap

  # Only the VDP associations, with jq
  tetherctl decode -o json /tmp/evb.pcap | jq '.[].tlvs[] | select(.tlv == "vdp_associate")'`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != outputText && output != outputJSON {
				return usageErrorf(cmd, "invalid output format %q: want %q or %q", output, outputText, outputJSON)
			}
			opt := inspect.Options{}
			if cid != "" {
				c, err := parseOUI(cid)
				if err != nil {
					return usageErrorf(cmd, "invalid --cid %q: %w", cid, err)
				}
				opt.TetherCID = c
			}
			return runDecode(cmd, s, args[0], output, opt)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", outputText, `output format: "text" or "json"`)
	cmd.Flags().StringVar(&cid, "cid", "", "Company ID of tether's TLVs, as 7a-7e-71 (default: tether's built-in CID)")
	return cmd
}

// runDecode decodes the capture at path and writes it to s.Out.
func runDecode(cmd *cobra.Command, s *Streams, path, output string, opt inspect.Options) error {
	var in io.Reader
	if path == "-" {
		in = s.In
	} else {
		f, err := os.Open(path)
		if err != nil {
			return usageErrorf(cmd, "cannot open capture: %w", err)
		}
		defer f.Close()
		in = f
	}
	r, err := pcapfile.NewReader(in)
	if err != nil {
		return usageErrorf(cmd, "cannot read capture %s: %w", path, err)
	}
	if lt := r.LinkType(); lt != pcapfile.LinkTypeEthernet {
		return usageErrorf(cmd, "capture %s has link type %d; only Ethernet (1) is supported", path, lt)
	}
	var (
		sum  inspect.Summary
		topt = inspect.TextOptions{TimeLayout: inspect.TimeFormat}
		out  frameWriter
	)
	if r.Nanosecond() {
		topt.TimeLayout = inspect.TimeFormatNano
	}
	if output == outputJSON {
		out = &jsonArrayWriter{w: s.Out}
	} else {
		out = textWriter{w: s.Out, opt: topt}
	}
	var readErr error
	for num := 1; ; num++ {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The rest of the file is unreadable; report what was
			// decoded so far and fail.
			readErr = err
			break
		}
		f := inspect.Decode(num, rec.Time, rec.Data, opt)
		sum.Add(f)
		if f == nil {
			continue
		}
		if err := out.frame(f); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
	if err := out.close(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	// The summary goes with the text, or to stderr so that the JSON on
	// stdout stays one parseable document.
	if output == outputJSON {
		fmt.Fprintln(s.Err, sum.String())
	} else {
		fmt.Fprintln(s.Out, sum.String())
	}
	switch {
	case readErr != nil:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("reading capture %s: %w", path, readErr)}
	case sum.Errors > 0:
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%d of %d LLDP/ECP frames failed to decode", sum.Errors, sum.LLDP+sum.ECP)}
	}
	return nil
}

// parseOUI parses three hex octets separated by "-" or ":".
func parseOUI(s string) (wire.OUI, error) {
	var o wire.OUI
	if len(s) != 8 || (s[2] != '-' && s[2] != ':') || s[5] != s[2] {
		return o, errors.New("want three hex octets such as 7a-7e-71")
	}
	for i := range o {
		v, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
		if err != nil {
			return o, errors.New("want three hex octets such as 7a-7e-71")
		}
		o[i] = byte(v)
	}
	return o, nil
}

// frameWriter writes decoded frames in one output format.
type frameWriter interface {
	frame(f *inspect.Frame) error
	close() error
}

// textWriter writes frames as inspect's text.
type textWriter struct {
	w   io.Writer
	opt inspect.TextOptions
}

func (t textWriter) frame(f *inspect.Frame) error { return inspect.WriteText(t.w, f, t.opt) }
func (t textWriter) close() error                 { return nil }

// jsonArrayWriter streams frames as one indented JSON array, so a large
// capture is not held in memory.
type jsonArrayWriter struct {
	w     io.Writer
	count int
}

func (j *jsonArrayWriter) frame(f *inspect.Frame) error {
	b, err := json.MarshalIndent(f, "  ", "  ")
	if err != nil {
		return fmt.Errorf("frame %d: %w", f.Number, err)
	}
	sep := ",\n  "
	if j.count == 0 {
		sep = "[\n  "
	}
	j.count++
	if _, err := io.WriteString(j.w, sep); err != nil {
		return err
	}
	_, err = j.w.Write(b)
	return err
}

func (j *jsonArrayWriter) close() error {
	end := "\n]\n"
	if j.count == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(j.w, end)
	return err
}
