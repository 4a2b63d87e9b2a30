package report

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Defaults for Options.
const (
	// DefaultSources is how many top sources get a chart.
	DefaultSources = 12
	// DefaultPoints is how many probes a source's chart shows at most.
	DefaultPoints = 400
)

const (
	// numActions is the number of rules.Action values (ban, ignored,
	// rate-limited, throttled), as in rules.Stats.Decisions.
	numActions = len(rules.Stats{}.Decisions)
	// minTracked is the smallest heavy-hitter table: sources beyond the
	// charted ones are tracked too, so the charted ones are the true top
	// ones, not the latest arrivals.
	minTracked = 128
	// maxMarks is how many decisions a source's chart marks.
	maxMarks = 32
	// maxRuleNames bounds the per-rule decision counts; an engine has at
	// most rules.MaxRules rules, so none are lumped together in practice.
	maxRuleNames = rules.MaxRules
)

// Options shape a Collector. The zero value is usable.
type Options struct {
	// Key maps a source address to the key the engine decides on, so a
	// source's chart and its decisions agree (rules.Engine.Key). Nil keys
	// by the whole address.
	Key func(netip.Addr) netip.Prefix
	// Sources is how many top sources get a chart (DefaultSources when 0).
	Sources int
	// Points is the most probes one source's chart shows (DefaultPoints
	// when 0); they are a uniform sample of the source's probes.
	Points int
	// Seed seeds the sampling, so the same input gives the same page.
	Seed uint64
}

// Totals are the counts only the caller has: what the lines were and how
// many events each rule matched (rules.Stats.RuleEvents).
type Totals struct {
	// Inputs names what was replayed, Config the configuration file.
	Inputs []string
	Config string
	// Lines is every line read; Outcomes counts them by what the parser made
	// of them.
	Lines    uint64
	Outcomes [parsers.NumOutcomes]uint64
	// Rules lists the engine's rules in config order with the events each
	// matched.
	Rules []RuleEvents
}

// RuleEvents is one rule's name and the number of events it matched.
type RuleEvents struct {
	Name   string
	Events uint64
}

// Collector gathers what the page shows, in memory fixed at New. It is not
// safe for concurrent use: replay's engine goroutine owns it.
type Collector struct {
	key    func(netip.Addr) netip.Prefix
	shown  int
	loc    *time.Location
	rng    uint64
	events uint64
	// first and last are the earliest and latest event times.
	first, last int64
	// decisions counts decisions per rules.Action.
	decisions [numActions]uint64
	tl        timeline
	top       heavy
	// byRule counts decisions per rule name, in order of first decision.
	byRule       []ruleDecisions
	otherRules   [numActions]uint64
	totals       Totals
	haveTotals   bool
	pointsPerSrc int
}

type ruleDecisions struct {
	name string
	n    [numActions]uint64
}

// New returns a Collector; its tables are allocated here, once.
func New(opts Options) *Collector {
	if opts.Sources <= 0 {
		opts.Sources = DefaultSources
	}
	if opts.Points <= 0 {
		opts.Points = DefaultPoints
	}
	tracked := max(minTracked, 8*opts.Sources)
	c := &Collector{
		key:          opts.Key,
		shown:        opts.Sources,
		rng:          opts.Seed | 1,
		pointsPerSrc: opts.Points,
		byRule:       make([]ruleDecisions, 0, 8),
	}
	c.top.init(tracked, opts.Points)
	return c
}

// Event counts one event handed to the engine. It does not allocate once
// the source table is full.
func (c *Collector) Event(ev *parsers.Event) {
	if c.loc == nil {
		c.loc = ev.Time.Location()
	}
	t := ev.Time.UnixNano()
	if c.events == 0 {
		c.first, c.last = t, t
	}
	c.first, c.last = min(c.first, t), max(c.last, t)
	c.events++
	if i := c.tl.slot(t); i >= 0 {
		c.tl.bins[i].events++
	}
	var key netip.Prefix
	if c.key != nil {
		key = c.key(ev.Src)
	} else {
		key = netip.PrefixFrom(ev.Src, ev.Src.BitLen())
	}
	c.top.observe(key, point{t: t, port: ev.DstPort, proto: ev.Proto}, &c.rng)
}

// Decision counts one decision of the engine; it is marked on its source's
// chart when the source is tracked.
func (c *Collector) Decision(d *rules.Decision) {
	a := int(d.Action)
	if a >= numActions {
		return
	}
	c.decisions[a]++
	t := d.Time.UnixNano()
	if i := c.tl.slot(t); i >= 0 {
		c.tl.bins[i].decisions[a]++
	}
	c.ruleDecided(d.Rule, a)
	if i, ok := c.top.index[d.Key]; ok {
		s := &c.top.slots[i]
		s.dec[a]++
		if s.nmarks < maxMarks {
			s.marks[s.nmarks] = mark{t: t, action: d.Action, rule: d.Rule}
			s.nmarks++
		}
	}
}

