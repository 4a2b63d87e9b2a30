//go:build linux

package actions

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// First strike: nftables counts each rule's probes per source and, at the
// threshold, bans the source by itself (an element of blocked4 or strike6
// with the provisional timeout), logs the striking probe to NFLOG with its
// own prefix and drops it. A fast scanner with thousands of probes in
// flight learns no more than threshold-1 answers, where a ban from
// userspace lands only after tens to hundreds.
//
// Its part of the table, as `nft list table` prints it (rule 0: tcp, class
// syn, 5 distinct ports in 60s; IPv6 keys /64, 2001:db8:51::/64 holding
// this host; valves 60 and 20 a minute, 600 short 30s strikes beyond):
//
//	chain firststrike {
//		type filter hook input priority filter - 7; policy accept;
//		iif "lo" return
//		meta pkttype != host return
//		ip saddr @allow4 return
//		ip6 saddr @allow6 return
//		tcp dport @listen_tcp return
//		udp dport @listen_udp return
//		meta l4proto tcp tcp flags & (fin|syn|rst|psh|ack|urg) { syn, syn|psh, syn|urg, syn|psh|urg } ct state invalid,new jump fs0
//	}
//	chain fs0 {
//		ip saddr . tcp dport != @fs0_probes4 add @fs0_probes4 { ip saddr . tcp dport timeout 1m } add @fs0_rate4 { ip saddr timeout 1m limit rate over 1/week burst 4 packets } jump strike
//		ip saddr . tcp dport != @fs0_probes4 counter log prefix "SENTRY-FS-FULL" group G drop
//		ip6 saddr != { 2001:db8:51::/64 } ip6 saddr & ffff:ffff:ffff:ffff:: . tcp dport != @fs0_probes6 add ... jump strike
//		ip6 saddr != { 2001:db8:51::/64 } ip6 saddr & ffff:ffff:ffff:ffff:: . tcp dport != @fs0_probes6 counter log ... drop
//		ip6 saddr { 2001:db8:51::/64 } ip6 saddr . tcp dport != @fs0_probes6 add ... jump strike_narrow
//		ip6 saddr { 2001:db8:51::/64 } ip6 saddr . tcp dport != @fs0_probes6 counter log ... drop
//	}
//	chain strike {
//		limit rate over 60/minute burst 60 packets counter goto strike_over
//		meta nfproto ipv4 add @blocked4 { ip saddr timeout 1m } counter
//		meta nfproto ipv6 add @strike6 { ip6 saddr & ffff:ffff:ffff:ffff:: timeout 1m } counter
//		counter log prefix "SENTRY-FS" group G snaplen 128 drop
//	}
//	chain strike_single { ... the same, for tripwires, with their own valve }
//	chain strike_over {
//		limit rate over 600/minute burst 600 packets counter return
//		meta nfproto ipv4 add @blocked4 { ip saddr timeout 30s } counter
//		...
//	}
//	chain strike_narrow {
//		meta nfproto ipv6 add @fs_struck6 { ip6 saddr timeout 1m } counter
//		counter log prefix "SENTRY-FS" group G snaplen 128 drop
//	}
//
// A repeated probe of a port already counted is not counted again. The
// per-source count is a limit that lets threshold-1 probes through and
// does not refill, in an element that times out one window after the
// source's first counted probe: the kernel counts in windows that do not
// slide, so it strikes only when threshold probes fell within one window,
// when the engine's sliding window bans too, however slowly they came. A
// rule with both hits and distinct ports marks a source "hot" (set
// fs<i>_hot) when its hits are over and strikes at the next new port over
// the distinct threshold.
//
// Sources are counted and struck by the ban key (IPv6Prefix bits), except
// inside a key-length network that holds an address of the allow list (this
// host's own /64, with its neighbours): there, as the engine does, each
// address is its own key, and a strike puts that address alone in
// fs_struck4/6, which the base chain drops (strike_narrow), so one
// neighbour's probes never cut off another, or this host.
//
// Every dynamic set is bounded by SetSize and its elements time out after
// the window. A full set does not blind first strike: a probe that could
// not be counted is dropped unanswered and logged with FullPrefix, so a
// flood of forged sources that fills the sets (hping3 --rand-source) leaves
// a scanner nothing to learn, and the daemon, which reads the counters of
// those rules (EvictFull), empties the full sets so counting resumes. The
// valves bound strikes per minute: beyond them a strike lasts OverValve,
// and beyond that bound too the probe goes on, unstruck.

