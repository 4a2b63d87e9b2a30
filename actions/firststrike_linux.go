//go:build linux

package actions

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// FirstStrike is first strike: nftables counts each rule's probes per
// source and, at the threshold, bans the source by itself (an element of
// blocked4 or strike6 with the provisional timeout), logs the striking
// probe to NFLOG with its own prefix and drops it. A fast scanner with
// thousands of probes in flight learns no more than threshold-1 answers,
// where a ban from userspace lands only after tens to hundreds.
//
// The table, as `nft list table` prints it (rule 0: tcp, SYN, 5 distinct
// ports in 60s; IPv6 keys /64; valve 60 a minute):
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
//
// NFTables.Setup must run first (it makes blocked4 with flags dynamic and
// strike6). All methods are safe for concurrent use.
type FirstStrike struct {
	cfg          FirstStrikeConfig
	table        *nftables.Table
	mask4, mask6 []byte // nil at full length
	prefix       []byte

	mu sync.Mutex // guards everything below and the connection's batch
	lasting
}

var errFirstStrikeClosed = fmt.Errorf("first strike: %w", net.ErrClosed)

// OpenFirstStrike validates cfg, applies its defaults and opens a lasting
// netlink connection (in cfg.NetNSFd's namespace when set). It changes
// nothing in the kernel.
func OpenFirstStrike(cfg FirstStrikeConfig) (*FirstStrike, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	f := &FirstStrike{cfg: cfg, prefix: []byte(cfg.Prefix)}
	f.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: cfg.Table}
	if cfg.IPv4Prefix < 32 {
		f.mask4 = net.CIDRMask(cfg.IPv4Prefix, 32)
	}
	if cfg.IPv6Prefix < 128 {
		f.mask6 = net.CIDRMask(cfg.IPv6Prefix, 128)
	}
	if err := f.open("first strike: ", cfg.NetNSFd); err != nil {
		return nil, err
	}
	return f, nil
}

func fsError(op string, err error) error {
	return &Error{Op: "first strike: " + op, Err: err, Errno: errnoOf(err)}
}

// Close closes the netlink connection; the chains and sets stay (Remove
// deletes them). Close is idempotent.
func (f *FirstStrike) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shut("first strike")
}

// fsFamily describes how one address fsFamily's rules read the source.
type fsFamily struct {
	sfx     string // "4" or "6"
	nfproto byte
	off     uint32 // source address offset in the network header
	alen    uint32
	mask    []byte
	portReg uint32 // the 32-bit register after the address, for concatenations
	keyType nftables.SetDatatype
}

func (f *FirstStrike) families() [2]fsFamily {
	return [2]fsFamily{
		{sfx: "4", nfproto: unix.NFPROTO_IPV4, off: 12, alen: 4, mask: f.mask4, portReg: 9, keyType: nftables.TypeIPAddr},
		// NFT_REG32_00 is 8: a 16-byte address fills 8-11.
		{sfx: "6", nfproto: unix.NFPROTO_IPV6, off: 8, alen: 16, mask: f.mask6, portReg: 12, keyType: nftables.TypeIP6Addr},
	}
}

// key loads the fsFamily's (masked) source into register 1, after matching
// the fsFamily.
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

// ruleSets are the dynamic sets of one rule and fsFamily.
type ruleSets struct {
	probes, rate, hits, hot *nftables.Set
}

// objects is everything Setup writes, built fresh for each batch (set IDs
// are per batch).
type objects struct {
	allow4, allow6 *nftables.Set
	listen         listenSets
	sets           [][2]ruleSets // per rule, per fsFamily
	base, strike   *nftables.Chain
	ruleChains     []*nftables.Chain
}

func (f *FirstStrike) dynSet(name string, kt nftables.SetDatatype, concat bool) *nftables.Set {
	return &nftables.Set{Table: f.table, Name: name, KeyType: kt, Concatenation: concat,
		HasTimeout: true, Dynamic: true, Size: f.cfg.SetSize}
}

