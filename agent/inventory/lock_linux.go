package inventory

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// lockHolder returns the process holding a flock(2) lock on path, as
// /proc/locks reports it, or 0 if it cannot tell. bbolt locks its file with
// flock, which (unlike fcntl locks) F_GETLK cannot report.
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := []byte(strconv.FormatUint(major, 16) + ":" + strconv.FormatUint(minor, 16) + ":" + strconv.FormatUint(st.Ino, 10))
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "3: FLOCK  ADVISORY  WRITE 4242 fe:01:1234 0 EOF"; waiters have "->"
		// after the ordinal and are skipped.
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || string(fields[1]) != "FLOCK" {
			continue
		}
		if !bytes.EqualFold(fields[5], want) && !sameDevIno(fields[5], want) {
			continue
		}
		if pid, err := strconv.Atoi(string(fields[4])); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// sameDevIno compares "maj:min:ino" strings whose hex fields may be padded
// with zeros differently ("fe:01:12" and "fe:1:12").
func sameDevIno(a, b []byte) bool {
	pa, pb := bytes.Split(a, []byte(":")), bytes.Split(b, []byte(":"))
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i, base := range []int{16, 16, 10} {
		x, err1 := strconv.ParseUint(string(pa[i]), base, 64)
		y, err2 := strconv.ParseUint(string(pb[i]), base, 64)
		if err1 != nil || err2 != nil || x != y {
			return false
		}
	}
	return true
}