// fsFamily describes how one address family's rules read the source.
type fsFamily struct {
	sfx     string // "4" or "6"
	nfproto byte
	off     uint32 // source address offset in the network header
	alen    uint32
	mask    []byte
	portReg uint32 // the 32-bit register after the address, for concatenations
	keyType nftables.SetDatatype
	// narrow are the key-length networks holding an allowed address,
	// whose sources are counted by their whole address; empty without a
	// mask.
	narrow []netip.Prefix
}

func fsFamilies(mask4, mask6 []byte, allow []netip.Prefix, bits4, bits6 int) [2]fsFamily {
	fams := [2]fsFamily{
		{sfx: "4", nfproto: unix.NFPROTO_IPV4, off: 12, alen: 4, mask: mask4, portReg: 9, keyType: nftables.TypeIPAddr},
		// NFT_REG32_00 is 8: a 16-byte address fills 8-11.
		{sfx: "6", nfproto: unix.NFPROTO_IPV6, off: 8, alen: 16, mask: mask6, portReg: 12, keyType: nftables.TypeIP6Addr},
	}
	fams[0].narrow = narrowNets(allow, mask4, bits4, true)
	fams[1].narrow = narrowNets(allow, mask6, bits6, false)
	return fams
}

// narrowNets returns the networks of keyBits that hold an allowed prefix
// longer than them, merged: the engine keys a source there by its whole
// address (a key that would cover an ignored address shrinks to the
// source), and so must the kernel.
func narrowNets(allow []netip.Prefix, mask []byte, keyBits int, v4 bool) []netip.Prefix {
	if mask == nil {
		return nil
	}
	var out []netip.Prefix
	for _, p := range allow {
		if p.Addr().Is4() != v4 || p.Bits() <= keyBits {
			continue
		}
		n, _ := p.Addr().Prefix(keyBits)
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// variant is how one rule counts one family's sources: by the ban key
// (masked, outside the narrow networks) or by the whole address (inside).
type variant struct {
	fm     fsFamily
	narrow bool
	guard  *nftables.Set // the narrow networks, anonymous; nil: no guard
}

// variants returns the family's ways of counting; addSet adds the guard
// sets, one per rule that uses it (an anonymous set belongs to one rule).
func (fm fsFamily) variants() []variant {
	if len(fm.narrow) == 0 {
		return []variant{{fm: fm}}
	}
	return []variant{{fm: fm}, {fm: fm, narrow: true}}
}

// exprs loads the variant's key into register 1 after matching the family
// and, where narrow networks exist, the guard: the whole source is looked
// up in them first (guard must be a fresh anonymous set for this rule).
func (v variant) key(guard *nftables.Set) []expr.Any {
	fm := v.fm
	es := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fm.nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fm.off, Len: fm.alen},
	}
	if guard != nil {
		es = append(es, &expr.Lookup{SourceRegister: 1, SetName: guard.Name, SetID: guard.ID, Invert: !v.narrow})
	}
	if fm.mask != nil && !v.narrow {
		es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: fm.alen, Mask: fm.mask, Xor: make([]byte, fm.alen)})
	}
	return es
}

// key loads the family's (masked) source into register 1, after matching
// the family, for the strike chains and the allow lookups.
func (fm fsFamily) key() []expr.Any {
	return variant{fm: fm}.key(nil)
}

// ruleSets are the dynamic sets of one rule and family.
type ruleSets struct {
	probes, protos, keys, rate, hits, hot *nftables.Set
}

// counted is the set whose element says a probe was counted: the distinct
// one, else the hits one.
func (rs ruleSets) counted() *nftables.Set {
	switch {
	case rs.probes != nil:
		return rs.probes
	case rs.protos != nil:
		return rs.protos
	case rs.keys != nil:
		return rs.keys
	}
	return rs.hits
}

