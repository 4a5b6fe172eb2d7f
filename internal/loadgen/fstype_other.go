//go:build !linux

package loadgen

// FSType names the filesystem holding path; only known on Linux.
func FSType(string) string { return "unknown" }
