package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

var t0 = time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)

// The scenario's sources, in the order of their event counts.
var (
	sweeper = netip.MustParseAddr("203.0.113.5")   // ports 1-300 in order, 20 a second
	random  = netip.MustParseAddr("198.51.100.7")  // 200 random ports over ten minutes
	slow    = netip.MustParseAddr("2001:db8:1::9") // one UDP port every 20 minutes, never banned
	stealth = netip.MustParseAddr("203.0.113.66")  // one FIN probe
	slowKey = netip.MustParsePrefix("2001:db8:1::/64")
)

func engineConfig() rules.Config {
	return rules.Config{
		Rules: []rules.Rule{
			{Name: "tcp-portscan", Protos: []uint8{parsers.ProtoTCP}, Flags: rules.ClassSYN, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
			{Name: "stealth-scan", Protos: []uint8{parsers.ProtoTCP}, Flags: rules.ClassNull | rules.ClassFIN | rules.ClassXmas, Hits: 1, Ban: 24 * time.Hour},
			{Name: "udp-portscan", Protos: []uint8{parsers.ProtoUDP}, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		},
		Bans:              rules.DefaultBanPolicy(),
		MaxTrackedSources: 65536,
	}
}

func probe(src netip.Addr, at time.Duration, proto uint8, port uint16) parsers.Event {
	ev := parsers.Event{Time: t0.Add(at), Src: src, Proto: proto, DstPort: port, SrcPort: 40000, Prefix: "SENTRY"}
	if src.Is4() {
		ev.Dst = netip.MustParseAddr("192.0.2.10")
	} else {
		ev.Dst = netip.MustParseAddr("2001:db8::1")
	}
	if proto == parsers.ProtoTCP {
		ev.Flags = parsers.SYN
	}
	return ev
}

// scenario returns the events of a small replay with a sweep, a random-order
// scan, a slow scan, a stealth probe and 300 one-off sources (more than the
// table tracks), in time order.
func scenario() []parsers.Event {
	r := rand.New(rand.NewPCG(7, 7))
	var evs []parsers.Event
	for p := range 300 {
		evs = append(evs, probe(sweeper, time.Minute+time.Duration(p)*50*time.Millisecond, parsers.ProtoTCP, uint16(p+1)))
	}
	for i := range 200 {
		evs = append(evs, probe(random, 2*time.Minute+time.Duration(i)*3*time.Second, parsers.ProtoTCP, uint16(1+r.IntN(65535))))
	}
	for i := range 36 {
		evs = append(evs, probe(slow, time.Duration(i)*20*time.Minute, parsers.ProtoUDP, uint16(1000+37*i)))
	}
	fin := probe(stealth, 3*time.Hour, parsers.ProtoTCP, 22)
	fin.Flags = parsers.FIN
	evs = append(evs, fin)
	for i := range 300 {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 250)})
		if i >= 250 {
			src = netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i - 250)})
		}
		evs = append(evs, probe(src, time.Duration(i)*37*time.Second, parsers.ProtoTCP, uint16(1+r.IntN(1024))))
	}
	slices.SortStableFunc(evs, func(a, b parsers.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

// replay feeds events through a real engine into a collector, as the replay
// command does, and returns it with its totals recorded.
func replay(t testing.TB, evs []parsers.Event, opts Options) (*Collector, []rules.Decision) {
	t.Helper()
	engine, err := rules.NewEngine(engineConfig())
	if err != nil {
		t.Fatal(err)
	}
	if opts.Key == nil {
		opts.Key = engine.Key
	}
	c := New(opts)
	var ds []rules.Decision
	for i := range evs {
		c.Event(&evs[i])
		if d, ok := engine.Step(&evs[i]); ok {
			c.Decision(&d)
			ds = append(ds, d)
		}
	}
	tot := Totals{Inputs: []string{"kern.log"}, Config: "sentry.yaml", Lines: uint64(len(evs)) + 75}
	tot.Outcomes[parsers.Parsed] = uint64(len(evs))
	tot.Outcomes[parsers.Skipped] = 60
	tot.Outcomes[parsers.BadPort] = 9
	tot.Outcomes[parsers.Truncated] = 6
	es := engine.Stats()
	for i, r := range engine.Rules() {
		tot.Rules = append(tot.Rules, RuleEvents{Name: r.Name, Events: es.RuleEvents[i]})
	}
	c.Totals(tot)
	return c, ds
}

func render(t testing.TB, c *Collector) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scenarioPage(t testing.TB) []byte {
	c, _ := replay(t, scenario(), Options{Seed: 1})
	return render(t, c)
}

func TestGolden(t *testing.T) {
	got := scenarioPage(t)
	testkit.Golden(t, filepath.Join("testdata", "scenario.html"), got)
}

// TestDeterministic: the same input and seed give the same bytes, so the
// golden file tests the rendering and not the luck of the sampling.
func TestDeterministic(t *testing.T) {
	if a, b := scenarioPage(t), scenarioPage(t); !bytes.Equal(a, b) {
		t.Fatal("two renderings of the same replay differ")
	}
}

// walk calls fn for n and every node below it.
func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
	})
	return b.String()
}