// fsObjects are first strike's chains and sets.
type fsObjects struct {
	cfg                *FirstStrikeConfig
	table              *nftables.Table
	allow              []netip.Prefix // TableSpec.Allow
	fams               [2]fsFamily
	allow4, allow6     *nftables.Set
	sets               [][2]ruleSets // per rule, per family
	base, strike       *nftables.Chain
	single, over, nrow *nftables.Chain // nil when not needed
	ruleChains         []*nftables.Chain
	// struck holds, per family with narrow networks, the sources there
	// struck by their whole address: the base chain drops them all (the
	// ban sets are keyed by the ban key's length, so cannot).
	struck [2]*nftables.Set
}

// Chains first strike adds besides its base, strike and rule chains.
const (
	strikeSingleChain = "strike_single"
	strikeOverChain   = "strike_over"
	strikeNarrowChain = "strike_narrow"
)

func newFSObjects(t *nftables.Table, cfg *FirstStrikeConfig, spec *TableSpec, mask4, mask6 []byte, allow4, allow6 *nftables.Set) *fsObjects {
	f := &fsObjects{
		cfg:    cfg,
		table:  t,
		allow:  spec.Allow,
		fams:   fsFamilies(mask4, mask6, spec.Allow, spec.IPv4Prefix, spec.IPv6Prefix),
		allow4: allow4,
		allow6: allow6,
		base:   baseChain(t, FirstStrikeChain, nftables.ChainHookInput, cfg.Priority),
		strike: &nftables.Chain{Name: StrikeChain, Table: t},
	}
	tripwires := slices.ContainsFunc(cfg.Rules, FirstStrikeRule.Tripwire)
	if tripwires && cfg.SinglePerMinute > 0 {
		f.single = &nftables.Chain{Name: strikeSingleChain, Table: t}
	}
	if cfg.OverValve > 0 && (cfg.MaxPerMinute > 0 || f.single != nil) {
		f.over = &nftables.Chain{Name: strikeOverChain, Table: t}
	}
	if len(f.fams[0].narrow)+len(f.fams[1].narrow) > 0 {
		f.nrow = &nftables.Chain{Name: strikeNarrowChain, Table: t}
	}
	for j, fm := range f.fams {
		if len(fm.narrow) > 0 {
			f.struck[j] = &nftables.Set{Table: t, Name: "fs_struck" + fm.sfx, KeyType: fm.keyType, HasTimeout: true, Dynamic: true, Size: cfg.SetSize}
		}
	}
	// The per-source buckets get an eighth more room than the (source,
	// value) sets, so that under a flood the latter fill first, which the
	// full rule sees.
	dynSet := func(name string, kt nftables.SetDatatype, concat bool, size uint32) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, KeyType: kt, Concatenation: concat, HasTimeout: true, Dynamic: true, Size: size}
	}
	big := cfg.SetSize + cfg.SetSize/8
	for i, r := range cfg.Rules {
		f.ruleChains = append(f.ruleChains, &nftables.Chain{Name: fmt.Sprintf("fs%d", i), Table: t})
		var rs [2]ruleSets
		for j, fm := range f.fams {
			name := func(what string) string { return fmt.Sprintf("fs%d_%s%s", i, what, fm.sfx) }
			switch {
			case r.DistinctPorts > 1:
				rs[j].probes = dynSet(name("probes"), nftables.MustConcatSetType(fm.keyType, nftables.TypeInetService), true, cfg.SetSize)
				rs[j].rate = dynSet(name("rate"), fm.keyType, false, big)
			case r.DistinctProtos > 1:
				rs[j].protos = dynSet(name("protos"), nftables.MustConcatSetType(fm.keyType, nftables.TypeInetProto), true, cfg.SetSize)
				rs[j].rate = dynSet(name("rate"), fm.keyType, false, big)
			case r.DistinctKeys > 1 && r.wide(j) > 0:
				rs[j].keys = dynSet(name("keys"), nftables.MustConcatSetType(fm.keyType, fm.keyType), true, cfg.SetSize)
				rs[j].rate = dynSet(name("rate"), fm.keyType, false, big)
			}
			if r.Hits > 1 {
				size := cfg.SetSize
				if rs[j].rate != nil {
					size = big
				}
				rs[j].hits = dynSet(name("hits"), fm.keyType, false, size)
				if rs[j].rate != nil {
					rs[j].hot = dynSet(name("hot"), fm.keyType, false, big)
				}
			}
		}
		f.sets = append(f.sets, rs)
	}
	return f
}

