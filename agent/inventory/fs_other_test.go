//go:build !linux

package inventory

func fsType(string) string { return "unknown" }
