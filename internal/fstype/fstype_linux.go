// Package fstype names the file system a path is on, for benchmark
// reports: on tmpfs fsync is free, so a spool benchmark there measures
// nothing durable.
package fstype

import (
	"fmt"
	"syscall"
)

// Name names the file system holding path.
func Name(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	switch uint32(st.Type) {
	case 0x01021994:
		return "tmpfs (fsync is free: the numbers measure nothing durable)"
	case 0x858458f6:
		return "ramfs (fsync is free: the numbers measure nothing durable)"
	case 0xef53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683e:
		return "btrfs"
	case 0x2fc12fc1:
		return "zfs"
	case 0x794c7630:
		return "overlayfs"
	case 0x6969:
		return "nfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}
