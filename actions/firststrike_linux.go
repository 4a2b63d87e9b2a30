//go:build linux

package actions

import (
	"fmt"
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
// Its part of the table, as `nft list table` prints it (rule 0: tcp, SYN, 5
// distinct ports in 60s; IPv6 keys /64; valve 60 a minute):
//
//	chain firststrike {
//		type filter hook input priority filter - 7; policy accept;
//		iif "lo" return
//		meta pkttype != host return
//		ip saddr @allow4 return
//		ip6 saddr @allow6 return
//		tcp dport @listen_tcp return
//		udp dport @listen_udp return
//		meta l4proto tcp tcp flags & (fin | syn | rst | ack) == syn ct state invalid,new jump fs0
//	}
//	chain fs0 {
//		ip saddr . tcp dport != @fs0_probes4 add @fs0_probes4 { ip saddr . tcp dport timeout 1m } update @fs0_rate4 { ip saddr limit rate over 4/minute burst 4 packets } jump strike
//		ip6 saddr & ffff:ffff:ffff:ffff:: . tcp dport != @fs0_probes6 add @fs0_probes6 { ... } update @fs0_rate6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 4/minute burst 4 packets } jump strike
//	}
//	chain strike {
//		limit rate over 60/minute burst 60 packets counter return
//		meta nfproto ipv4 add @blocked4 { ip saddr timeout 1m } counter
//		meta nfproto ipv6 add @strike6 { ip6 saddr & ffff:ffff:ffff:ffff:: timeout 1m } counter
//		log prefix "SENTRY-FS" group G snaplen 128 drop
//	}
//
// A repeated probe of a port already counted is not counted again. The
// per-source bucket lets threshold-1 probes through at once and refills
// threshold-1 per window (see bucketFor), so the kernel strikes only what
// the engine's sliding window would ban. A rule with both hits and
// distinct ports marks a source "hot" (set fs<i>_hot) when its hits are
// over and strikes at the next new port over the distinct threshold.
//
// Every dynamic set is bounded by SetSize and its elements time out after
// the window. When a set is full the kernel's add fails and the rule stops
// there: nothing new is counted or struck, the packet goes on to the user's
// rules, and the daemon decides. The valve bounds strikes per minute in
// total: over it the probe also goes on, unstruck.

// fsFamily describes how one address family's rules read the source.
type fsFamily struct {
	sfx     string // "4" or "6"
	nfproto byte
	off     uint32 // source address offset in the network header
	alen    uint32
	mask    []byte
	portReg uint32 // the 32-bit register after the address, for concatenations
	keyType nftables.SetDatatype
}

func fsFamilies(mask4, mask6 []byte) [2]fsFamily {
	return [2]fsFamily{
		{sfx: "4", nfproto: unix.NFPROTO_IPV4, off: 12, alen: 4, mask: mask4, portReg: 9, keyType: nftables.TypeIPAddr},
		// NFT_REG32_00 is 8: a 16-byte address fills 8-11.
		{sfx: "6", nfproto: unix.NFPROTO_IPV6, off: 8, alen: 16, mask: mask6, portReg: 12, keyType: nftables.TypeIP6Addr},
	}
}

// key loads the family's (masked) source into register 1, after matching
// the family.
func (fm fsFamily) key() []expr.Any {
	es := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fm.nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fm.off, Len: fm.alen},
	}
	if fm.mask != nil {
		es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: fm.alen, Mask: fm.mask, Xor: make([]byte, fm.alen)})
	}
	return es
}

