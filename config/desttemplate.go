package config

import (
	"fmt"
	"strings"
)

// checkDestTemplate checks a destination template of the queue sinks (the
// syntax of sink/internal/dest): the placeholders are {topic} and {key}; a
// brace that opens neither is an error.
func checkDestTemplate(s string) error {
	rest := s
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return nil
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{topic}"):
			rest = rest[len("{topic}"):]
		case strings.HasPrefix(rest, "{key}"):
			rest = rest[len("{key}"):]
		default:
			if end := strings.IndexByte(rest, '}'); rest[0] == '{' && end > 0 {
				return fmt.Errorf("unknown placeholder %s in %q (use {topic} or {key})", rest[:end+1], s)
			}
			return fmt.Errorf("unmatched %q in %q (placeholders are {topic} and {key})", rest[:1], s)
		}
	}
}
