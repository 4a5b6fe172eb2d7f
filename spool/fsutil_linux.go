package spool

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back, not
// its timestamps: after an overwrite of blocks the file already has, no
// metadata write.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
