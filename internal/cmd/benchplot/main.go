// Command benchplot renders the ingest cells of scripts/bench-matrix's
// results.json as an SVG grouped bar chart: msgs/s (median, with a min–max
// whisker) per cell, sluice's bars beside its ceilings (the durable-ack
// ceiling, bare fasthttp, bare fasthttp + write). Standard library only.
//
//	benchplot -in docs/bench/results.json -out docs/bench/ingest.svg
//
// Four panels, each with its own linear scale: single 1 KiB messages by
// connections, NDJSON and JSON batches by size and connections, and single
// messages at 64 connections by size.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
)

func main() {
	in := flag.String("in", "docs/bench/results.json", "results written by scripts/bench-matrix")
	out := flag.String("out", "docs/bench/ingest.svg", "SVG file to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	panels := layout(r.Cells)
	if len(panels) == 0 {
		return fmt.Errorf("%s: no ingest cells with msgs/s", in)
	}
	return os.WriteFile(out, render(r.Meta, panels), 0o644)
}

// results is the part of results.json the chart needs.
type results struct {
	Meta  meta   `json:"meta"`
	Cells []cell `json:"cells"`
}

type meta struct {
	Date       string `json:"date"`
	Machine    string `json:"machine"`
	SpoolFS    string `json:"spool_fs"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	Count      int    `json:"count"`
	Duration   string `json:"duration"`
	// OthersCores: CPU used by processes outside the benchmark.
	OthersCores *stat `json:"others_cores"`
}

type cell struct {
	Server     string `json:"server"`
	Kind       string `json:"kind"` // sluice or ceiling
	Mode       string `json:"mode"`
	Size       int    `json:"size"`
	Batch      int    `json:"batch"`
	Conns      int    `json:"conns"`
	MsgsPerSec *stat  `json:"msgs_per_sec"`
}

type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// panel is one grouped bar chart: a group of bars per category, one bar
// per series.
type panel struct {
	title  string
	cats   []string
	series []series
	// vals[category][series index]; nil = not measured.
	vals [][]*stat
}

type series struct {
	name, kind string
}

// rule picks a panel's cells and places each in a category.
type rule struct {
	title string
	match func(cell) bool
	cat   func(cell) (order int, label string)
}

var rules = []rule{
	{
		title: "single 1 KiB messages, by connections",
		match: func(c cell) bool { return c.Mode == "single" && c.Size == 1024 },
		cat:   byConns,
	},
	{
		title: "NDJSON batches, by size and connections",
		match: func(c cell) bool { return c.Mode == "ndjson" },
		cat:   bySizeAndConns,
	},
	{
		title: "JSON batches (POST /v1/messages), by size and connections",
		match: func(c cell) bool { return c.Mode == "json" },
		cat:   bySizeAndConns,
	},
	{
		title: "single messages at 64 connections, by size",
		match: func(c cell) bool { return c.Mode == "single" && c.Conns == 64 },
		cat:   func(c cell) (int, string) { return c.Size, bytesLabel(c.Size) },
	},
}

func byConns(c cell) (int, string) {
	if c.Conns == 1 {
		return 1, "1 conn"
	}
	return c.Conns, fmt.Sprintf("%d conns", c.Conns)
}

func bySizeAndConns(c cell) (int, string) {
	_, l := byConns(c)
	return c.Size<<16 + c.Conns, fmt.Sprintf("%d × %s, %s", c.Batch, bytesLabel(c.Size), l)
}

func bytesLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// layout builds the panels that have cells; series keep the order in which
// their servers first appear in cells.
func layout(cells []cell) []panel {
	var panels []panel
	for _, r := range rules {
		type key struct {
			order int
			label string
		}
		var p panel
		var keys []key
		idx := map[string]int{}
		for _, c := range cells {
			if c.MsgsPerSec == nil || !r.match(c) {
				continue
			}
			o, l := r.cat(c)
			if !slices.Contains(keys, key{o, l}) {
				keys = append(keys, key{o, l})
			}
			if _, ok := idx[c.Server]; !ok {
				idx[c.Server] = len(p.series)
				p.series = append(p.series, series{c.Server, c.Kind})
			}
		}
		if len(keys) == 0 {
			continue
		}
		slices.SortStableFunc(keys, func(a, b key) int { return cmp.Compare(a.order, b.order) })
		p.title = r.title
		p.vals = make([][]*stat, len(keys))
		for i, k := range keys {
			p.cats = append(p.cats, k.label)
			p.vals[i] = make([]*stat, len(p.series))
		}
		for _, c := range cells {
			if c.MsgsPerSec == nil || !r.match(c) {
				continue
			}
			o, l := r.cat(c)
			p.vals[slices.Index(keys, key{o, l})][idx[c.Server]] = c.MsgsPerSec
		}
		panels = append(panels, p)
	}
	return panels
}