func (c *Collector) ruleDecided(name string, a int) {
	for i := range c.byRule {
		if c.byRule[i].name == name {
			c.byRule[i].n[a]++
			return
		}
	}
	if len(c.byRule) >= maxRuleNames {
		c.otherRules[a]++
		return
	}
	r := ruleDecisions{name: name}
	r.n[a]++
	c.byRule = append(c.byRule, r)
}

// Totals records the caller's counts for the page; call it once, before
// Write.
func (c *Collector) Totals(t Totals) {
	c.totals = t
	c.haveTotals = true
}

// point is one sampled probe: its time, destination port and protocol.
type point struct {
	t     int64
	port  uint16
	proto uint8
}

// mark is one decision on a source's chart.
type mark struct {
	t      int64
	action rules.Action
	rule   string
}

// timeline counts events and decisions in numBins bins of one width. The
// width grows along widths() as the span of times grows, and bins stay
// aligned to multiples of their width since the Unix epoch, so each old bin
// falls into exactly one new bin.
type timeline struct {
	origin, width int64
	bins          [numBins]bin
	// dropped counts times beyond the widest span (absurd timestamps).
	dropped uint64
}

type bin struct {
	events    uint64
	decisions [numActions]uint64
}

// numBins is how many time bins the timeline has.
const numBins = 240

// maxBinWidth keeps numBins*width far from overflowing int64 (about 208
// days a bin, 137 years a timeline).
const maxBinWidth = int64(1) << 54

// nextWidth returns the bin width after w. The widths, in seconds, are ones
// people read (1s, 10s, 1m, 10m, 1h, 1d ...), each a multiple of the one
// before; past 30 days they double.
func nextWidth(w int64) int64 {
	widths := [...]int64{1, 2, 10, 30, 60, 120, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 864000, 2592000}
	for _, s := range widths {
		if s*int64(time.Second) > w {
			return s * int64(time.Second)
		}
	}
	return 2 * w
}

// slot returns the bin for time t (ns since the epoch), growing the
// timeline when t falls outside it, or -1 when t cannot fit.
func (tl *timeline) slot(t int64) int {
	if tl.width == 0 {
		tl.width = int64(time.Second)
		tl.origin = floorDiv(t, tl.width) * tl.width
	}
	if t >= tl.origin {
		if i := (t - tl.origin) / tl.width; i < numBins {
			return int(i)
		}
	}
	return tl.grow(t)
}

// grow re-bins the timeline so that both its non-empty bins and t fit:
// first by moving the origin, then by widening the bins.
func (tl *timeline) grow(t int64) int {
	lo, hi := t, t
	if first, last, ok := tl.extent(); ok {
		lo = min(lo, tl.origin+int64(first)*tl.width)
		hi = max(hi, tl.origin+int64(last+1)*tl.width-1)
	}
	for w := tl.width; w <= maxBinWidth; w = nextWidth(w) {
		o := floorDiv(lo, w) * w
		if (hi-o)/w < numBins {
			tl.rebin(o, w)
			return int((t - o) / w)
		}
	}
	tl.dropped++
	return -1
}

