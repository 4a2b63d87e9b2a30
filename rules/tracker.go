package rules

import "github.com/sentry-nflog/sentry-nflog/parsers"

// tracker is one source's evidence for one rule. Its memory is bounded by
// the rule's thresholds, never by its window: the distinct counters hold
// at most the threshold's number of values, the ring at most Hits times.
type tracker struct {
	ports  distinct // destination ports in the window; cap DistinctPorts
	protos distinct // IP protocols in the window; cap DistinctProtos
	ring   []int64  // times of the last Hits packets; cap Hits
	// The evidence run: packets with no gap longer than the window.
	first, last int64
	ringHead    int32
	hits        uint32
	listed      [MaxListedPorts]uint16
	flags       parsers.TCPFlags
	nlisted     uint8
}

// distinct counts the distinct values seen within a sliding window, each
// with the last time it was seen, in order of arrival. It holds at most
// the threshold's number of values: once full, the threshold is reached,
// and a further value adds nothing a decision needs.
type distinct struct{ seen []seenValue }

// seenValue is a value and when it was last seen, packed in 12 bytes.
type seenValue struct{ tlo, thi, v uint32 }

func (s *seenValue) time() int64     { return int64(uint64(s.thi)<<32 | uint64(s.tlo)) }
func (s *seenValue) setTime(t int64) { s.tlo, s.thi = uint32(t), uint32(uint64(t)>>32) }

// add records v at t, drops the values last seen before cutoff and returns
// how many remain. capacity is the threshold; the first call allocates
// that much, and the buffer is kept across resets.
func (d *distinct) add(v uint32, t, cutoff int64, capacity int) int {
	if cap(d.seen) != capacity {
		// New, or left by another rule in a reused slot.
		d.seen = make([]seenValue, 0, capacity)
	}
	kept := d.seen[:0]
	found := false
	for _, s := range d.seen {
		if s.time() < cutoff {
			continue
		}
		if s.v == v {
			s.setTime(t)
			found = true
		}
		kept = append(kept, s)
	}
	d.seen = kept
	if !found && len(d.seen) < cap(d.seen) {
		s := seenValue{v: v}
		s.setTime(t)
		d.seen = append(d.seen, s)
	}
	return len(d.seen)
}

// count drops the values last seen before cutoff and returns how many
// remain: what add returns, for a packet whose value is unknown.
func (d *distinct) count(cutoff int64) int {
	kept := d.seen[:0]
	for _, s := range d.seen {
		if s.time() >= cutoff {
			kept = append(kept, s)
		}
	}
	d.seen = kept
	return len(d.seen)
}

func (d *distinct) reset() { d.seen = d.seen[:0] }

// observe adds one matching packet at t to the evidence and reports
// whether the rule's threshold is now reached. Times are the source's own:
// a packet older than the last one (a reordered line) counts at the last
// one's time, and one older by more than the window starts a new run, so a
// clock that steps back never stretches a window.
func (tr *tracker) observe(r *Rule, ev *parsers.Event, t int64) bool {
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
	if known && int(tr.nlisted) < len(tr.listed) && !containsPort(tr.listed[:tr.nlisted], ev.DstPort) {
		tr.listed[tr.nlisted] = ev.DstPort
		tr.nlisted++
	}
	if r.Tripwire() {
		return true
	}
	cutoff := t - within
	ok := true
	if r.DistinctPorts > 1 {
		if known {
			ok = tr.ports.add(uint32(ev.DstPort), t, cutoff, r.DistinctPorts) >= r.DistinctPorts
		} else {
			ok = tr.ports.count(cutoff) >= r.DistinctPorts
		}
	}
	if r.DistinctProtos > 1 {
		ok = tr.protos.add(uint32(ev.Proto), t, cutoff, r.DistinctProtos) >= r.DistinctProtos && ok
	}
	if r.Hits > 1 {
		if cap(tr.ring) != r.Hits {
			tr.ring = make([]int64, 0, r.Hits)
		}
		if len(tr.ring) < cap(tr.ring) {
			tr.ring = append(tr.ring, t)
		} else {
			tr.ring[tr.ringHead] = t
			tr.ringHead = (tr.ringHead + 1) % int32(len(tr.ring))
		}
		// The ring holds the last Hits packet times; the oldest sits at
		// ringHead once the ring is full.
		ok = len(tr.ring) == r.Hits && tr.ring[int(tr.ringHead)%len(tr.ring)] >= cutoff && ok
	}
	return ok
}

func containsPort(ps []uint16, p uint16) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func (tr *tracker) reset() {
	tr.ports.reset()
	tr.protos.reset()
	tr.ring = tr.ring[:0]
	tr.ringHead = 0
	tr.hits = 0
	tr.flags = 0
	tr.nlisted = 0
}