// keyPort is key with the destination port concatenated.
func (fm fsFamily) keyPort() []expr.Any {
	return append(fm.key(), &expr.Payload{DestRegister: fm.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
}

// ruleSets are the dynamic sets of one rule and family.
type ruleSets struct {
	probes, rate, hits, hot *nftables.Set
}

// fsObjects are first strike's chains and sets.
type fsObjects struct {
	cfg            *FirstStrikeConfig
	table          *nftables.Table
	fams           [2]fsFamily
	allow4, allow6 *nftables.Set
	sets           [][2]ruleSets // per rule, per family
	base, strike   *nftables.Chain
	ruleChains     []*nftables.Chain
}

func newFSObjects(t *nftables.Table, cfg *FirstStrikeConfig, mask4, mask6 []byte) *fsObjects {
	f := &fsObjects{
		cfg:    cfg,
		table:  t,
		fams:   fsFamilies(mask4, mask6),
		allow4: &nftables.Set{Table: t, Name: SetAllow4, KeyType: nftables.TypeIPAddr, Interval: true},
		allow6: &nftables.Set{Table: t, Name: SetAllow6, KeyType: nftables.TypeIP6Addr, Interval: true},
		base:   baseChain(t, FirstStrikeChain, nftables.ChainHookInput, cfg.Priority),
		strike: &nftables.Chain{Name: StrikeChain, Table: t},
	}
	dynSet := func(name string, kt nftables.SetDatatype, concat bool) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, KeyType: kt, Concatenation: concat, HasTimeout: true, Dynamic: true, Size: cfg.SetSize}
	}
	for i, r := range cfg.Rules {
		f.ruleChains = append(f.ruleChains, &nftables.Chain{Name: fmt.Sprintf("fs%d", i), Table: t})
		var rs [2]ruleSets
		for j, fm := range f.fams {
			name := func(what string) string { return fmt.Sprintf("fs%d_%s%s", i, what, fm.sfx) }
			if r.DistinctPorts > 1 {
				rs[j].probes = dynSet(name("probes"), nftables.MustConcatSetType(fm.keyType, nftables.TypeInetService), true)
				rs[j].rate = dynSet(name("rate"), fm.keyType, false)
			}
			if r.Hits > 1 {
				rs[j].hits = dynSet(name("hits"), fm.keyType, false)
				if r.DistinctPorts > 1 {
					rs[j].hot = dynSet(name("hot"), fm.keyType, false)
				}
			}
		}
		f.sets = append(f.sets, rs)
	}
	return f
}

// dynSets are the counting sets, in rule order.
func (f *fsObjects) dynSets() []*nftables.Set {
	var out []*nftables.Set
	for _, rs := range f.sets {
		for _, s := range rs {
			for _, set := range []*nftables.Set{s.probes, s.rate, s.hits, s.hot} {
				if set != nil {
					out = append(out, set)
				}
			}
		}
	}
	return out
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
)

// rules returns every rule of the base chain, the rule chains and the
// strike chain. addSet adds the anonymous port sets the rules look up,
// which must be in the batch before them (Missing, which only counts the
// rules, passes one that does nothing).
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
	l4 := func(proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
	}
	dport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}

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
	add(b, slices.Concat(l4(unix.IPPROTO_TCP), []expr.Any{dport, lookup(1, o.listen.tcp, false), ret})...)
	add(b, slices.Concat(l4(unix.IPPROTO_UDP), []expr.Any{dport, lookup(1, o.listen.udp, false), ret})...)
	for i, r := range f.cfg.Rules {
		var ports []expr.Any
		if len(r.Ports) > 0 {
			ps := &nftables.Set{Table: f.table, Anonymous: true, Constant: true, Interval: true, KeyType: nftables.TypeInetService}
			if err := addSet(ps, portRangeElements(rules.NewPortSet(r.Ports...).Ranges())); err != nil {
				return nil, fmt.Errorf("first strike: rule %d ports: %w", i, err)
			}
			ports = []expr.Any{dport, lookup(1, ps, false)}
		}
		var matches [][]expr.Any
		if r.Proto == unix.IPPROTO_UDP {
			matches = append(matches, slices.Concat(l4(unix.IPPROTO_UDP), ctState(expr.CtStateBitNEW)))
		} else {
			for _, m := range []struct {
				bit        FlagMatch
				mask, want byte
			}{
				{MatchSYN, tcpFIN | tcpSYN | tcpRST | tcpACK, tcpSYN},
				{MatchNULL, tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpACK | tcpURG, 0},
				{MatchFIN, tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpACK | tcpURG, tcpFIN},
				{MatchXMAS, tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpACK | tcpURG, tcpFIN | tcpPSH | tcpURG},
			} {
				if r.TCPFlags&m.bit == 0 {
					continue
				}
				matches = append(matches, slices.Concat(l4(unix.IPPROTO_TCP), []expr.Any{
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
					&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{m.mask}, Xor: []byte{0}},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{m.want}},
				}, ctState(expr.CtStateBitNEW|expr.CtStateBitINVALID)))
			}
		}
		for _, m := range matches {
			add(b, slices.Concat(m, ports, []expr.Any{jump(f.ruleChains[i].Name)})...)
		}
	}

	// The rule chains.
	for i, r := range f.cfg.Rules {
		c := f.ruleChains[i]
		for j, fm := range f.fams {
			rs := f.sets[i][j]
			if r.Tripwire() {
				add(c, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fm.nfproto}}, jump(StrikeChain))
				continue
			}
			if r.Hits > 1 {
				es := append(fm.key(), limitSet(rs.hits, bucketFor(r.Hits, r.Window), r.Window))
				if rs.hot != nil {
					// Both thresholds: hits only mark the source hot.
					es = append(es, &expr.Dynset{SrcRegKey: 1, SetName: rs.hot.Name, SetID: rs.hot.ID,
						Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: r.Window})
				} else {
					es = append(es, jump(StrikeChain))
				}
				add(c, es...)
			}
			if r.DistinctPorts > 1 {
				es := append(fm.keyPort(),
					lookup(1, rs.probes, true),
					&expr.Dynset{SrcRegKey: 1, SetName: rs.probes.Name, SetID: rs.probes.ID,
						Operation: unix.NFT_DYNSET_OP_ADD, Timeout: r.Window},
					limitSet(rs.rate, bucketFor(r.DistinctPorts, r.Window), r.Window))
				if rs.hot != nil {
					es = append(es, lookup(1, rs.hot, false))
				}
				add(c, append(es, jump(StrikeChain))...)
			}
		}
	}

	// The strike chain.
	s := f.strike
	if m := f.cfg.MaxPerMinute; m > 0 {
		add(s, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m), Unit: expr.LimitTimeMinute, Burst: uint32(m), Over: true},
			&expr.Counter{}, ret)
	}
	for j, set := range []*nftables.Set{o.set4, o.strk6} {
		add(s, append(f.fams[j].key(),
			&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: f.cfg.Provisional},
			&expr.Counter{})...)
	}
	add(s, &expr.Counter{},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group: f.cfg.Group, Snaplen: AdvancedSnaplen, Data: []byte(f.cfg.Prefix)},
		&expr.Verdict{Kind: expr.VerdictDrop})
	return out, nil
}