func find(n *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(n, func(n *html.Node) {
		if pred(n) {
			out = append(out, n)
		}
	})
	return out
}

func elem(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == tag }
}

// sections are the page's sections, each with at least one chart.
var sections = []string{"timeline", "sources", "rules", "malformed"}

func TestStructure(t *testing.T) {
	page := scenarioPage(t)
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}

	// Self-contained: nothing that loads from elsewhere.
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script", "link", "img", "iframe", "object", "embed", "image", "use", "foreignobject":
			t.Errorf("page has a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			switch {
			case a.Key == "src" || a.Key == "xlink:href" || a.Key == "srcset":
				t.Errorf("<%s> has %s=%q", n.Data, a.Key, a.Val)
			case a.Key == "href" && !strings.HasPrefix(a.Val, "#"):
				t.Errorf("<%s> links out: href=%q", n.Data, a.Val)
			case strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s> has a handler %s", n.Data, a.Key)
			}
		}
	})
	if s := string(page); strings.Contains(s, "url(") || strings.Contains(s, "@import") {
		t.Error("the style sheet refers to a resource")
	}
	csp := find(doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "meta" && strings.EqualFold(attr(n, "http-equiv"), "Content-Security-Policy")
	})
	if len(csp) != 1 || !strings.HasPrefix(attr(csp[0], "content"), "default-src 'none'") {
		t.Errorf("want one Content-Security-Policy of default-src 'none', got %d", len(csp))
	}

	// One chart or more per section, every chart well-formed XML.
	for _, id := range sections {
		secs := find(doc, func(n *html.Node) bool { return elem("section")(n) && attr(n, "id") == id })
		if len(secs) != 1 {
			t.Errorf("want one section %q, got %d", id, len(secs))
			continue
		}
		svgs := find(secs[0], elem("svg"))
		if len(svgs) == 0 {
			t.Errorf("section %q has no chart", id)
		}
		for _, svg := range svgs {
			if attr(svg, "class") != "chart" || attr(svg, "viewBox") == "" || attr(svg, "aria-label") == "" {
				t.Errorf("section %q: svg %q lacks class, viewBox or aria-label", id, attr(svg, "id"))
			}
			checkXML(t, svg)
		}
	}

	// The top sources, most events first, one chart each.
	arts := find(doc, elem("article"))
	var keys []string
	for _, a := range arts {
		codes := find(a, elem("code"))
		if len(codes) == 0 {
			t.Fatalf("article %q has no source", attr(a, "id"))
		}
		keys = append(keys, textOf(codes[0]))
		if n := len(find(a, elem("svg"))); n != 1 {
			t.Errorf("source %s has %d charts, want 1", keys[len(keys)-1], n)
		}
	}
	want := []string{"203.0.113.5/32", "198.51.100.7/32", "2001:db8:1::/64"}
	if len(keys) != DefaultSources || !slices.Equal(keys[:3], want) {
		t.Errorf("sources charted %v, want %d of them starting %v", keys, DefaultSources, want)
	}
	if got := textOf(arts[0]); !strings.Contains(got, "300 events") || !strings.Contains(got, "ban 1") {
		t.Errorf("sweeper's heading %q, want 300 events and its ban", got)
	}

	// Rules and malformed reasons are named.
	body := textOf(doc)
	for _, s := range []string{"tcp-portscan", "stealth-scan", "udp-portscan", "bad-port", "truncated", "15 of 852 firewall lines"} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

// checkXML renders an svg element alone and parses it strictly as XML.
func checkXML(t *testing.T, svg *html.Node) {
	t.Helper()
	var b bytes.Buffer
	if err := html.Render(&b, svg); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&b)
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("svg %q is not well-formed: %v", attr(svg, "id"), err)
			return
		}
	}
}

// dots counts the probes drawn in a source chart.
func dots(svg *html.Node) int {
	n := 0
	for _, p := range find(svg, elem("path")) {
		if strings.HasPrefix(attr(p, "class"), "dot ") {
			n += strings.Count(attr(p, "d"), "M")
		}
	}
	return n
}

