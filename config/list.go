package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// List is a comma-separated list. Items are trimmed of spaces; an empty item
// ("a,,b", a trailing comma) is refused rather than silently kept, which is
// what envconfig does with a plain []string. A value of only spaces is an
// empty list.
type List []string

// Decode implements envconfig.Decoder.
func (l *List) Decode(s string) error {
	if strings.TrimSpace(s) == "" {
		*l = List{}
		return nil
	}
	parts := strings.Split(s, ",")
	out := make(List, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return fmt.Errorf("item %d of the comma list %q is empty", i+1, s)
		}
		out = append(out, p)
	}
	*l = out
	return nil
}

// String joins the items with commas.
func (l List) String() string { return strings.Join(l, ",") }

// Map is a comma-separated list of key=value pairs ("orders=orders-v2,
// clicks=web-clicks"). Keys and values are trimmed of spaces; a value may
// contain '=' (only the first one separates). Empty items, empty keys,
// items without '=' and repeated keys are refused.
type Map map[string]string

// Decode implements envconfig.Decoder.
func (m *Map) Decode(s string) error {
	out := Map{}
	if strings.TrimSpace(s) == "" {
		*m = out
		return nil
	}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("item %d of the comma list %q is empty", i+1, s)
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			return fmt.Errorf("item %q must be key=value", item)
		case k == "":
			return fmt.Errorf("item %q has an empty key", item)
		}
		if _, dup := out[k]; dup {
			return fmt.Errorf("key %q appears twice", k)
		}
		out[k] = v
	}
	*m = out
	return nil
}

// String writes the pairs sorted by key, in the form Decode reads.
func (m Map) String() string {
	keys := slices.Sorted(maps.Keys(m))
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}
