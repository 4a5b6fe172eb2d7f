package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want Bytes
		err  string // part of the error; "" = no error
	}{
		{"0", 0, ""},
		{"1024", 1024, ""},
		{"64KiB", 64 << 10, ""},
		{"4MiB", 4 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"2KB", 2000, ""},
		{"5MB", 5_000_000, ""},
		{"1GB", 1_000_000_000, ""},
		{"3TB", 3_000_000_000_000, ""},
		{"10B", 10, ""},
		{"4mib", 4 << 20, ""},
		{" 4 MiB ", 4 << 20, ""},
		{"8388607TiB", 8388607 << 40, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"", 0, "must be a size"},
		{"lots", 0, "must be a size"},
		{"MiB", 0, "must be a size"},
		{"+5", 0, "must be a size"},
		{"-1", 0, "negative"},
		{"-64MiB", 0, "negative"},
		{"1.5GiB", 0, "whole number"},
		{"0.5", 0, "whole number"},
		{"1,5MiB", 0, "whole number"},
		{"64K", 0, "unknown size unit"},
		{"64Mbit", 0, "unknown size unit"},
		{"1e6", 0, "unknown size unit"},
		{"64 MiB x", 0, "unknown size unit"},
		{"8388608TiB", 0, "too large"},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseBytes(%q): %v", tt.in, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("ParseBytes(%q) = %d, want %d", tt.in, got, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseBytes(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
}

func TestBytesString(t *testing.T) {
	tests := []struct {
		in   Bytes
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536 << 20, "1536MiB"},
		{1 << 30, "1GiB"},
		{5_000_000, "5MB"},
		{1<<20 + 1, "1048577"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Bytes(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"0", "1024", "64KiB", "4 MiB", "1GB", "-1", "1.5GiB", "9223372036854775807", "8388608TiB", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBytes(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseBytes(%q) = %d, negative", s, b)
		}
		back, err := ParseBytes(b.String())
		if err != nil || back != b {
			t.Fatalf("ParseBytes(%q) = %d; String %q reads back as %d, %v", s, b, b.String(), back, err)
		}
	})
}