func (f *FirstStrike) objects() *objects {
	o := &objects{
		allow4: &nftables.Set{Table: f.table, Name: SetAllow4, KeyType: nftables.TypeIPAddr, Interval: true},
		allow6: &nftables.Set{Table: f.table, Name: SetAllow6, KeyType: nftables.TypeIP6Addr, Interval: true},
		listen: newListenSets(f.table),
	}
	accept := nftables.ChainPolicyAccept
	o.base = &nftables.Chain{Name: FirstStrikeChain, Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(f.cfg.Priority)), Policy: &accept}
	o.strike = &nftables.Chain{Name: StrikeChain, Table: f.table}
	for i, r := range f.cfg.Rules {
		o.ruleChains = append(o.ruleChains, &nftables.Chain{Name: fmt.Sprintf("fs%d", i), Table: f.table})
		var rs [2]ruleSets
		for j, fm := range f.families() {
			name := fmt.Sprintf("fs%d_%%s%s", i, fm.sfx)
			if r.DistinctPorts > 1 {
				rs[j].probes = f.dynSet(fmt.Sprintf(name, "probes"), nftables.MustConcatSetType(fm.keyType, nftables.TypeInetService), true)
				rs[j].rate = f.dynSet(fmt.Sprintf(name, "rate"), fm.keyType, false)
			}
			if r.Hits > 1 {
				rs[j].hits = f.dynSet(fmt.Sprintf(name, "hits"), fm.keyType, false)
				if r.DistinctPorts > 1 {
					rs[j].hot = f.dynSet(fmt.Sprintf(name, "hot"), fm.keyType, false)
				}
			}
		}
		o.sets = append(o.sets, rs)
	}
	return o
}

func (o *objects) dynSets() []*nftables.Set {
	var out []*nftables.Set
	for _, rs := range o.sets {
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

// ours matches the names of first strike's rule chains and sets, of any
// configuration.
var ours = regexp.MustCompile(`^fs[0-9]+(_(probes|rate|hits|hot)[46])?$`)

// existing lists first strike's chains and sets in the kernel.
func (f *FirstStrike) existing() (chains []*nftables.Chain, sets []*nftables.Set, haveTable bool, err error) {
	all, err := f.conn.GetSets(f.table)
	if errnoOf(err) == unix.ENOENT {
		return nil, nil, false, nil
	}
	if err != nil {
		f.redial(err)
		return nil, nil, false, fsError("list sets of table inet "+f.cfg.Table, err)
	}
	for _, s := range all {
		s.Table = f.table
		sets = append(sets, s)
	}
	cs, err := f.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		f.redial(err)
		return nil, nil, true, fsError("list chains", err)
	}
	for _, c := range cs {
		if c.Table != nil && c.Table.Name == f.cfg.Table {
			c.Table = f.table
			chains = append(chains, c)
		}
	}
	return chains, sets, true, nil
}

func isOurChain(name string) bool {
	return name == FirstStrikeChain || name == StrikeChain || ours.MatchString(name)
}

func isOurSet(name string) bool {
	return name == SetAllow4 || name == SetAllow6 || ours.MatchString(name)
}

// Setup makes first strike's chains and sets exist as configured, in one
// batch: its chains are flushed and rewritten, its sets made anew (the
// counting state starts over; kernel bans in blocked4 and strike6 stay),
// the allow sets filled from the configuration, and the chains and sets of
// rules no longer configured deleted. The listen sets keep their contents.
// It is idempotent: a second run leaves one copy of each rule. It fails,
// changing nothing, if blocked4 (with flags dynamic) or strike6 is missing:
// run NFTables.Setup first.
func (f *FirstStrike) Setup() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFirstStrikeClosed
	}
	chains, sets, _, err := f.existing()
	if err != nil {
		return err
	}
	find := func(name string) *nftables.Set {
		i := slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == name })
		if i < 0 {
			return nil
		}
		return sets[i]
	}
	if s := find(Set4); s == nil || !s.Dynamic || s.Interval {
		return fmt.Errorf("first strike: table inet %s has no set %s with flags dynamic,timeout: run the ban table's setup (NFTables.Setup) first", f.cfg.Table, Set4)
	}
	if find(SetStrike6) == nil {
		return fmt.Errorf("first strike: table inet %s has no set %s: run the ban table's setup (NFTables.Setup) first", f.cfg.Table, SetStrike6)
	}
	o := f.objects()
	c := f.conn

	c.AddTable(f.table)
	// Flush our chains first: their rules refer to the sets deleted
	// below and to the chains they jump to.
	for _, ch := range chains {
		if isOurChain(ch.Name) {
			c.FlushChain(ch)
		}
	}
	for _, ch := range chains {
		switch {
		case ch.Name == FirstStrikeChain:
			if !advSameBaseChain(ch, o.base) {
				c.DelChain(ch)
			}
		case ours.MatchString(ch.Name) && !slices.ContainsFunc(o.ruleChains, func(w *nftables.Chain) bool { return w.Name == ch.Name }):
			c.DelChain(ch)
		}
	}
	for _, s := range sets {
		if isOurSet(s.Name) {
			c.DelSet(s)
		}
	}
	for _, s := range o.listen.all() {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("first strike: add set %s: %w", s.Name, err)
		}
	}
	a4, a6 := allowElements(f.cfg.Allow)
	for _, sv := range []struct {
		s   *nftables.Set
		els []nftables.SetElement
	}{{o.allow4, a4}, {o.allow6, a6}} {
		if err := c.AddSet(sv.s, sv.els); err != nil {
			return fmt.Errorf("first strike: add set %s: %w", sv.s.Name, err)
		}
	}
	for _, s := range o.dynSets() {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("first strike: add set %s: %w", s.Name, err)
		}
	}
	c.AddChain(o.strike)
	for _, ch := range o.ruleChains {
		c.AddChain(ch)
	}
	c.AddChain(o.base)
	rules, err := f.rules(o)
	if err != nil {
		return err
	}
	for _, r := range rules {
		c.AddRule(r)
	}
	if err := c.Flush(); err != nil {
		f.redial(err)
		return fsError("set up chain "+FirstStrikeChain+" in table inet "+f.cfg.Table, err)
	}
	return nil
}

