package server

import (
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	h1, h2 := HashToken("reader-secret"), HashToken("writer-secret")
	in := "# tokens\n\nread " + h1 + " ci-reader\n  write " + strings.ToUpper(h2) + "  \n"
	toks, err := ParseTokens(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 || toks[0].Role != RoleRead || toks[0].Name != "ci-reader" || toks[1].Role != RoleWrite || toks[1].Name != "line 4" {
		t.Fatalf("ParseTokens = %+v", toks)
	}
	// The file's form is what `printf %s abc | sha256sum` prints.
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}

// TestParseTokensErrors: every malformed tokens file with its exact error.
func TestParseTokensErrors(t *testing.T) {
	h := HashToken("x")
	for _, tc := range []struct{ in, want string }{
		{"read\n", `line 1: want "ROLE SHA256-HEX [NAME]", got 1 fields`},
		{"read " + h + " a b\n", `line 1: want "ROLE SHA256-HEX [NAME]", got 4 fields`},
		{"admin " + h + "\n", `line 1: role "admin" is not one of read, write`},
		{"\nread s3cret\n", `line 2: "s3cret" is not a SHA-256 in hex (64 hex digits; the file holds hashes, never tokens: printf %s TOKEN | sha256sum)`},
		{"read " + h[:62] + "\n", `line 1: "` + h[:62] + `" is not a SHA-256 in hex (64 hex digits; the file holds hashes, never tokens: printf %s TOKEN | sha256sum)`},
		{"read " + h + "\nwrite " + h + "\n", "line 2: the same token hash as line 1"},
		{strings.Repeat("#", MaxTokensFile+1), "tokens file is over 1048576 bytes"},
	} {
		_, err := ParseTokens(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseTokens(%.40q):\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add("read " + HashToken("a") + " n\n")
	f.Add("# c\nwrite " + HashToken("b") + "\n")
	f.Add("read zz\n")
	f.Fuzz(func(t *testing.T, in string) {
		toks, err := ParseTokens(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, tk := range toks {
			if tk.Role != RoleRead && tk.Role != RoleWrite {
				t.Fatalf("token with role %v", tk.Role)
			}
		}
	})
}
