package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bytes is a size in bytes. In the environment it is written as a whole
// number with an optional unit: binary KiB, MiB, GiB, TiB (powers of 1024),
// SI KB, MB, GB, TB (powers of 1000) or B. Units are matched without regard to
// case and may be separated from the number by spaces: "1024", "64KiB",
// "4 MiB", "1GiB", "500MB".
type Bytes int64

// Size units, as accepted by ParseBytes (lower-cased).
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseBytes parses a size such as "64MiB". Negative numbers, fractions,
// unknown units and sizes above math.MaxInt64 bytes are refused.
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	switch {
	case strings.HasPrefix(t, "-"):
		return 0, fmt.Errorf("must not be negative, got %q", s)
	case num != "" && (strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ",")):
		return 0, fmt.Errorf("must be a whole number of bytes or units (write 1536MiB, not 1.5GiB), got %q", s)
	case num == "":
		return 0, fmt.Errorf("must be a size such as 1024, 64KiB, 4MiB or 1GiB, got %q", s)
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q in %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", unit, s)
	}
	n, err := strconv.ParseUint(num, 10, 63)
	if err != nil || n > uint64(math.MaxInt64/mult) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Bytes(int64(n) * mult), nil
}

// Decode implements envconfig.Decoder.
func (b *Bytes) Decode(s string) error {
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String writes b with the largest unit that divides it exactly, binary units
// first ("64MiB", "500MB", "1000"); ParseBytes reads the result back.
func (b Bytes) String() string {
	if b == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	} {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
