package rules

import (
	"math/bits"
	"slices"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// selectors is the rules' selectors compiled into sets of rules, one bit
// per rule, so that matching an event against every rule is a few table
// lookups: the rules that can match its protocol and TCP flags come from
// tables, and only the selectors no table holds (ports, log prefixes,
// interfaces) are tested, and only for the rules still in question.
// Rule.match is the definition; the engine's match must agree with it.
type selectors struct {
	// proto holds, per IP protocol, the rules whose protocols allow it and
	// that select no flags unless it is TCP.
	proto [256]uint64
	// flags holds, per combination of the six TCP flags, the rules that
	// select no flags or the combination's class.
	flags [FlagMask + 1]uint64
	// l4 are the rules that need the transport header (flags or ports);
	// ports, prefixed and ifaced those with ports, log prefixes and
	// interfaces.
	l4, ports, prefixed, ifaced uint64

	// The rules whose patterns match the last few log prefixes and
	// interfaces seen: a log holds few of either.
	prefixOK, ifaceOK stringCache
}

// stringCache remembers a value for each of the last few strings it was
// given. The engine's strings (log prefixes, interface names) come from
// the firewall's rules, few of them, often alternating: one entry would
// miss at each change.
type stringCache struct {
	keys [4]string
	vals [4]uint64
	n    uint8
	next uint8
}

func (c *stringCache) get(s string) (uint64, bool) {
	for i := range c.n {
		if c.keys[i] == s {
			return c.vals[i], true
		}
	}
	return 0, false
}

// put remembers v for s, in place of the oldest entry when full.
func (c *stringCache) put(s string, v uint64) {
	c.keys[c.next], c.vals[c.next] = s, v
	c.next = (c.next + 1) % uint8(len(c.keys))
	if int(c.n) < len(c.keys) {
		c.n++
	}
}

func newSelectors(rules []Rule) selectors {
	var s selectors
	for i := range rules {
		r, bit := &rules[i], uint64(1)<<i
		for p := range s.proto {
			if (len(r.Protos) == 0 || slices.Contains(r.Protos, uint8(p))) && (r.Flags == 0 || uint8(p) == parsers.ProtoTCP) {
				s.proto[p] |= bit
			}
		}
		for f := range s.flags {
			if r.Flags == 0 || Classify(parsers.TCPFlags(f))&r.Flags != 0 {
				s.flags[f] |= bit
			}
		}
		if r.Flags != 0 || r.Ports != nil {
			s.l4 |= bit
		}
		if r.Ports != nil {
			s.ports |= bit
		}
		if len(r.Prefixes) > 0 {
			s.prefixed |= bit
		}
		if len(r.Interfaces) > 0 {
			s.ifaced |= bit
		}
	}
	return s
}

// match returns the set of rules ev matches: bit i for e.rules[i].
func (e *Engine) match(ev *parsers.Event) uint64 {
	s := &e.sel
	m := s.proto[ev.Proto]
	if ev.Proto == parsers.ProtoTCP {
		m &= s.flags[ev.Flags&FlagMask]
	}
	if ev.NoL4Header {
		m &^= s.l4
	}
	for c := m & s.ports; c != 0; c &= c - 1 {
		if i := bits.TrailingZeros64(c); !e.rules[i].Ports.Has(ev.DstPort) {
			m &^= 1 << i
		}
	}
	if m&s.prefixed != 0 {
		ok, known := s.prefixOK.get(ev.Prefix)
		if !known {
			ok = e.matchPatterns(ev.Prefix, func(r *Rule) []Pattern { return r.Prefixes })
			s.prefixOK.put(ev.Prefix, ok)
		}
		m &^= s.prefixed &^ ok
	}
	if m&s.ifaced != 0 {
		ok, known := s.ifaceOK.get(ev.InIface)
		if !known {
			ok = e.matchPatterns(ev.InIface, func(r *Rule) []Pattern { return r.Interfaces })
			s.ifaceOK.put(ev.InIface, ok)
		}
		m &^= s.ifaced &^ ok
	}
	return m
}

// matchPatterns returns the rules having patterns (of the kind sel picks)
// one of which matches v.
func (e *Engine) matchPatterns(v string, sel func(*Rule) []Pattern) uint64 {
	var m uint64
	for i := range e.rules {
		if ps := sel(&e.rules[i]); len(ps) > 0 && matchAny(ps, v) {
			m |= 1 << i
		}
	}
	return m
}

// match reports whether ev matches the rule's selectors: the definition
// the engine's selectors compile.
func (r *Rule) match(ev *parsers.Event) bool {
	if len(r.Protos) > 0 && !slices.Contains(r.Protos, ev.Proto) {
		return false
	}
	if r.Flags != 0 && (ev.Proto != parsers.ProtoTCP || Classify(ev.Flags)&r.Flags == 0) {
		return false
	}
	if r.Ports != nil && !r.Ports.Has(ev.DstPort) {
		return false
	}
	// A packet whose transport header was not seen (a later fragment) has
	// no flags or port to select on: port 0 and no flags would make it a
	// NULL probe of port 0.
	if ev.NoL4Header && (r.Flags != 0 || r.Ports != nil) {
		return false
	}
	if len(r.Prefixes) > 0 && !matchAny(r.Prefixes, ev.Prefix) {
		return false
	}
	if len(r.Interfaces) > 0 && !matchAny(r.Interfaces, ev.InIface) {
		return false
	}
	return true
}

func matchAny(ps []Pattern, s string) bool {
	for _, p := range ps {
		if p.Match(s) {
			return true
		}
	}
	return false
}
