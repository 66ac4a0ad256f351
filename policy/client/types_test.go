package client

import (
	"strconv"
	"testing"
)

func TestParseRevision(t *testing.T) {
	for _, tc := range []struct {
		in   string
		rev  int64
		okay bool
	}{
		{`"42"`, 42, true}, {`42`, 42, true}, {`W/"7"`, 7, true}, {` "9" `, 9, true},
		{`*`, 0, false}, {`"0"`, 0, false}, {`"-3"`, 0, false}, {`""`, 0, false}, {`"4`, 0, false}, {`"1", "2"`, 0, false},
	} {
		rev, ok := ParseRevision(tc.in)
		if rev != tc.rev || ok != tc.okay {
			t.Errorf("ParseRevision(%q) = %d, %v; want %d, %v", tc.in, rev, ok, tc.rev, tc.okay)
		}
	}
	if r, ok := ParseRevision(ETag(123)); !ok || r != 123 {
		t.Errorf("ETag round trip: %d %v", r, ok)
	}
}

// FuzzParseRevision: an ETag or If-Match header (outside input) either
// gives a positive revision that ETag writes back as the same value, or
// is refused.
func FuzzParseRevision(f *testing.F) {
	for _, s := range []string{`"42"`, `42`, `W/"7"`, `*`, `"-3"`, `""`, `"4`, `"1", "2"`, `"9223372036854775808"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		rev, ok := ParseRevision(v)
		if !ok {
			if rev != 0 {
				t.Fatalf("refused %q with revision %d", v, rev)
			}
			return
		}
		if rev <= 0 {
			t.Fatalf("%q: revision %d", v, rev)
		}
		if again, ok := ParseRevision(ETag(rev)); !ok || again != rev {
			t.Fatalf("ETag(%d) = %s parses as %d, %v", rev, ETag(rev), again, ok)
		}
		if again, _ := ParseRevision(strconv.FormatInt(rev, 10)); again != rev {
			t.Fatalf("bare %d parses as %d", rev, again)
		}
	})
}