// allowElements encodes the allowed prefixes for the interval sets allow4
// and allow6, overlapping and adjacent ones merged (the kernel refuses
// overlaps).
func allowElements(ps []netip.Prefix) (v4, v6 []nftables.SetElement) {
	type rng struct{ first, last netip.Addr }
	var r4, r6 []rng
	for _, p := range ps {
		r := rng{p.Addr(), lastAddr(p)}
		if p.Addr().Is4() {
			r4 = append(r4, r)
		} else {
			r6 = append(r6, r)
		}
	}
	enc := func(rs []rng) []nftables.SetElement {
		slices.SortFunc(rs, func(a, b rng) int { return a.first.Compare(b.first) })
		var merged []rng
		for _, r := range rs {
			if n := len(merged); n > 0 {
				m := &merged[n-1]
				if next := m.last.Next(); !next.IsValid() || r.first.Compare(next) <= 0 {
					if r.last.Compare(m.last) > 0 {
						m.last = r.last
					}
					continue
				}
			}
			merged = append(merged, r)
		}
		var els []nftables.SetElement
		for _, r := range merged {
			els = append(els, nftables.SetElement{Key: r.first.AsSlice()})
			if end := r.last.Next(); end.IsValid() {
				els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
			}
		}
		return els
	}
	return enc(r4), enc(r6)
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
// strike chain.
func (f *FirstStrike) rules(o *objects) ([]*nftables.Rule, error) {
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
	fams := f.families()

	// The base chain.
	b := o.base
	// The loopback interface's index is 1 in every namespace.
	add(b, &expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)}, ret)
	add(b, &expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}}, ret)
	for i, s := range []*nftables.Set{o.allow4, o.allow6} {
		fm := fams[i]
		fm.mask = nil // the allow sets hold prefixes: look the address up
		add(b, slices.Concat(fm.key(), []expr.Any{lookup(1, s, false), ret})...)
	}
	add(b, slices.Concat(l4(unix.IPPROTO_TCP), []expr.Any{dport, lookup(1, o.listen.tcp, false), ret})...)
	add(b, slices.Concat(l4(unix.IPPROTO_UDP), []expr.Any{dport, lookup(1, o.listen.udp, false), ret})...)
	for i, r := range f.cfg.Rules {
		var ports []expr.Any
		if len(r.Ports) > 0 {
			ps := &nftables.Set{Table: f.table, Anonymous: true, Constant: true, Interval: true, KeyType: nftables.TypeInetService}
			if err := f.conn.AddSet(ps, intervalElements(rules.NewPortSet(r.Ports...).Ranges())); err != nil {
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
			add(b, slices.Concat(m, ports, []expr.Any{jump(o.ruleChains[i].Name)})...)
		}
	}

	// The rule chains.
	for i, r := range f.cfg.Rules {
		c := o.ruleChains[i]
		for j, fm := range fams {
			rs := o.sets[i][j]
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
	s := o.strike
	if m := f.cfg.MaxPerMinute; m > 0 {
		add(s, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m), Unit: expr.LimitTimeMinute, Burst: uint32(m), Over: true},
			&expr.Counter{}, ret)
	}
	for j, set := range []string{Set4, SetStrike6} {
		add(s, append(fams[j].key(),
			&expr.Dynset{SrcRegKey: 1, SetName: set, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: f.cfg.Provisional},
			&expr.Counter{})...)
	}
	add(s, &expr.Counter{},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group: f.cfg.Group, Snaplen: AdvancedSnaplen, Data: f.prefix},
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

// SetAllow replaces the sources never struck, in one batch. Setup fills
// them from FirstStrikeConfig.Allow; the daemon calls SetAllow when its
// ignore list changes (a new gateway or resolver).
func (f *FirstStrike) SetAllow(allow []netip.Prefix) error {
	ps := make([]netip.Prefix, 0, len(allow))
	for _, p := range allow {
		n, err := normalizeKey(p)
		if err != nil {
			return fmt.Errorf("first strike: allow: %w", err)
		}
		ps = append(ps, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFirstStrikeClosed
	}
	o := f.objects()
	a4, a6 := allowElements(ps)
	for _, sv := range []struct {
		s   *nftables.Set
		els []nftables.SetElement
	}{{o.allow4, a4}, {o.allow6, a6}} {
		f.conn.FlushSet(sv.s)
		if len(sv.els) > 0 {
			if err := f.conn.SetAddElements(sv.s, sv.els); err != nil {
				return fmt.Errorf("first strike: fill %s: %w", sv.s.Name, err)
			}
		}
	}
	if err := f.conn.Flush(); err != nil {
		f.redial(err)
		return fsError("replace allow sets", err)
	}
	f.cfg.Allow = ps
	return nil
}

// SetListening makes the listen sets, shared with advanced mode, hold
// exactly the given ports: first strike never counts a probe of a port
// something listens on, so a client of several services is not a scan.
// The daemon calls it every few seconds with hostinfo.Paths.Listening.
func (f *FirstStrike) SetListening(tcp, udp []uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFirstStrikeClosed
	}
	if _, err := syncListening(f.conn, f.table, newListenSets(f.table), tcp, udp); err != nil {
		f.redial(err)
		return fmt.Errorf("first strike: %w", err)
	}
	return nil
}

// Forget deletes the counting state of the sources in key (an unblocked
// source), in every rule's sets: its probed ports, buckets and hot marks,
// so that stale state does not strike it again at its next probe. It reads
// each set (bounded by SetSize) and deletes in one batch; nothing to
// delete is not an error.
func (f *FirstStrike) Forget(key netip.Prefix) error {
	key, err := normalizeKey(key)
	if err != nil {
		return fmt.Errorf("first strike: forget: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFirstStrikeClosed
	}
	err = f.forgetOnce(key)
	if errnoOf(err) == unix.ENOENT {
		// An element timed out between read and delete: read again.
		err = f.forgetOnce(key)
	}
	return err
}

func (f *FirstStrike) forgetOnce(key netip.Prefix) error {
	j, alen := 0, 4
	if key.Addr().Is6() {
		j, alen = 1, 16
	}
	n := 0
	for _, rs := range f.objects().sets {
		s := rs[j]
		for _, set := range []*nftables.Set{s.probes, s.rate, s.hits, s.hot} {
			if set == nil {
				continue
			}
			els, err := f.conn.GetSetElements(set)
			if errnoOf(err) == unix.ENOENT {
				continue // not set up
			}
			if err != nil {
				f.redial(err)
				return fsError("read set "+set.Name, err)
			}
			var del []nftables.SetElement
			for _, e := range els {
				if len(e.Key) < alen {
					continue
				}
				if a, ok := netip.AddrFromSlice(e.Key[:alen]); ok && key.Contains(a) {
					del = append(del, nftables.SetElement{Key: e.Key})
				}
			}
			if len(del) > 0 {
				if err := f.conn.SetDeleteElements(set, del); err != nil {
					return fmt.Errorf("first strike: forget %s in %s: %w", key, set.Name, err)
				}
				n += len(del)
			}
		}
	}
	if n == 0 {
		return nil
	}
	if err := f.conn.Flush(); err != nil {
		f.redial(err)
		return fsError(fmt.Sprintf("forget %s (%d elements)", key, n), err)
	}
	return nil
}

// Remove deletes first strike's chains and sets, whichever exist, in one
// batch: the bans it made stay in blocked4 and strike6 until they expire,
// and the listen sets stay while advanced mode's chain uses them.
// Removing what is not there is not an error.
func (f *FirstStrike) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFirstStrikeClosed
	}
	chains, sets, haveTable, err := f.existing()
	if err != nil || !haveTable {
		return err
	}
	adv := slices.ContainsFunc(chains, func(c *nftables.Chain) bool { return c.Name == AdvancedChain })
	n := 0
	for _, c := range chains {
		if isOurChain(c.Name) {
			f.conn.FlushChain(c)
		}
	}
	for _, c := range chains {
		if isOurChain(c.Name) {
			f.conn.DelChain(c)
			n++
		}
	}
	for _, s := range sets {
		if isOurSet(s.Name) || (!adv && (s.Name == SetListenTCP || s.Name == SetListenUDP)) {
			f.conn.DelSet(s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := f.conn.Flush(); err != nil {
		f.redial(err)
		return fsError("remove first strike from table inet "+f.cfg.Table, err)
	}
	return nil
}
