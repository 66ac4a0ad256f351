package inspect

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// TimeFormat is the layout of timestamps in text output: UTC with
// microseconds, as libpcap files store them.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// TimeFormatNano is TimeFormat with nanoseconds, for nanosecond captures.
const TimeFormatNano = "2006-01-02T15:04:05.000000000Z"

// TextOptions tune WriteText.
type TextOptions struct {
	// TimeLayout formats the frame time; empty means TimeFormat.
	TimeLayout string
}

// WriteText writes f in the human-readable form:
//
//	frame 17  2026-11-24T03:23:31.736192Z  52:54:00:aa:00:01 → 01:80:c2:00:00:00 (nearest-customer-bridge)  ECP  71 bytes
//	  ECP: version=1 op=request subtype=vdp sequence=1
//	  VDP ASSOCIATE: mode=request ... vsiid=6f1c2b3a-1111-4222-8333-944455556666 filter_format=mac_vid
//	    filters[0]: mac=52:54:00:12:34:56 vid=100
//
// A frame that failed to decode ends with an "error:" line.
func WriteText(w io.Writer, f *Frame, opt TextOptions) error {
	var b strings.Builder
	layout := opt.TimeLayout
	if layout == "" {
		layout = TimeFormat
	}
	fmt.Fprintf(&b, "frame %d  %s  %s → %s", f.Number, f.Time.UTC().Format(layout), f.Src, f.Dst)
	if f.DstName != "" {
		fmt.Fprintf(&b, " (%s)", f.DstName)
	}
	for _, t := range f.Tags {
		fmt.Fprintf(&b, "  %s vid=%d pcp=%d", t.Kind, t.VID, t.PCP)
		if t.DEI {
			b.WriteString(" dei")
		}
	}
	fmt.Fprintf(&b, "  %s  %d bytes\n", strings.ToUpper(f.Protocol), f.Length)
	for _, t := range f.TLVs {
		writeNode(&b, 1, t.Name, t.Fields)
	}
	if f.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", f.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeNode writes one line "name: k=v ..." at depth, then any list-of-
// objects fields as indented lines "key[i]: ...".
func writeNode(b *strings.Builder, depth int, name string, fs Fields) {
	indent := strings.Repeat("  ", depth)
	b.WriteString(indent)
	b.WriteString(name)
	b.WriteByte(':')
	var nested []Field
	for _, f := range fs {
		if _, ok := f.Value.([]Fields); ok {
			nested = append(nested, f)
			continue
		}
		b.WriteByte(' ')
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(textValue(f.Value))
	}
	b.WriteByte('\n')
	for _, f := range nested {
		for i, sub := range f.Value.([]Fields) {
			writeNode(b, depth+1, fmt.Sprintf("%s[%d]", f.Key, i), sub)
		}
	}
}

// textValue formats one field value for text output.
func textValue(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" || strings.IndexFunc(v, needsQuote) >= 0 {
			return strconv.Quote(v)
		}
		return v
	case bool:
		return strconv.FormatBool(v)
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = textValue(s)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []int:
		parts := make([]string, len(v))
		for i, n := range v {
			parts[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case Fields:
		parts := make([]string, len(v))
		for i, f := range v {
			parts[i] = f.Key + "=" + textValue(f.Value)
		}
		return "{" + strings.Join(parts, " ") + "}"
	case []Fields:
		parts := make([]string, len(v))
		for i, f := range v {
			parts[i] = textValue(f)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}

// needsQuote reports a rune that makes a text value ambiguous unquoted:
// white space, non-printable runes, and the separators of the format.
func needsQuote(r rune) bool {
	return unicode.IsSpace(r) || !unicode.IsPrint(r) || strings.ContainsRune("=\"\\[]{}", r)
}