// limitSet is `update @s { key limit rate over b }` with the element
// timing out after window without packets: it matches when the source's
// bucket is empty.
func limitSet(s *nftables.Set, b bucket, window time.Duration) *expr.Dynset {
	return &expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: window,
		Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: b.rate, Unit: expr.LimitTime(b.unit), Burst: b.burst, Over: true}}}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// Forget deletes first strike's counting state of the sources in key (an
// unblocked source): its probed ports, buckets and hot marks, so that
// stale state does not strike it again at its next probe. It finds the
// counting sets in the kernel by name (fs<i>_probes4 and the like), so it
// needs no first strike in Spec: a Table opened from the configuration
// alone can call it. It reads each set (bounded by SetSize) and deletes in
// one batch; nothing to delete, or no table, is not an error.
func (t *Table) Forget(key netip.Prefix) error {
	key, err := normalizeKey(key)
	if err != nil {
		return fmt.Errorf("first strike: forget: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	err = t.forgetOnce(key)
	if errnoOf(err) == unix.ENOENT {
		// An element timed out between read and delete: read again.
		err = t.forgetOnce(key)
	}
	return err
}

func (t *Table) forgetOnce(key netip.Prefix) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	sets, _, err := t.readSets(c)
	if err != nil {
		return err
	}
	fam, alen, bits := "4", 4, t.spec.IPv4Prefix
	if key.Addr().Is6() {
		fam, alen, bits = "6", 16, t.spec.IPv6Prefix
	}
	type deletion struct {
		s   *nftables.Set
		els []nftables.SetElement
	}
	var dels []deletion
	n := 0
	for _, s := range sets {
		if m := countingSet.FindStringSubmatch(s.Name); m == nil || m[2] != fam {
			continue
		}
		els, err := c.GetSetElements(s)
		if errnoOf(err) == unix.ENOENT {
			continue // deleted since
		}
		if err != nil {
			return t.readError("read set "+s.Name, err)
		}
		var del []nftables.SetElement
		for _, e := range els {
			if len(e.Key) < alen {
				continue
			}
			// Keys are the sources' network addresses at the key length
			// (the probes sets' with a port after).
			if a, ok := netip.AddrFromSlice(e.Key[:alen]); ok && netip.PrefixFrom(a, bits).Masked().Overlaps(key) {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		if len(del) > 0 {
			dels = append(dels, deletion{s, del})
			n += len(del)
		}
	}
	if n == 0 {
		return nil
	}
	return t.commit(func() string { return fmt.Sprintf("forget %s (%d elements)", key, n) }, func(c *nftables.Conn) error {
		for _, d := range dels {
			if err := c.SetDeleteElements(d.s, d.els); err != nil {
				return fmt.Errorf("first strike: forget %s in %s: %w", key, d.s.Name, err)
			}
		}
		return nil
	})
}
