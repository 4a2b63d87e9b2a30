package rules

import (
	"math"
	"slices"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// tracker is one source's evidence for one rule. Its memory is bounded by
// the rule's thresholds, never by its window: the distinct counters hold
// at most the threshold's number of values, the ring at most Hits times.
// Those live in the tracker's record, after the tracker's 64 bytes.
type tracker struct {
	// The evidence run: packets with no gap longer than the window.
	first, last int64
	// The destination ports (at most DistinctPorts) and IP protocols (at
	// most DistinctProtos) in the window: nports and nprotos of them.
	ports, protos   distinct[uint16]
	hits            uint32
	nports, nprotos uint16
	// The ring holds the times of the last nring packets (at most Hits);
	// once full, the oldest is at ringHead.
	ringHead, nring uint16
	listed          [MaxListedPorts]uint16
	flags           parsers.TCPFlags
	nlisted         uint8
}

// distinct counts the distinct values seen within a sliding window, each
// with the last time it was seen. It holds at most the threshold's number
// of values (its capacity, the length of the buffers it is given): once
// full, the threshold is reached, and a further value adds nothing a
// decision needs. The values and times live apart from it, values apart
// from times, so that looking for a value reads one cache line; so does
// the number of values held (n, given to each method), so that the
// counter's owner can pack it.
type distinct[V uint16 | uint32] struct {
	// oldest is at most the time of the oldest value held (MaxInt64 when
	// none is): while it is inside the window, no value can have left it,
	// and an add only looks the value up.
	oldest int64
}

// add records v at t, drops the values last seen before cutoff and returns
// how many remain. vals and times are the counter's buffers, of its
// capacity, holding *n values.
func (d *distinct[V]) add(n *uint16, vals []V, times []int64, v V, t, cutoff int64) int {
	if d.oldest < cutoff {
		d.expire(n, vals, times, cutoff)
	}
	k := *n
	for i, x := range vals[:k] {
		if x == v {
			times[i] = t
			return int(k)
		}
	}
	if int(k) < len(times) {
		vals[k], times[k] = v, t
		*n = k + 1
		d.oldest = min(d.oldest, t)
	}
	return int(*n)
}

// count drops the values last seen before cutoff and returns how many
// remain: what add returns, for a packet whose value is unknown.
func (d *distinct[V]) count(n *uint16, vals []V, times []int64, cutoff int64) int {
	if d.oldest < cutoff {
		d.expire(n, vals, times, cutoff)
	}
	return int(*n)
}

// expire drops the values last seen before cutoff, keeping the others in
// order, and finds the oldest time left.
func (d *distinct[V]) expire(n *uint16, vals []V, times []int64, cutoff int64) {
	kept, oldest := 0, int64(math.MaxInt64)
	for i := range int(*n) {
		if t := times[i]; t >= cutoff {
			vals[kept], times[kept] = vals[i], t
			kept++
			oldest = min(oldest, t)
		}
	}
	*n, d.oldest = uint16(kept), oldest
}

func (d *distinct[V]) reset(n *uint16) { *n, d.oldest = 0, math.MaxInt64 }

// trackers holds the trackers of one rule for every source that matched
// it, in records without pointers: a source's tracker is an index, taken
// from the pool when the source first matches the rule and given back
// when the source is forgotten. A tracker's buffers, of the rule's
// thresholds (port values and times, protocol values and times, the
// ring's times), are in its record after it.
type trackers struct {
	recs                       records[tracker]
	portCap, protoCap, ringCap int
	// Where the buffers start in a record, in words: the values first,
	// which an add reads all of, then the times.
	portVals, protoVals, portTimes, protoTimes, ring int
	free                                             []int32
	tripwire                                         bool
}

func newTrackers(r *Rule) trackers {
	p := trackers{tripwire: r.Tripwire()}
	if r.DistinctPorts > 1 {
		p.portCap = r.DistinctPorts
	}
	if r.DistinctProtos > 1 {
		p.protoCap = r.DistinctProtos
	}
	if r.Hits > 1 {
		p.ringCap = r.Hits
	}
	w := headWords[tracker]()
	p.portVals, w = w, w+wordsFor(p.portCap, 2)
	p.protoVals, w = w, w+wordsFor(p.protoCap, 2)
	p.portTimes, w = w, w+p.portCap
	p.protoTimes, w = w, w+p.protoCap
	p.ring, w = w, w+p.ringCap
	p.recs = newRecords[tracker](w - headWords[tracker]())
	return p
}

// get returns a reset tracker's index.
func (p *trackers) get() int32 {
	var j int32
	if n := len(p.free); n > 0 {
		j = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		j = p.recs.add()
	}
	p.recs.head(j).reset()
	return j
}

// put gives tracker j back.
func (p *trackers) put(j int32) { p.free = append(p.free, j) }

// observe adds one matching packet at t to tracker j's evidence under rule
// r and reports whether the rule's threshold is now reached. Times are the
// source's own: a packet older than the last one (a reordered line) counts
// at the last one's time, and one older by more than the window starts a
// new run, so a clock that steps back never stretches a window.
func (p *trackers) observe(j int32, r *Rule, ev *parsers.Event, t int64) bool {
	tr, rec := p.recs.at(j)
	within := int64(r.Within)
	if tr.hits > 0 && t < tr.last {
		if tr.last-t > within {
			tr.reset()
		} else {
			t = tr.last
		}
	}
	if tr.hits == 0 || t-tr.last > within {
		tr.reset()
		tr.first = t
	}
	tr.hits++
	tr.last = t
	tr.flags |= ev.Flags
	// Without a transport header the port is unknown, not 0: it counts
	// as a packet, not as a distinct port.
	known := !ev.NoL4Header
	if known && int(tr.nlisted) < len(tr.listed) && !slices.Contains(tr.listed[:tr.nlisted], ev.DstPort) {
		tr.listed[tr.nlisted] = ev.DstPort
		tr.nlisted++
	}
	if p.tripwire {
		return true
	}
	cutoff := t - within
	ok := true
	if c := p.portCap; c > 0 {
		vals, times := u16s(rec, p.portVals, c), i64s(rec, p.portTimes, c)
		if known {
			ok = tr.ports.add(&tr.nports, vals, times, ev.DstPort, t, cutoff) >= c
		} else {
			ok = tr.ports.count(&tr.nports, vals, times, cutoff) >= c
		}
	}
	if c := p.protoCap; c > 0 {
		ok = tr.protos.add(&tr.nprotos, u16s(rec, p.protoVals, c), i64s(rec, p.protoTimes, c), uint16(ev.Proto), t, cutoff) >= c && ok
	}
	if c := p.ringCap; c > 0 {
		ring := i64s(rec, p.ring, c)
		if int(tr.nring) < c {
			ring[tr.nring] = t
			tr.nring++
		} else {
			ring[tr.ringHead] = t
			tr.ringHead = (tr.ringHead + 1) % uint16(c)
		}
		// Once the ring is full, its oldest time sits at ringHead.
		ok = int(tr.nring) == c && ring[tr.ringHead] >= cutoff && ok
	}
	return ok
}

func (tr *tracker) reset() {
	tr.ports.reset(&tr.nports)
	tr.protos.reset(&tr.nprotos)
	tr.nring, tr.ringHead = 0, 0
	tr.hits = 0
	tr.flags = 0
	tr.nlisted = 0
}
