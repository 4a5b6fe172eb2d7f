//go:build !linux

package file

// fsType names the filesystem holding path, for benchmark logs.
func fsType(string) string { return "unknown" }
