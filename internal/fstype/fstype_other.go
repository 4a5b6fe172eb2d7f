//go:build !linux

package fstype

// Name is not implemented on this system.
func Name(string) string { return "unknown" }
