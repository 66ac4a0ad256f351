package daemonflags

import (
	"bytes"
	"flag"
	"io"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int // -1: no exit
		explicit bool
		stdout   string
		stderr   string
	}{
		{"defaults", nil, -1, false, "", ""},
		{"config", []string{"--config", "/x.yaml"}, -1, true, "", ""},
		{"config equal to default", []string{"--config=/etc/d.yaml"}, -1, true, "", ""},
		{"other flag", []string{"--check-config"}, -1, false, "", ""},
		{"help", []string{"--help"}, 0, false, "", "usage\n"},
		{"bad flag", []string{"--nope"}, ExitUsage, false, "", "flag provided but not defined: -nope\nusage\n"},
		{"stray argument", []string{"run"}, ExitUsage, false, "", "d: unexpected arguments [\"run\"]\nusage\n"},
		{"version", []string{"--version"}, 0, false, "d 1.2\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fs := flag.NewFlagSet("d", flag.ContinueOnError)
			fs.SetOutput(&stderr)
			fs.Usage = func() { io.WriteString(&stderr, "usage\n") }
			fs.String("config", "/etc/d.yaml", "")
			fs.Bool("check-config", false, "")
			ver := fs.Bool("version", false, "")
			code := -1
			got := Parse(fs, tc.args, "d", "1.2", ver, &stdout, &stderr, func(c int) {
				if code == -1 {
					code = c
				}
			})
			if code != tc.code || got != tc.explicit || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("exit %d explicit %v stdout %q stderr %q\nwant exit %d explicit %v stdout %q stderr %q",
					code, got, stdout.String(), stderr.String(), tc.code, tc.explicit, tc.stdout, tc.stderr)
			}
		})
	}
}
