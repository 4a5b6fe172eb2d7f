package dest

import (
	"errors"
	"testing"
)

func TestRender(t *testing.T) {
	cases := []struct {
		tmpl, topic, key, want string
		usesKey, static        bool
	}{
		{"", "orders", "k", "", false, true},
		{"{topic}", "orders", "k", "orders", false, false},
		{"fixed", "orders", "k", "fixed", false, true},
		{"events.{topic}", "clicks", "", "events.clicks", false, false},
		{"{topic}.{key}", "orders", "customer-7", "orders.customer-7", true, false},
		{"{key}", "orders", "", "", true, false},
		{"a{topic}b{topic}c", "x", "", "axbxc", false, false},
	}
	for _, c := range cases {
		tm, err := Parse(c.tmpl)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.tmpl, err)
		}
		var key []byte
		if c.key != "" {
			key = []byte(c.key)
		}
		if got := tm.Render(c.topic, key); got != c.want {
			t.Errorf("%q.Render(%q, %q) = %q, want %q", c.tmpl, c.topic, c.key, got, c.want)
		}
		if tm.UsesKey() != c.usesKey {
			t.Errorf("%q.UsesKey() = %v", c.tmpl, tm.UsesKey())
		}
		if s, ok := tm.Static(); ok != c.static || (ok && s != c.tmpl) {
			t.Errorf("%q.Static() = %q, %v", c.tmpl, s, ok)
		}
		if tm.String() != c.tmpl {
			t.Errorf("String() = %q", tm.String())
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{"{Topic}", "{partition}", "{topic", "topic}", "{", "}", "a{}b", "{{topic}}"} {
		if _, err := Parse(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", s, err)
		}
	}
}