// chains are first strike's chains, base chain first.
func (f *fsObjects) chains() []*nftables.Chain {
	out := []*nftables.Chain{f.base, f.strike}
	for _, c := range []*nftables.Chain{f.single, f.over, f.nrow} {
		if c != nil {
			out = append(out, c)
		}
	}
	return append(out, f.ruleChains...)
}

// dynSets are the counting sets, in rule order.
func (f *fsObjects) dynSets() []*nftables.Set {
	var out []*nftables.Set
	for _, s := range f.struck {
		if s != nil {
			out = append(out, s)
		}
	}
	for _, rs := range f.sets {
		for _, s := range rs {
			for _, set := range []*nftables.Set{s.probes, s.protos, s.keys, s.rate, s.hits, s.hot} {
				if set != nil {
					out = append(out, set)
				}
			}
		}
	}
	return out
}

// TCP flag bits, as in the header.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
)

// The ICMP protocols, which the logging rules never log and first strike
// never counts.
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// rules returns every rule of the base chain, the rule chains and the
// strike chains. addSet adds the anonymous sets the rules look up, which
// must be in the batch before them (Missing, which only counts the rules,
// passes one that does nothing).
func (f *fsObjects) rules(o *objects, addSet func(*nftables.Set, []nftables.SetElement) error) ([]*nftables.Rule, error) {
	var out []*nftables.Rule
	add := func(c *nftables.Chain, es ...expr.Any) {
		out = append(out, &nftables.Rule{Table: f.table, Chain: c, Exprs: es})
	}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	jump := func(name string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: name} }
	lookup := func(reg uint32, s *nftables.Set, invert bool) *expr.Lookup {
		return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: invert}
	}
	l4 := func(op expr.CmpOp, proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: op, Register: 1, Data: []byte{proto}},
		}
	}
	dport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	anon := func(kt nftables.SetDatatype, interval bool, els []nftables.SetElement) (*nftables.Set, error) {
		s := &nftables.Set{Table: f.table, Anonymous: true, Constant: true, Interval: interval, KeyType: kt}
		return s, addSet(s, els)
	}

	// The base chain.
	b := f.base
	// The loopback interface's index is 1 in every namespace.
	add(b, &expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)}, ret)
	add(b, &expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}}, ret)
	for i, s := range []*nftables.Set{f.allow4, f.allow6} {
		fm := f.fams[i]
		fm.mask = nil // the allow sets hold prefixes: look the address up
		add(b, slices.Concat(fm.key(), []expr.Any{lookup(1, s, false), ret})...)
	}
	for j, s := range f.struck {
		if s != nil {
			fm := f.fams[j]
			fm.mask = nil
			add(b, slices.Concat(fm.key(), []expr.Any{lookup(1, s, false), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})...)
		}
	}
	add(b, slices.Concat(l4(expr.CmpOpEq, unix.IPPROTO_TCP), []expr.Any{dport, lookup(1, o.listen.tcp, false), ret})...)
	add(b, slices.Concat(l4(expr.CmpOpEq, unix.IPPROTO_UDP), []expr.Any{dport, lookup(1, o.listen.udp, false), ret})...)
	for i, r := range f.cfg.Rules {
		var ports []expr.Any
		if len(r.Ports) > 0 {
			ps, err := anon(nftables.TypeInetService, true, portRangeElements(rules.NewPortSet(r.Ports...).Ranges()))
			if err != nil {
				return nil, fmt.Errorf("first strike: rule %d ports: %w", i, err)
			}
			ports = []expr.Any{dport, lookup(1, ps, false)}
		}
		matches, err := f.probeMatches(r, l4, anon)
		if err != nil {
			return nil, fmt.Errorf("first strike: rule %d: %w", i, err)
		}
		for _, m := range matches {
			add(b, slices.Concat(m, ports, []expr.Any{jump(f.ruleChains[i].Name)})...)
		}
	}

	// The rule chains.
	full := func() []expr.Any {
		return []expr.Any{&expr.Counter{},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
				Group: f.cfg.Group, Snaplen: AdvancedSnaplen, Data: []byte(f.cfg.FullPrefix())},
			&expr.Verdict{Kind: expr.VerdictDrop}}
	}
	for i, r := range f.cfg.Rules {
		c := f.ruleChains[i]
		if r.DistinctKeys > 1 {
			rs, err := f.aggregateRules(i, r, anon)
			if err != nil {
				return nil, err
			}
			for _, es := range rs {
				add(c, es...)
			}
			continue
		}
		strike := StrikeChain
		if r.Tripwire() && f.single != nil {
			strike = strikeSingleChain
		}
		for j, fm := range f.fams {
			rs := f.sets[i][j]
			for _, v := range fm.variants() {
				target := strike
				if v.narrow {
					target = strikeNarrowChain
				}
				// key returns the variant's key with a fresh guard set.
				key := func() ([]expr.Any, error) {
					if len(fm.narrow) == 0 {
						return v.key(nil), nil
					}
					g, err := anon(fm.keyType, true, prefixElements(fm.narrow))
					if err != nil {
						return nil, fmt.Errorf("first strike: rule %d narrow networks: %w", i, err)
					}
					return v.key(g), nil
				}
				if r.Tripwire() {
					es, err := key()
					if err != nil {
						return nil, err
					}
					add(c, append(es, jump(target))...)
					continue
				}
				var second expr.Any // the value counted with the key
				if r.DistinctPorts > 1 {
					second = &expr.Payload{DestRegister: fm.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
				} else if r.DistinctProtos > 1 {
					second = &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: fm.portReg}
				}
				if r.Hits > 1 {
					es, err := key()
					if err != nil {
						return nil, err
					}
					es = append(es, countSet(rs.hits, r.Hits, r.Window))
					if rs.hot != nil {
						// Both thresholds: hits only mark the source hot.
						es = append(es, &expr.Dynset{SrcRegKey: 1, SetName: rs.hot.Name, SetID: rs.hot.ID,
							Operation: unix.NFT_DYNSET_OP_ADD, Timeout: r.Window})
					} else {
						es = append(es, jump(target))
					}
					add(c, es...)
					if second == nil {
						es, err := key()
						if err != nil {
							return nil, err
						}
						add(c, append(es, append([]expr.Any{lookup(1, rs.hits, true)}, full()...)...)...)
					}
				}
				if second == nil {
					continue
				}
				set := rs.counted()
				n := max(r.DistinctPorts, r.DistinctProtos) // the other is 0
				es, err := key()
				if err != nil {
					return nil, err
				}
				es = append(es, second, lookup(1, set, true),
					&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: r.Window},
					countSet(rs.rate, n, r.Window))
				if rs.hot != nil {
					es = append(es, lookup(1, rs.hot, false))
				}
				add(c, append(es, jump(target))...)
				// The probe is still uncounted: the set is full.
				es, err = key()
				if err != nil {
					return nil, err
				}
				add(c, slices.Concat(es, []expr.Any{second, lookup(1, set, true)}, full())...)
			}
		}
	}

	// The strike chains.
	log := func() []expr.Any {
		return []expr.Any{&expr.Counter{},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
				Group: f.cfg.Group, Snaplen: AdvancedSnaplen, Data: []byte(f.cfg.Prefix)},
			&expr.Verdict{Kind: expr.VerdictDrop}}
	}
	banAll := func(c *nftables.Chain, timeout time.Duration) {
		for j, set := range []*nftables.Set{o.set4, o.strk6} {
			add(c, append(f.fams[j].key(),
				&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: timeout},
				&expr.Counter{})...)
		}
		add(c, log()...)
	}
	// Over a valve: the short strike, or on unstruck.
	overValve := func(c *nftables.Chain, perMinute int) {
		if perMinute <= 0 {
			return
		}
		v := []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(perMinute), Unit: expr.LimitTimeMinute, Burst: uint32(perMinute), Over: true}, &expr.Counter{}}
		if f.over != nil {
			add(c, append(v, &expr.Verdict{Kind: expr.VerdictGoto, Chain: strikeOverChain})...)
		} else {
			add(c, append(v, ret)...)
		}
	}
	overValve(f.strike, f.cfg.MaxPerMinute)
	banAll(f.strike, f.cfg.Provisional)
	if f.single != nil {
		overValve(f.single, f.cfg.SinglePerMinute)
		banAll(f.single, f.cfg.Provisional)
	}
	if f.over != nil {
		if m := f.cfg.OverValvePerMinute; m > 0 {
			add(f.over, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m), Unit: expr.LimitTimeMinute, Burst: uint32(m), Over: true},
				&expr.Counter{}, ret)
		}
		banAll(f.over, f.cfg.OverValve)
	}
	if f.nrow != nil {
		for j, set := range f.struck {
			if set == nil {
				continue
			}
			fm := f.fams[j]
			fm.mask = nil
			add(f.nrow, append(fm.key(),
				&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: f.cfg.Provisional},
				&expr.Counter{})...)
		}
		add(f.nrow, log()...)
	}
	return out, nil
}

