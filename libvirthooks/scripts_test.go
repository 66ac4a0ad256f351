package libvirthooks

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScripts(t *testing.T) {
	for _, s := range HookScripts() {
		got, err := ScriptContent(s.Driver)
		if err != nil {
			t.Fatal(err)
		}
		want := "#!/bin/sh\nexec /usr/bin/tether-hook " + string(s.Driver) + " \"$@\"\n"
		if string(got) != want {
			t.Errorf("%s script:\n%q\nwant\n%q", s.Driver, got, want)
		}
		if n := strings.Count(string(got), "\n"); n != 2 {
			t.Errorf("%s script has %d lines, want 2", s.Driver, n)
		}
		// The embedded copy is the file in the tree that packaging ships,
		// and that file is executable.
		fi, err := os.Stat(filepath.Join("scripts", s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("scripts/%s is not executable (%v)", s.Name, fi.Mode())
		}
		if !strings.HasPrefix(s.InstallPath, "/etc/libvirt/hooks/"+string(s.Driver)+".d/") {
			t.Errorf("install path %s", s.InstallPath)
		}
	}
	names, err := fs.Glob(Scripts(), "*")
	if err != nil || strings.Join(names, ",") != "network,qemu" {
		t.Errorf("Scripts() holds %v, %v", names, err)
	}
	if _, err := ScriptContent("lxc"); ExitCode(err) != ExitUsage {
		t.Errorf("lxc: %v", err)
	}
}

// TestScriptPassesArguments runs the script with /usr/bin/tether-hook
// replaced by a stand-in that prints its arguments and stdin, as libvirt
// would run it.
func TestScriptPassesArguments(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "tether-hook")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nprintf '[%s]' \"$@\"; cat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	content, err := ScriptContent(DriverQEMU)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "50-tether")
	if err := os.WriteFile(script, []byte(strings.Replace(string(content), "/usr/bin/tether-hook", stub, 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, "vm with space", "release", "end", "from snapshot")
	cmd.Stdin = strings.NewReader("<domain/>")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[qemu][vm with space][release][end][from snapshot]<domain/>"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
