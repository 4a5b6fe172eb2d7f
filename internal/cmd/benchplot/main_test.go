package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `{
  "meta": {"date": "2026-01-01T00:00:00Z", "machine": "linux, 2 cores", "spool_fs": "ext4",
    "load_before": "0.1 0.2 0.3", "load_after": "1.0 0.9 0.8", "count": 3, "duration": "3s"},
  "cells": [
    {"server": "sluice sync=always", "kind": "sluice", "mode": "single", "size": 1024, "batch": 1, "conns": 64,
     "msgs_per_sec": {"median": 20000, "min": 19000, "max": 21000}},
    {"server": "bare fasthttp", "kind": "ceiling", "mode": "single", "size": 1024, "batch": 1, "conns": 64,
     "msgs_per_sec": {"median": 90000, "min": 85000, "max": 95000}},
    {"server": "sluice sync=always", "kind": "sluice", "mode": "single", "size": 1024, "batch": 1, "conns": 1,
     "msgs_per_sec": {"median": 900, "min": 900, "max": 900}},
    {"server": "sluice sync=always", "kind": "sluice", "mode": "ndjson", "size": 1024, "batch": 100, "conns": 16,
     "msgs_per_sec": {"median": 150000, "min": 140000, "max": 160000}},
    {"server": "sluice sync=always", "kind": "sluice", "mode": "single", "size": 100, "batch": 1, "conns": 64,
     "msgs_per_sec": null}
  ]
}`

func TestRenderWritesValidSVG(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "results.json"), filepath.Join(dir, "ingest.svg")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
		Rects   []struct {
			Title string `xml:"title"`
		} `xml:"rect"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b)
	}
	if doc.XMLName.Local != "svg" {
		t.Fatalf("root %q", doc.XMLName.Local)
	}
	var bars []string
	for _, r := range doc.Rects {
		if r.Title != "" {
			bars = append(bars, r.Title)
		}
	}
	// Panel 1 (1 KiB by conns): 3 bars; panel 2 (NDJSON): 1; panel 3 (64
	// conns by size): the two 1 KiB bars (100 B has no numbers).
	if len(bars) != 6 {
		t.Fatalf("%d bars, want 6: %q", len(bars), bars)
	}
	for _, want := range []string{"64 conns, bare fasthttp: 90k msgs/s (85k–95k)", "1 KiB, sluice sync=always: 20k msgs/s"} {
		if !strings.Contains(strings.Join(bars, "\n"), want) {
			t.Errorf("no bar %q in %q", want, bars)
		}
	}
}

func TestRunRefusesResultsWithoutCells(t *testing.T) {
	in := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(in, []byte(`{"cells": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, filepath.Join(t.TempDir(), "x.svg")); err == nil {
		t.Fatal("no error")
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct{ hi, step, top float64 }{
		{95000, 20000, 120000},
		{900, 200, 1000},
		{4.2, 1, 5},
		{0, 1, 5},
	} {
		if step, top := ticks(c.hi); step != c.step || top != c.top {
			t.Errorf("ticks(%v) = %v, %v; want %v, %v", c.hi, step, top, c.step, c.top)
		}
	}
}

func TestShort(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 950: "950", 1500: "1.5k", 12345: "12.3k", 123456: "123k", 2.5e6: "2.5M", 3.25: "3.25"} {
		if got := short(v); got != want {
			t.Errorf("short(%v) = %q, want %q", v, got, want)
		}
	}
}