// wide returns the rule's wide prefix length for family j (0: IPv4).
func (r FirstStrikeRule) wide(j int) int {
	if j == 0 {
		return r.Wide4
	}
	return r.Wide6
}

// aggregateRules are an aggregate rule's expressions, per family: count
// the key (the source at the ban key's length) per wide network, and from
// the DistinctKeys-th strike; and the full-set drop. Wide networks that
// hold an allowed address are left out, as the engine never bans them.
func (f *fsObjects) aggregateRules(i int, r FirstStrikeRule,
	anon func(nftables.SetDatatype, bool, []nftables.SetElement) (*nftables.Set, error)) ([][]expr.Any, error) {
	var out [][]expr.Any
	for j, fm := range f.fams {
		bits := r.wide(j)
		rs := f.sets[i][j]
		if bits == 0 || rs.keys == nil {
			continue
		}
		wideMask := net.CIDRMask(bits, int(fm.alen)*8)
		keyMask := fm.mask
		if keyMask == nil {
			keyMask = net.CIDRMask(int(fm.alen)*8, int(fm.alen)*8)
		}
		held := narrowNets(f.allow, wideMask, bits, j == 0)
		load := func() ([]expr.Any, error) {
			es := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fm.nfproto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fm.off, Len: fm.alen},
			}
			if len(held) > 0 {
				g, err := anon(fm.keyType, true, prefixElements(held))
				if err != nil {
					return nil, fmt.Errorf("first strike: rule %d: %w", i, err)
				}
				es = append(es, &expr.Lookup{SourceRegister: 1, SetName: g.Name, SetID: g.ID, Invert: true})
			}
			return append(es,
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: fm.alen, Mask: wideMask, Xor: make([]byte, fm.alen)},
				&expr.Payload{DestRegister: fm.portReg, Base: expr.PayloadBaseNetworkHeader, Offset: fm.off, Len: fm.alen},
				&expr.Bitwise{SourceRegister: fm.portReg, DestRegister: fm.portReg, Len: fm.alen, Mask: keyMask, Xor: make([]byte, fm.alen)},
				&expr.Lookup{SourceRegister: 1, SetName: rs.keys.Name, SetID: rs.keys.ID, Invert: true},
			), nil
		}
		es, err := load()
		if err != nil {
			return nil, err
		}
		out = append(out, append(es,
			&expr.Dynset{SrcRegKey: 1, SetName: rs.keys.Name, SetID: rs.keys.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: r.Window},
			countSet(rs.rate, r.DistinctKeys, r.Window),
			&expr.Verdict{Kind: expr.VerdictJump, Chain: StrikeChain}))
		es, err = load()
		if err != nil {
			return nil, err
		}
		out = append(out, append(es, &expr.Counter{},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
				Group: f.cfg.Group, Snaplen: AdvancedSnaplen, Data: []byte(f.cfg.FullPrefix())},
			&expr.Verdict{Kind: expr.VerdictDrop}))
	}
	return out, nil
}

