package loadgen

import "github.com/sluiceio/sluice/internal/fstype"

// FSType names the file system holding path (see package fstype).
func FSType(path string) string { return fstype.Name(path) }