// TestShapes: the sweep is drawn as a rising line, the slow scan's dots
// spread over its twelve hours, and decisions are marked.
func TestShapes(t *testing.T) {
	c, ds := replay(t, scenario(), Options{Seed: 1})
	if len(ds) == 0 {
		t.Fatal("the scenario made no decision")
	}
	view := map[string]*source{}
	for i := range c.top.slots {
		view[c.top.slots[i].key.String()] = &c.top.slots[i]
	}
	sw := view["203.0.113.5/32"]
	if sw == nil || sw.count != 300 || sw.over != 0 || sw.npts != 300 || sw.dec[rules.Ban] != 1 || sw.nmarks != 1 {
		t.Fatalf("sweeper tracked as %+v", sw)
	}
	sl := view[slowKey.String()]
	if sl == nil || sl.count != 36 || time.Duration(sl.last-sl.first) != 35*20*time.Minute || sl.dec != [numActions]uint32{} {
		t.Fatalf("slow scanner tracked as %+v", sl)
	}
	ch := c.sourceChart("x", sw, c.top.pts[c.top.index[sw.key]*int32(c.top.points):][:sw.npts])
	var dotPath string
	for _, p := range ch.Paths {
		if p.Class == "dot tcp" {
			dotPath = p.D
		}
	}
	// Each next port is later and higher: x rises, y falls.
	var xs, ys []float64
	for _, m := range strings.Split(dotPath, "M")[1:] {
		var x, y float64
		if _, err := fmt.Sscanf(m, "%g %gh0", &x, &y); err != nil {
			t.Fatalf("dot %q: %v", m, err)
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	if len(xs) < 250 || !slices.IsSorted(xs) || !slices.IsSortedFunc(ys, func(a, b float64) int { return -cmpf(a, b) }) {
		t.Errorf("sweep not drawn as a rising line: %d dots", len(xs))
	}
	var marks int
	for _, p := range ch.Paths {
		if p.Class == "mk ban" && strings.Contains(p.Title, "tcp-portscan") {
			marks++
		}
	}
	if marks != 1 {
		t.Errorf("sweeper's chart marks %d bans, want 1", marks)
	}
}

func cmpf(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestEmpty: a replay with no events still has every section and chart.
func TestEmpty(t *testing.T) {
	c := New(Options{})
	c.Totals(Totals{Lines: 3, Outcomes: [parsers.NumOutcomes]uint64{parsers.Skipped: 3}})
	doc, err := html.Parse(bytes.NewReader(render(t, c)))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range sections {
		secs := find(doc, func(n *html.Node) bool { return elem("section")(n) && attr(n, "id") == id })
		if len(secs) != 1 || len(find(secs[0], elem("svg"))) != 1 {
			t.Errorf("section %q: want exactly one chart", id)
		}
	}
}

// TestSizeBound: a million events from tens of thousands of sources over a
// long span, with thousands of decisions, make a page under 2 MB with at
// most Points probes per chart.
func TestSizeBound(t *testing.T) {
	if testing.Short() {
		t.Skip("a million events")
	}
	evs := replayLike(1<<20, 3)
	// A span of years, out of order at the end, to stretch the time axis.
	evs[len(evs)-1].Time = evs[0].Time.AddDate(3, 0, 0)
	evs[len(evs)-2].Time = evs[0].Time.AddDate(-1, 0, 0)
	c, ds := replay(t, evs, Options{})
	if len(ds) < 1000 {
		t.Fatalf("only %d decisions", len(ds))
	}
	page := render(t, c)
	t.Logf("%d events, %d decisions: %d bytes", len(evs), len(ds), len(page))
	if len(page) > 2<<20 {
		t.Errorf("page is %d bytes, over 2 MB", len(page))
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	arts := find(doc, elem("article"))
	if len(arts) != DefaultSources {
		t.Errorf("%d source charts, want %d", len(arts), DefaultSources)
	}
	for _, a := range arts {
		if n := dots(a); n == 0 || n > DefaultPoints {
			t.Errorf("source %s: %d probes drawn, want 1-%d", attr(a, "id"), n, DefaultPoints)
		}
	}
	// The 16 busy scanners of replayLike are the top sources.
	for _, a := range arts {
		if k := textOf(find(a, elem("code"))[0]); !strings.HasPrefix(k, "198.18.18.") {
			t.Errorf("charted %s, not one of the busy scanners", k)
		}
	}
	var total uint64
	for i := range c.tl.bins {
		total += c.tl.bins[i].events
	}
	if total+c.tl.dropped != uint64(len(evs)) {
		t.Errorf("timeline holds %d events + %d dropped, want %d", total, c.tl.dropped, len(evs))
	}
}

// TestTimeline: bins grow through round widths, keep every count, and
// accept times before the first.
func TestTimeline(t *testing.T) {
	s := int64(time.Second)
	base := t0.UnixNano()
	for _, tc := range []struct {
		name  string
		times []int64
		width int64
	}{
		{"one second", []int64{base, base + s/2}, s},
		{"four minutes", []int64{base, base + 239*s}, s},
		{"just past", []int64{base, base + 240*s}, 2 * s},
		{"backwards", []int64{base + 100*s, base}, s},
		{"a day", []int64{base, base + 86400*s}, 600 * s},
		{"a day, in reverse", []int64{base + 86400*s, base + 3600*s, base}, 600 * s},
		{"a year", []int64{base, base + 365*86400*s}, 172800 * s},
		{"unreachable", []int64{base, base + 200*365*86400*s}, 2592000 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tl timeline
			for _, at := range tc.times {
				if i := tl.slot(at); i >= 0 {
					tl.bins[i].events++
				}
			}
			if tc.name == "unreachable" && tl.dropped != 1 {
				t.Errorf("%d dropped, want the time 200 years on", tl.dropped)
			}
			var n uint64
			for _, b := range tl.bins {
				n += b.events
			}
			if n+tl.dropped != uint64(len(tc.times)) {
				t.Errorf("%d counted + %d dropped, want %d", n, tl.dropped, len(tc.times))
			}
			if tl.width != tc.width && tc.name != "unreachable" {
				t.Errorf("width %v, want %v", time.Duration(tl.width), time.Duration(tc.width))
			}
			if tl.origin%tl.width != 0 {
				t.Errorf("origin %d not aligned to width %d", tl.origin, tl.width)
			}
			for _, at := range tc.times {
				if i := (at - tl.origin) / tl.width; at >= tl.origin && i < numBins && tl.bins[i].events == 0 {
					t.Errorf("time %d not in its bin %d", at, i)
				}
			}
		})
	}
}

// TestHeavyHitters: on a skewed stream whose sources far outnumber the
// table, the heaviest sources are tracked, and each tracked count brackets
// the true one.
func TestHeavyHitters(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	zipf := rand.NewZipf(r, 1.3, 1, 100000)
	truth := map[netip.Prefix]uint64{}
	var h heavy
	h.init(minTracked, 8)
	rng := uint64(1)
	for i := range 500000 {
		n := uint32(zipf.Uint64())
		k := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32)
		truth[k]++
		h.observe(k, point{t: int64(i)}, &rng)
	}
	type kv struct {
		k netip.Prefix
		n uint64
	}
	var all []kv
	for k, n := range truth {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.n) - int(a.n) })
	for _, e := range all[:20] {
		i, ok := h.index[e.k]
		if !ok {
			t.Errorf("source %s with %d events not tracked", e.k, e.n)
			continue
		}
		s := &h.slots[i]
		if e.n < s.count-s.over || e.n > s.count {
			t.Errorf("source %s: %d events, tracked as %d-%d", e.k, e.n, s.count-s.over, s.count)
		}
	}
	if h.replaced == 0 {
		t.Error("the table never replaced a source: the test is not testing")
	}
}

