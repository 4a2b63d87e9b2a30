package report

import (
	"bufio"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

//go:embed page.html.tmpl
var pageSource string

// Write renders the page as one self-contained HTML document.
func (c *Collector) Write(w io.Writer) error {
	t, err := template.New("page").Funcs(template.FuncMap{"num": num}).Parse(pageSource)
	if err != nil {
		return fmt.Errorf("report: template: %w", err)
	}
	bw := bufio.NewWriter(w)
	if err := t.Execute(bw, c.page()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// page is what the template shows.
type page struct {
	Title, Subtitle string
	Facts           []fact
	Notes           []string
	BinWidth        string
	Points          int
	Timeline        chart
	Sources         []sourceView
	NoSources       chart
	Rules           chart
	MalformedNote   string
	Malformed       chart
}

type fact struct{ Name, Value string }

type sourceView struct {
	Rank              int
	ID, Key           string
	Events, Decisions string
	First, Last       string
	Chart             chart
}

// chart is one SVG picture as shapes in drawing order: paths, then
// rectangles, then text on top.
type chart struct {
	ID, Label string
	W, H      int
	Paths     []shape
	Rects     []rect
	Texts     []label
}

type shape struct{ Class, D, Title string }

type rect struct {
	Class      string
	X, Y, W, H float64
	Title      string
}

type label struct {
	X, Y          float64
	Anchor, Class string
	S             string
}

// Chart geometry shared by the charts, in SVG user units.
const (
	chartW = 960
	plotL  = 70.0
	plotR  = 944.0
)

func actionName(a int) string { return rules.Action(a).String() }

func (c *Collector) page() *page {
	p := &page{
		Title:  "sentry-nflog replay report",
		Points: c.pointsPerSrc,
	}
	if len(c.totals.Inputs) > 0 {
		p.Subtitle = strings.Join(c.totals.Inputs, ", ")
	}
	if c.totals.Config != "" {
		if p.Subtitle != "" {
			p.Subtitle += " with "
		}
		p.Subtitle += c.totals.Config
	}
	c.facts(p)
	p.BinWidth = "bin"
	if c.tl.width > 0 {
		p.BinWidth = formatSpan(c.tl.width)
	}
	p.Timeline = c.timelineChart()
	p.Sources = c.sourceViews()
	if len(p.Sources) == 0 {
		p.NoSources = emptyChart("sources-chart", "no sources", "No events: no source to show.")
	}
	p.Rules = c.rulesChart()
	p.MalformedNote, p.Malformed = c.malformedChart()
	return p
}

func (c *Collector) facts(p *page) {
	t := &c.totals
	var malformed uint64
	for o := parsers.Outcome(0); int(o) < parsers.NumOutcomes; o++ {
		if o.Malformed() {
			malformed += t.Outcomes[o]
		}
	}
	add := func(name, value string) { p.Facts = append(p.Facts, fact{name, value}) }
	if c.haveTotals {
		add("lines read", group(t.Lines))
		add("firewall lines", group(t.Outcomes[parsers.Parsed]+malformed))
		add("skipped", group(t.Outcomes[parsers.Skipped])+" (not firewall log lines)")
		add("malformed", group(malformed))
	}
	add("events", group(c.events))
	add("decisions", c.decisionWords(c.decisions))
	if c.events > 0 {
		add("time span", c.formatTime(c.first, true)+" to "+c.formatTime(c.last, true))
	}
	add("sources tracked", fmt.Sprintf("the %d with the most events (%s sources replaced in the table)", cap(c.top.slots), group(c.top.replaced)))
	if c.tl.dropped > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s events or decisions had timestamps too far apart to draw on one time axis and were left out of it.", group(c.tl.dropped)))
	}
	if c.top.replaced > 0 {
		p.Notes = append(p.Notes, "The top sources are found with a table of bounded size, so that any replay fits in memory: a source enters it once it has about as many events as the least busy source in it. A count shown as ≥ counts the events since the source entered the table, and its chart shows the probes since.")
	}
}

func (c *Collector) decisionWords(n [numActions]uint64) string {
	var parts []string
	for a, k := range n {
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", actionName(a), group(k)))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// timelineChart draws events per bin above decisions per bin, stacked by
// action, on one time axis.
func (c *Collector) timelineChart() chart {
	const id, desc = "timeline-chart", "events and decisions over time"
	first, last, ok := c.tl.extent()
	if !ok {
		return emptyChart(id, desc, "No events.")
	}
	ch := chart{ID: id, Label: desc, W: chartW, H: 330}
	n := last - first + 1
	start := c.tl.origin + int64(first)*c.tl.width
	end := start + int64(n)*c.tl.width
	bw := (plotR - plotL) / float64(n)
	const aTop, aBot, bTop, bBot = 30.0, 150.0, 192.0, 282.0

	var maxE, maxD uint64
	for i := first; i <= last; i++ {
		b := &c.tl.bins[i]
		maxE = max(maxE, b.events)
		var d uint64
		for _, k := range b.decisions {
			d += k
		}
		maxD = max(maxD, d)
	}
	eTop, dTop := niceCeil(maxE), niceCeil(max(maxD, 1))
	ch.grid(aTop, aBot, eTop)
	ch.grid(bTop, bBot, dTop)

	var ev path
	dec := make([]path, numActions)
	for i := first; i <= last; i++ {
		b := &c.tl.bins[i]
		x := plotL + float64(i-first)*bw
		if b.events > 0 {
			ev.bar(x, aBot, bw, barHeight(b.events, eTop, aBot-aTop))
		}
		base := bBot
		for a, k := range b.decisions {
			if k == 0 {
				continue
			}
			h := barHeight(k, dTop, bBot-bTop)
			dec[a].bar(x, base, bw, h)
			base -= h
		}
		if !b.empty() {
			t0 := c.tl.origin + int64(i)*c.tl.width
			ch.Rects = append(ch.Rects, rect{Class: "hit", X: x, Y: aTop, W: bw, H: bBot - aTop,
				Title: fmt.Sprintf("%s to %s: %s events; %s", c.formatTime(t0, false), c.formatTime(t0+c.tl.width, false),
					group(b.events), c.decisionWords(b.decisions))})
		}
	}
	ch.Paths = append(ch.Paths, shape{Class: "ev", D: ev.String()})
	for a := range dec {
		if len(dec[a]) > 0 {
			ch.Paths = append(ch.Paths, shape{Class: actionName(a), D: dec[a].String()})
		}
	}
	ch.text(plotL, aTop-10, "", "head", "events per "+formatSpan(c.tl.width))
	ch.text(plotL, bTop-10, "", "head", "decisions per "+formatSpan(c.tl.width))
	ch.legend(plotR, bTop-10)
	ch.timeAxis(start, end, bBot, c.loc)
	return ch
}

// legend writes the action colours, right-aligned at x.
func (ch *chart) legend(x, y float64) {
	for a := numActions - 1; a >= 0; a-- {
		name := actionName(a)
		w := 7*float64(len(name)) + 26
		x -= w
		ch.Rects = append(ch.Rects, rect{Class: name, X: x, Y: y - 9, W: 10, H: 10})
		ch.text(x+14, y, "", "", name)
	}
}

// grid draws a panel's baseline, top line and their values.
func (ch *chart) grid(top, bot float64, max uint64) {
	var g path
	g.hline(plotL, plotR, top)
	g.hline(plotL, plotR, (top+bot)/2)
	ch.Paths = append(ch.Paths, shape{Class: "grid", D: g.String()})
	var a path
	a.hline(plotL, plotR, bot)
	ch.Paths = append(ch.Paths, shape{Class: "axis", D: a.String()})
	ch.text(plotL-6, top+4, "end", "muted", group(max))
	ch.text(plotL-6, (top+bot)/2+4, "end", "muted", group(max/2))
	ch.text(plotL-6, bot+4, "end", "muted", "0")
}

// timeAxis writes time labels under y for the span [start, end).
func (ch *chart) timeAxis(start, end int64, y float64, loc *time.Location) {
	var ticks path
	for _, t := range timeTicks(start, end, loc) {
		x := plotL + float64(t.at-start)/float64(end-start)*(plotR-plotL)
		ticks.vline(x, y, y+4)
		ch.text(x, y+17, "middle", "muted", t.label)
	}
	ch.Paths = append(ch.Paths, shape{Class: "axis", D: ticks.String()})
}

func barHeight(n, top uint64, h float64) float64 {
	v := float64(n) / float64(top) * h
	// A bin with anything in it stays visible.
	return max(v, 1)
}

func (ch *chart) text(x, y float64, anchor, class, s string) {
	ch.Texts = append(ch.Texts, label{X: x, Y: y, Anchor: anchor, Class: class, S: s})
}

func emptyChart(id, desc, msg string) chart {
	ch := chart{ID: id, Label: desc, W: chartW, H: 60}
	ch.text(chartW/2, 34, "middle", "muted", msg)
	return ch
}

// sourceViews draws the top sources, most events first.
func (c *Collector) sourceViews() []sourceView {
	order := make([]int, len(c.top.slots))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		sa, sb := &c.top.slots[a], &c.top.slots[b]
		if sa.count != sb.count {
			if sa.count > sb.count {
				return -1
			}
			return 1
		}
		// Between equals, the ones the rules decided on first.
		if da, db := sa.dec[0]+sa.dec[1]+sa.dec[2], sb.dec[0]+sb.dec[1]+sb.dec[2]; da != db {
			if da > db {
				return -1
			}
			return 1
		}
		if d := sa.key.Addr().Compare(sb.key.Addr()); d != 0 {
			return d
		}
		return sa.key.Bits() - sb.key.Bits()
	})
	if len(order) > c.shown {
		order = order[:c.shown]
	}
	views := make([]sourceView, 0, len(order))
	for r, i := range order {
		s := &c.top.slots[i]
		v := sourceView{Rank: r + 1, ID: fmt.Sprintf("source-%d", r+1), Key: s.key.String(),
			First: c.formatTime(s.first, true), Last: c.formatTime(s.last, true)}
		v.Events = group(s.count)
		if s.over > 0 {
			v.Events = "≥ " + group(s.count-s.over)
		}
		v.Decisions = c.decisionWords([numActions]uint64{uint64(s.dec[0]), uint64(s.dec[1]), uint64(s.dec[2])})
		if v.Decisions == "none" {
			v.Decisions = "no decision"
		}
		pts := c.top.pts[i*c.top.points : i*c.top.points+int(s.npts)]
		v.Chart = c.sourceChart(v.ID+"-chart", s, pts)
		views = append(views, v)
	}
	return views
}

// sourceChart draws one source's sampled probes: destination port over the
// time the source was tracked, one colour per protocol, decisions as
// dashed lines.
func (c *Collector) sourceChart(id string, s *source, pts []point) chart {
	ch := chart{ID: id, Label: "probes of " + s.key.String() + " by destination port over time", W: chartW, H: 220}
	const top, bot = 28.0, 180.0
	t0, t1 := s.first, s.last
	if t1-t0 < int64(time.Second) {
		mid := t0 + (t1-t0)/2
		t0, t1 = mid-int64(time.Second)/2, mid+int64(time.Second)/2
	}
	// A margin, so the first and last probes are not on the frame.
	m := (t1 - t0) / 50
	t0, t1 = t0-m, t1+m
	var maxPort uint16
	for _, p := range pts {
		maxPort = max(maxPort, p.port)
	}
	ceil := portCeil(maxPort)
	var g path
	for q := 1; q <= 4; q++ {
		g.hline(plotL, plotR, bot-float64(q)/4*(bot-top))
	}
	ch.Paths = append(ch.Paths, shape{Class: "grid", D: g.String()})
	var a path
	a.hline(plotL, plotR, bot)
	ch.Paths = append(ch.Paths, shape{Class: "axis", D: a.String()})
	for q := 0; q <= 4; q++ {
		ch.text(plotL-6, bot-float64(q)/4*(bot-top)+4, "end", "muted", strconv.Itoa(int(math.Round(float64(q)/4*float64(ceil)))))
	}
	ch.text(8, top-12, "", "muted", "port")

	x := func(t int64) float64 { return plotL + float64(t-t0)/float64(t1-t0)*(plotR-plotL) }
	y := func(p uint16) float64 { return bot - float64(p)/float64(ceil)*(bot-top) }
	classes := [...]string{"tcp", "udp", "other"}
	var cells [len(classes)][]uint64
	for _, p := range pts {
		k := 2
		switch p.proto {
		case parsers.ProtoTCP:
			k = 0
		case parsers.ProtoUDP:
			k = 1
		}
		// Points are kept on a half-unit grid: the same probe twice is
		// drawn once.
		xi, yi := uint64(math.Round(x(p.t)*2)), uint64(math.Round(y(p.port)*2))
		cells[k] = append(cells[k], xi<<32|yi)
	}
	for k, cs := range cells {
		if len(cs) == 0 {
			continue
		}
		slices.Sort(cs)
		cs = slices.Compact(cs)
		var d path
		for _, v := range cs {
			d.dot(float64(v>>32)/2, float64(v&0xffffffff)/2)
		}
		ch.Paths = append(ch.Paths, shape{Class: "dot " + classes[k], D: d.String()})
	}
	for _, mk := range s.marks[:s.nmarks] {
		var d path
		d.vline(x(mk.t), top-4, bot)
		ch.Paths = append(ch.Paths, shape{Class: "mk " + mk.action.String(), D: d.String(),
			Title: fmt.Sprintf("%s (%s) at %s", mk.action, mk.rule, c.formatTime(mk.t, true))})
	}
	// Legend: protocols, then decisions.
	lx := plotR
	for k := len(classes) - 1; k >= 0; k-- {
		name := strings.ToUpper(classes[k])
		if k == 2 {
			name = "other"
		}
		lx -= 7*float64(len(name)) + 24
		ch.Rects = append(ch.Rects, rect{Class: "key " + classes[k], X: lx, Y: top - 21, W: 10, H: 10})
		ch.text(lx+14, top-12, "", "", name)
	}
	ch.text(plotL, top-12, "", "muted", fmt.Sprintf("%d of %s probes shown", len(pts), group(s.seen)))
	ch.timeAxis(t0, t1, bot, c.loc)
	return ch
}

// rulesChart draws, per rule, the events it matched and the decisions it
// made, each on its own scale.
func (c *Collector) rulesChart() chart {
	const id, desc = "rules-chart", "events and decisions per rule"
	type row struct {
		name   string
		events uint64
		dec    [numActions]uint64
	}
	var rows []row
	for _, r := range c.totals.Rules {
		rows = append(rows, row{name: r.Name, events: r.Events})
	}
	for _, d := range c.byRule {
		i := slices.IndexFunc(rows, func(r row) bool { return r.name == d.name })
		if i < 0 {
			rows = append(rows, row{name: d.name})
			i = len(rows) - 1
		}
		rows[i].dec = d.n
	}
	if c.otherRules != [numActions]uint64{} {
		rows = append(rows, row{name: "(other rules)", dec: c.otherRules})
	}
	if len(rows) == 0 {
		return emptyChart(id, desc, "No rules and no decisions.")
	}
	const rowH, top = 26.0, 40.0
	ch := chart{ID: id, Label: desc, W: chartW, H: int(top + rowH*float64(len(rows)) + 10)}
	const eL, eW, dL, dW = 210.0, 300.0, 640.0, 220.0
	var maxE, maxD uint64
	for _, r := range rows {
		maxE = max(maxE, r.events)
		maxD = max(maxD, r.dec[0]+r.dec[1]+r.dec[2])
	}
	ch.text(eL, 18, "", "head", "events matched")
	ch.text(dL, 18, "", "head", "decisions")
	ch.legend(plotR, 34)
	var ev path
	dec := make([]path, numActions)
	for i, r := range rows {
		y := top + rowH*float64(i)
		ch.text(8, y+15, "", "", clip(r.name, 26))
		if r.events > 0 {
			w := float64(r.events) / float64(maxE) * eW
			ev.bar(eL, y+20, max(w, 1), 16)
		}
		ch.text(eL+eW+8, y+15, "", "muted", group(r.events))
		x := dL
		var total uint64
		for a, k := range r.dec {
			if k == 0 {
				continue
			}
			total += k
			w := max(float64(k)/float64(maxD)*dW, 1)
			dec[a].bar(x, y+20, w, 16)
			x += w
		}
		ch.text(x+8, y+15, "", "muted", group(total))
	}
	ch.Paths = append(ch.Paths, shape{Class: "bar", D: ev.String()})
	for a := range dec {
		if len(dec[a]) > 0 {
			ch.Paths = append(ch.Paths, shape{Class: actionName(a), D: dec[a].String()})
		}
	}
	return ch
}

// malformedChart draws the malformed lines by reason: every reason, so an
// empty bar says none was seen.
func (c *Collector) malformedChart() (string, chart) {
	const id, desc = "malformed-chart", "malformed lines by reason"
	var reasons []parsers.Outcome
	var total, maxN uint64
	for o := parsers.Outcome(0); int(o) < parsers.NumOutcomes; o++ {
		if o.Malformed() {
			reasons = append(reasons, o)
			total += c.totals.Outcomes[o]
			maxN = max(maxN, c.totals.Outcomes[o])
		}
	}
	firewall := c.totals.Outcomes[parsers.Parsed] + total
	note := fmt.Sprintf("%s of %s firewall lines were malformed: counted, never taken as evidence.", group(total), group(firewall))
	if !c.haveTotals {
		note = "No line counts were given."
	}
	const rowH, top = 24.0, 8.0
	ch := chart{ID: id, Label: desc, W: chartW, H: int(top + rowH*float64(len(reasons)) + 8)}
	const bL, bW = 160.0, 600.0
	var bars path
	for i, o := range reasons {
		y := top + rowH*float64(i)
		n := c.totals.Outcomes[o]
		ch.text(8, y+15, "", "", o.String())
		s := "0"
		if n > 0 {
			bars.bar(bL, y+19, max(float64(n)/float64(maxN)*bW, 1), 15)
			s = fmt.Sprintf("%s (%.2f%%)", group(n), 100*float64(n)/float64(firewall))
		}
		ch.text(bL+bW+8, y+15, "", "muted", s)
	}
	ch.Paths = append(ch.Paths, shape{Class: "bad", D: bars.String()})
	return note, ch
}

// path builds SVG path data with coordinates rounded to a tenth.
type path []byte

func (p *path) num(x float64) {
	if len(*p) > 0 {
		switch (*p)[len(*p)-1] {
		case 'M', 'V', 'H', 'v', 'h', 'z':
		default:
			*p = append(*p, ' ')
		}
	}
	*p = strconv.AppendFloat(*p, math.Round(x*10)/10, 'f', -1, 64)
}

// bar adds a rectangle standing on base.
func (p *path) bar(x, base, w, h float64) {
	*p = append(*p, 'M')
	p.num(x)
	p.num(base)
	*p = append(*p, 'v')
	p.num(-h)
	*p = append(*p, 'h')
	p.num(w)
	*p = append(*p, 'v')
	p.num(h)
	*p = append(*p, 'z')
}

func (p *path) dot(x, y float64) {
	*p = append(*p, 'M')
	p.num(x)
	p.num(y)
	*p = append(*p, 'h', '0')
}

func (p *path) hline(x0, x1, y float64) {
	*p = append(*p, 'M')
	p.num(x0)
	p.num(y)
	*p = append(*p, 'H')
	p.num(x1)
}

func (p *path) vline(x, y0, y1 float64) {
	*p = append(*p, 'M')
	p.num(x)
	p.num(y0)
	*p = append(*p, 'V')
	p.num(y1)
}

func (p path) String() string { return string(p) }

// num formats a coordinate for an attribute.
func num(x float64) string {
	return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten.
func niceCeil(n uint64) uint64 {
	if n <= 1 {
		return 1
	}
	for p := uint64(1); ; p *= 10 {
		for _, m := range [...]uint64{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
		if p > math.MaxUint64/100 {
			return n
		}
	}
}

// portCeil is the top of a port axis that holds p.
func portCeil(p uint16) int {
	for _, c := range [...]int{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768} {
		if int(p) <= c {
			return c
		}
	}
	return 65535
}

// group writes n with thousands separators.
func group(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (c *Collector) formatTime(t int64, date bool) string {
	tm := time.Unix(0, t).In(c.location())
	if date {
		return tm.Format("2006-01-02 15:04:05 MST")
	}
	return tm.Format("Jan 2 15:04:05")
}

func (c *Collector) location() *time.Location {
	if c.loc == nil {
		return time.UTC
	}
	return c.loc
}

// formatSpan writes a bin width the way people say it: 1s, 10m, 2h, 1d.
func formatSpan(ns int64) string {
	d := time.Duration(ns)
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.unit
		}
	}
	return d.String()
}

type tick struct {
	at    int64
	label string
}

// timeTicks picks round times in [start, end] in loc, at most 8, labelled
// with the time of day, or the date at midnight and for spans of days.
func timeTicks(start, end int64, loc *time.Location) []tick {
	if loc == nil {
		loc = time.UTC
	}
	steps := [...]int64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
		86400, 172800, 604800, 1209600, 2592000, 7776000, 15552000, 31536000}
	span := end - start
	step := steps[len(steps)-1] * int64(time.Second)
	for _, s := range steps {
		if span/(s*int64(time.Second)) <= 8 {
			step = s * int64(time.Second)
			break
		}
	}
	for span/step > 8 {
		step *= 2
	}
	_, off := time.Unix(0, start).In(loc).Zone()
	offNs := int64(off) * int64(time.Second)
	at := (floorDiv(start+offNs, step)+1)*step - offNs
	if (start+offNs)%step == 0 {
		at = start
	}
	var out []tick
	for ; at <= end; at += step {
		tm := time.Unix(0, at).In(loc)
		var l string
		switch {
		case step >= 86400*int64(time.Second):
			l = tm.Format("Jan 2")
		case tm.Hour() == 0 && tm.Minute() == 0 && tm.Second() == 0:
			l = tm.Format("Jan 2")
		case step < 60*int64(time.Second):
			l = tm.Format("15:04:05")
		default:
			l = tm.Format("15:04")
		}
		out = append(out, tick{at, l})
	}
	return out
}
