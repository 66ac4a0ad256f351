package libvirthooks

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// decodeDocument decodes the single root element of data into v. Unlike
// xml.Unmarshal it rejects anything but whitespace, comments and processing
// instructions around the root element (DOCTYPE included), so a document
// with trailing garbage is not taken for a good one.
func decodeDocument(data []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	var start *xml.StartElement
	for start == nil {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return errors.New("no root element")
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			start = &t
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("text before the root element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return fmt.Errorf("unexpected %T before the root element", tok)
		}
	}
	if err := d.DecodeElement(v, start); err != nil {
		return err
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("text after the root element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return fmt.Errorf("unexpected %T after the root element", tok)
		}
	}
}

// tokenReplay is an xml.TokenReader over recorded tokens.
type tokenReplay struct {
	toks []xml.Token
}

// Token returns the next recorded token, or io.EOF.
func (r *tokenReplay) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

// recordElement reads the rest of the element opened by start from d and
// returns all its tokens, start and end included, copied. visit, if not nil,
// sees every start element at depth 1 (the direct children).
func recordElement(d *xml.Decoder, start xml.StartElement, visit func(xml.StartElement)) ([]xml.Token, error) {
	toks := []xml.Token{start.Copy()}
	for depth := 1; depth > 0; {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && visit != nil {
				visit(t)
			}
			depth++
		case xml.EndElement:
			depth--
		}
		toks = append(toks, xml.CopyToken(tok))
	}
	return toks, nil
}

// attr returns the value of the unqualified attribute name, or "".
func attr(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// parseUUID accepts a UUID as libvirt does (hex digits with '-' anywhere,
// surrounding space) and returns the canonical lower-case 8-4-4-4-12 form.
func parseUUID(s string) (string, error) {
	h := strings.ReplaceAll(strings.TrimSpace(s), "-", "")
	if len(h) != 32 {
		return "", errors.New("want 32 hex digits")
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return "", errors.New("want 32 hex digits")
	}
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32], nil
}