// TestReservoir: a source's sampled probes are spread evenly over its
// probes, not the first ones.
func TestReservoir(t *testing.T) {
	const n, k = 100000, 400
	var h heavy
	h.init(1, k)
	rng := uint64(9)
	key := netip.MustParsePrefix("203.0.113.1/32")
	for i := range n {
		h.observe(key, point{t: int64(i), port: uint16(i % 65536)}, &rng)
	}
	s := &h.slots[0]
	if s.npts != k || s.seen != n {
		t.Fatalf("%d points of %d seen", s.npts, s.seen)
	}
	var deciles [10]int
	for _, p := range h.pts[:k] {
		deciles[p.t*10/n]++
	}
	for d, c := range deciles {
		// 40 expected; a fair sample is far inside these bounds.
		if c < 15 || c > 70 {
			t.Errorf("decile %d holds %d of %d samples: %v", d, c, k, deciles)
		}
	}
}

// TestEventAllocs: counting an event allocates nothing.
func TestEventAllocs(t *testing.T) {
	evs := replayLike(1<<14, 4)
	c := New(Options{})
	for i := range evs {
		c.Event(&evs[i])
	}
	i := 0
	if a := testing.AllocsPerRun(10000, func() {
		c.Event(&evs[i%len(evs)])
		i++
	}); a != 0 {
		t.Errorf("Event allocates %.1f times", a)
	}
	d := rules.Decision{Time: t0, Action: rules.Ban, Key: netip.MustParsePrefix("198.18.18.1/32"), Rule: "tcp-portscan"}
	if a := testing.AllocsPerRun(1000, func() { c.Decision(&d) }); a != 0 {
		t.Errorf("Decision allocates %.1f times", a)
	}
}