// probeMatches returns the matches, each ending in a jump to the rule's
// chain, that select rule r's probes, as the logging rules log them: TCP
// of ct state new or invalid in r's flag classes, UDP of ct state new, any
// other protocol (ICMP never) new or invalid.
func (f *fsObjects) probeMatches(r FirstStrikeRule, l4 func(expr.CmpOp, byte) []expr.Any,
	anon func(nftables.SetDatatype, bool, []nftables.SetElement) (*nftables.Set, error)) ([][]expr.Any, error) {
	newInvalid := ctState(expr.CtStateBitNEW | expr.CtStateBitINVALID)
	switch r.Proto {
	case unix.IPPROTO_UDP:
		return [][]expr.Any{slices.Concat(l4(expr.CmpOpEq, unix.IPPROTO_UDP), ctState(expr.CtStateBitNEW))}, nil
	case unix.IPPROTO_TCP:
		m := l4(expr.CmpOpEq, unix.IPPROTO_TCP)
		if r.TCPFlags != 0 && r.TCPFlags != rules.AllClasses {
			fs, err := anon(nftables.TypeTCPFlag, false, flagElements(r.TCPFlags))
			if err != nil {
				return nil, err
			}
			m = append(m,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{byte(rules.FlagMask)}, Xor: []byte{0}},
				&expr.Lookup{SourceRegister: 1, SetName: fs.Name, SetID: fs.ID})
		}
		return [][]expr.Any{append(m, newInvalid...)}, nil
	case 0:
		// Every protocol the logging rules log: TCP new or invalid, UDP
		// new, the others but ICMP new or invalid.
		other, err := anon(nftables.TypeInetProto, false, []nftables.SetElement{
			{Key: []byte{unix.IPPROTO_TCP}}, {Key: []byte{unix.IPPROTO_UDP}}, {Key: []byte{protoICMP}}, {Key: []byte{protoICMPv6}}})
		if err != nil {
			return nil, err
		}
		return [][]expr.Any{
			slices.Concat(l4(expr.CmpOpEq, unix.IPPROTO_TCP), newInvalid),
			slices.Concat(l4(expr.CmpOpEq, unix.IPPROTO_UDP), ctState(expr.CtStateBitNEW)),
			slices.Concat([]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Lookup{SourceRegister: 1, SetName: other.Name, SetID: other.ID, Invert: true}}, newInvalid),
		}, nil
	}
	return [][]expr.Any{slices.Concat(l4(expr.CmpOpEq, r.Proto), newInvalid)}, nil
}

// flagElements are the TCP flag bytes (under rules.FlagMask) of classes c.
func flagElements(c rules.FlagClass) []nftables.SetElement {
	var els []nftables.SetElement
	for _, f := range rules.FlagCombinations(c) {
		els = append(els, nftables.SetElement{Key: []byte{byte(f)}})
	}
	return els
}

// prefixElements encodes prefixes for an address interval set.
func prefixElements(ps []netip.Prefix) []nftables.SetElement {
	var rs []addrRange
	for _, p := range ps {
		rs = append(rs, addrRange{first: p.Masked().Addr(), last: lastAddr(p)})
	}
	return addrRangeElements(rs)
}

// countSet is `add @s { key timeout window limit rate over 1/week burst
// n-1 }`: it matches from the n-th time a source reaches it within the
// element's life, which is one window from the first time; the bucket
// practically never refills (one token a week), so the count does not
// leak away within the window however slowly the probes come.
func countSet(s *nftables.Set, n int, window time.Duration) *expr.Dynset {
	return &expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: window,
		Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Unit: expr.LimitTimeWeek, Burst: uint32(n - 1), Over: true}}}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}