// extent returns the first and last non-empty bins.
func (tl *timeline) extent() (first, last int, ok bool) {
	first, last = -1, -1
	for i := range tl.bins {
		if !tl.bins[i].empty() {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last, first >= 0
}

func (tl *timeline) rebin(o, w int64) {
	var nb [numBins]bin
	for i := range tl.bins {
		b := &tl.bins[i]
		if b.empty() {
			continue
		}
		j := (tl.origin + int64(i)*tl.width - o) / w
		nb[j].events += b.events
		for a := range b.decisions {
			nb[j].decisions[a] += b.decisions[a]
		}
	}
	tl.bins, tl.origin, tl.width = nb, o, w
}

func (b *bin) empty() bool {
	return b.events == 0 && b.decisions == [numActions]uint64{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// heavy is a Filtered Space-Saving table (Homem and Carvalho, 2010) of the
// sources with the most events. A source not in the full table counts in a
// cell of filter, shared by the sources hashing there, whose value is an
// upper bound on the events of any untracked source of that cell; once the
// cell reaches the smallest count in the table, the source replaces that
// entry, starting from the cell's value, and the evicted source's count goes
// back to its own cell. Sources with a large share of the events thus stay
// in the table, while the many one-off sources of a replay cost one counter
// each instead of a replacement. A min-heap on the counts finds the entry
// to replace.
type heavy struct {
	index    map[netip.Prefix]int32
	slots    []source
	heap     []int32
	filter   []uint32
	pts      []point
	points   int
	replaced uint64
}

// filterCells is the size of the admission filter (a power of two).
const filterCells = 1 << 16

// source is one tracked source.
type source struct {
	key netip.Prefix
	// count is the Space-Saving estimate, over the part of it inherited on
	// admission: count-over events were seen while tracked, and the true
	// count lies between the two.
	count, over uint64
	first, last int64
	// seen counts the events offered to the reservoir; next is the seen
	// index of the next event to take once it is full (Li's algorithm L),
	// and w its running weight.
	seen, next uint64
	w          float64
	npts       int32
	pos        int32
	dec        [numActions]uint32
	nmarks     int
	marks      [maxMarks]mark
}

func (h *heavy) init(tracked, points int) {
	h.index = make(map[netip.Prefix]int32, tracked)
	h.slots = make([]source, 0, tracked)
	h.heap = make([]int32, 0, tracked)
	h.filter = make([]uint32, filterCells)
	h.pts = make([]point, tracked*points)
	h.points = points
}

func (h *heavy) observe(key netip.Prefix, p point, rng *uint64) {
	i, ok := h.index[key]
	if !ok {
		if len(h.slots) == cap(h.slots) {
			cell := &h.filter[cellOf(key)]
			if *cell < math.MaxUint32 {
				*cell++
			}
			if uint64(*cell) < h.slots[h.heap[0]].count {
				return
			}
		}
		i = h.admit(key, p.t)
	}
	s := &h.slots[i]
	s.count++
	h.down(int(s.pos))
	s.first = min(s.first, p.t)
	s.last = max(s.last, p.t)
	s.seen++
	k := uint64(h.points)
	res := h.pts[int(i)*h.points : (int(i)+1)*h.points]
	switch {
	case s.seen <= k:
		res[s.npts] = p
		s.npts++
		if s.seen == k {
			s.w = math.Exp(math.Log(uniform(rng)) / float64(k))
			s.next = s.seen + skip(s.w, rng)
		}
	case s.seen == s.next:
		res[next(rng)%k] = p
		s.w *= math.Exp(math.Log(uniform(rng)) / float64(k))
		s.next += skip(s.w, rng)
	}
}

// skip is how many events algorithm L passes over before the next one it
// takes, plus one.
func skip(w float64, rng *uint64) uint64 {
	n := math.Floor(math.Log(uniform(rng))/math.Log1p(-w)) + 1
	if !(n < 1<<62) { // also NaN
		return 1 << 62
	}
	return uint64(n)
}

// admit puts key in the table, replacing the smallest count when it is
// full, and returns its slot.
func (h *heavy) admit(key netip.Prefix, t int64) int32 {
	var i int32
	var over uint64
	if len(h.slots) == cap(h.slots) {
		// The cell counted this event already: start from one less, and
		// hand the evicted source's count to its cell.
		over = uint64(h.filter[cellOf(key)]) - 1
	}
	if len(h.slots) < cap(h.slots) {
		i = int32(len(h.slots))
		h.slots = h.slots[:i+1]
		h.heap = append(h.heap, i)
		h.slots[i].pos = int32(len(h.heap) - 1)
	} else {
		i = h.heap[0]
		old := &h.slots[i]
		delete(h.index, old.key)
		cell := &h.filter[cellOf(old.key)]
		*cell = uint32(min(max(uint64(*cell), old.count), math.MaxUint32))
		h.replaced++
	}
	// Field by field: the marks need no clearing, and a whole new source
	// would copy a kilobyte on every replacement.
	s := &h.slots[i]
	s.key, s.count, s.over, s.first, s.last = key, over, over, t, t
	s.seen, s.next, s.w, s.npts, s.dec, s.nmarks = 0, 0, 0, 0, [numActions]uint32{}, 0
	pos := s.pos
	h.index[key] = i
	h.up(int(pos))
	return i
}

func (h *heavy) less(a, b int) bool {
	return h.slots[h.heap[a]].count < h.slots[h.heap[b]].count
}

func (h *heavy) swap(a, b int) {
	h.heap[a], h.heap[b] = h.heap[b], h.heap[a]
	h.slots[h.heap[a]].pos = int32(a)
	h.slots[h.heap[b]].pos = int32(b)
}

func (h *heavy) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !h.less(j, p) {
			return
		}
		h.swap(j, p)
		j = p
	}
}

func (h *heavy) down(j int) {
	n := len(h.heap)
	for {
		l := 2*j + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, j) {
			return
		}
		h.swap(j, m)
		j = m
	}
}

// cellOf hashes a key to its filter cell.
func cellOf(k netip.Prefix) uint32 {
	b := k.Addr().As16()
	x := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:])*0xc2b2ae3d27d4eb4f ^ uint64(k.Bits())
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return uint32(x) & (filterCells - 1)
}

// next is xorshift64*: fast, deterministic from the seed, and good enough
// to pick samples.
func next(s *uint64) uint64 {
	x := *s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*s = x
	return x * 2685821657736338717
}

// uniform returns a number in (0, 1].
func uniform(s *uint64) float64 {
	return float64(next(s)>>11+1) / (1 << 53)
}
