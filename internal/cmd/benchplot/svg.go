package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
)

// Geometry of the chart, in SVG user units.
const (
	width        = 960.0
	marginLeft   = 70.0
	marginRight  = 20.0
	headerHeight = 92.0
	panelHeight  = 280.0
	panelGap     = 28.0
	plotTop      = 30.0 // below the panel title
	plotBottom   = 40.0 // category labels
)

// Bar colours: sluice in blues, the ceilings in greys, by order of
// appearance within each kind.
var palette = map[string][]string{
	"sluice":  {"#1f4e9c", "#6b9be0", "#9ec1f0"},
	"ceiling": {"#595959", "#a6a6a6", "#d0d0d0"},
}

// render draws the panels one below the other, with a legend of every
// series in the header.
func render(m meta, panels []panel) []byte {
	var legend []series
	for _, p := range panels {
		for _, s := range p.series {
			if !containsSeries(legend, s.name) {
				legend = append(legend, s)
			}
		}
	}
	colour := colours(legend)

	height := headerHeight + float64(len(panels))*(panelHeight+panelGap)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="#ffffff"/>`+"\n", width, height)
	text(&b, marginLeft, 22, "start", 15, "bold", "sluice ingest against its ceilings: messages per second (median; whiskers min–max)")
	runs := "runs"
	if m.Count == 1 {
		runs = "run"
	}
	text(&b, marginLeft, 40, "start", 11, "normal", fmt.Sprintf("%s · %s · spool on %s · %d %s × %s per cell",
		m.Date, m.Machine, m.SpoolFS, m.Count, runs, m.Duration))
	load := fmt.Sprintf("load average %s before, %s after", m.LoadBefore, m.LoadAfter)
	if m.OthersCores != nil {
		load += fmt.Sprintf(" · other processes used %.2f cores (median over cells)", m.OthersCores.Median)
	}
	text(&b, marginLeft, 55, "start", 11, "normal", load)
	x := marginLeft
	for _, s := range legend {
		fmt.Fprintf(&b, `<rect x="%.1f" y="66" width="12" height="12" fill="%s"/>`+"\n", x, colour[s.name])
		text(&b, x+16, 76, "start", 11, "normal", s.name)
		x += 16 + 7*float64(len(s.name)) + 24
	}
	for i, p := range panels {
		drawPanel(&b, p, headerHeight+float64(i)*(panelHeight+panelGap), colour)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func drawPanel(b *bytes.Buffer, p panel, top float64, colour map[string]string) {
	text(b, marginLeft, top+16, "start", 13, "bold", p.title)
	plotX, plotW := marginLeft, width-marginLeft-marginRight
	plotY, plotH := top+plotTop, panelHeight-plotTop-plotBottom
	var hi float64
	for _, vs := range p.vals {
		for _, v := range vs {
			if v != nil {
				hi = max(hi, v.Max, v.Median)
			}
		}
	}
	step, scale := ticks(hi)
	y := func(v float64) float64 { return plotY + plotH - v/scale*plotH }
	for t := 0.0; t <= scale+step/2; t += step {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e3e3e3"/>`+"\n", plotX, y(t), plotX+plotW, y(t))
		text(b, plotX-6, y(t)+4, "end", 10, "normal", short(t))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", plotX, plotY+plotH, plotX+plotW, plotY+plotH)

	catW := plotW / float64(len(p.cats))
	barW := min(56, catW*0.8/float64(len(p.series)))
	for ci, cat := range p.cats {
		left := plotX + float64(ci)*catW + (catW-barW*float64(len(p.series)))/2
		for si, s := range p.series {
			v := p.vals[ci][si]
			if v == nil {
				continue
			}
			bx := left + float64(si)*barW
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s msgs/s (%s–%s)</title></rect>`+"\n",
				bx+1, y(v.Median), barW-2, plotY+plotH-y(v.Median), colour[s.name], esc(cat), esc(s.name),
				short(v.Median), short(v.Min), short(v.Max))
			cx := bx + barW/2
			if v.Max > v.Min {
				fmt.Fprintf(b, `<path d="M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8" stroke="#000" fill="none"/>`+"\n",
					cx, y(v.Max), y(v.Min), cx-4, y(v.Max), cx-4, y(v.Min))
			}
			text(b, cx, min(y(v.Max), y(v.Median))-4, "middle", 10, "normal", short(v.Median))
		}
		text(b, plotX+float64(ci)*catW+catW/2, plotY+plotH+18, "middle", 11, "normal", cat)
	}
}

// ticks returns a step of 1, 2 or 5 × 10^k giving about five gridlines up
// to hi, and the top of the scale (a multiple of the step above hi).
func ticks(hi float64) (step, top float64) {
	if hi <= 0 {
		return 1, 5
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return step, math.Ceil(hi*1.08/step) * step
}

// short prints v with k/M suffixes and about three significant digits.
func short(v float64) string {
	f := func(x float64, suffix string) string {
		switch {
		case x >= 100:
			return fmt.Sprintf("%.0f%s", x, suffix)
		case x >= 10:
			return strings.TrimSuffix(fmt.Sprintf("%.1f", x), ".0") + suffix
		}
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".") + suffix
	}
	switch {
	case v >= 1e6:
		return f(v/1e6, "M")
	case v >= 1e3:
		return f(v/1e3, "k")
	}
	return f(v, "")
}

func colours(ss []series) map[string]string {
	used := map[string]int{}
	out := map[string]string{}
	for _, s := range ss {
		p := palette[s.kind]
		if p == nil {
			p = palette["ceiling"]
		}
		out[s.name] = p[used[s.kind]%len(p)]
		used[s.kind]++
	}
	return out
}

func containsSeries(ss []series, name string) bool {
	for _, s := range ss {
		if s.name == name {
			return true
		}
	}
	return false
}

func text(b *bytes.Buffer, x, y float64, anchor string, size int, weight, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" font-weight="%s">%s</text>`+"\n",
		x, y, anchor, size, weight, esc(s))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
