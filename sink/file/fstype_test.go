package file

import "github.com/sluiceio/sluice/internal/fstype"

func fsType(path string) string { return fstype.Name(path) }
