//go:build linux

package actions

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// objects are the descriptors of everything a spec puts in the table, made
// fresh for each batch: AddSet gives a set an ID only its batch knows.
type objects struct {
	table             *nftables.Table
	set4, set6, strk6 *nftables.Set
	// allow4 and allow6 hold the sources never struck nor dropped
	// (TableSpec.Allow): first strike returns for them, and the ban
	// chains' drop rules do not match them.
	allow4, allow6 *nftables.Set
	wide4          *nftables.Set     // IPv4 bans wider than IPv4Prefix
	mask4, mask6   []byte            // the sources' masks before a lookup; nil at full length
	banChains      []*nftables.Chain // with ManageChain, one per hook
	listen         listenSets        // nil sets without first strike and advanced mode
	fs             *fsObjects        // nil without first strike
	adv            *advObjects       // nil without advanced mode
}

// maxSet4 bounds blocked4. Without a size the kernel gives a set with flags
// dynamic created through google/nftables a bound of 65535 elements (nft
// lists "size 65535"), past which the daemon's own bans would fail; the
// bound costs nothing until used (the hash grows with its elements).
const maxSet4 = 1 << 24

func newObjects(spec *TableSpec) *objects {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: spec.Table}
	o := &objects{
		table: t,
		// blocked4 is a plain hash set: inserts stay cheap however many
		// bans it holds (an interval set's grow with its size), and the
		// packet path (first strike) can add to it, which needs flags
		// dynamic.
		set4: &nftables.Set{Table: t, Name: Set4, KeyType: nftables.TypeIPAddr, HasTimeout: true, Dynamic: true, Size: maxSet4},
		set6: &nftables.Set{Table: t, Name: Set6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true},
		// strike6 is first strike's IPv6 bans: blocked6 is an interval set
		// (an rbtree), which the packet path cannot add to. Its size is
		// bound like first strike's own sets, though the strike valve
		// bounds it first.
		strk6:  &nftables.Set{Table: t, Name: SetStrike6, KeyType: nftables.TypeIP6Addr, HasTimeout: true, Dynamic: true, Size: DefaultFirstStrikeSetSize},
		allow4: &nftables.Set{Table: t, Name: SetAllow4, KeyType: nftables.TypeIPAddr, Interval: true},
		allow6: &nftables.Set{Table: t, Name: SetAllow6, KeyType: nftables.TypeIP6Addr, Interval: true},
		wide4:  newWide4(t),
	}
	if spec.IPv4Prefix < 32 {
		o.mask4 = net.CIDRMask(spec.IPv4Prefix, 32)
	}
	if spec.IPv6Prefix < 128 {
		o.mask6 = net.CIDRMask(spec.IPv6Prefix, 128)
	}
	if spec.ManageChain {
		for _, h := range spec.Hooks {
			hook := nftables.ChainHookInput
			if h == HookForward {
				hook = nftables.ChainHookForward
			}
			o.banChains = append(o.banChains, baseChain(t, h, hook, spec.Priority))
		}
	}
	if spec.usesListen() {
		o.listen = newListenSets(t)
	}
	if spec.FirstStrike != nil {
		o.fs = newFSObjects(t, spec.FirstStrike, spec, o.mask4, o.mask6, o.allow4, o.allow6)
	}
	if spec.Advanced != nil {
		o.adv = newAdvObjects(t, spec.Advanced)
	}
	return o
}

// sets lists every named set of the spec, in the order Missing reports
// them.
func (o *objects) sets() []*nftables.Set {
	out := []*nftables.Set{o.set4, o.set6, o.strk6, o.wide4}
	if o.listen.tcp != nil {
		out = append(out, o.listen.all()...)
	}
	out = append(out, o.allow4, o.allow6)
	if o.fs != nil {
		out = append(out, o.fs.dynSets()...)
	}
	if o.adv != nil {
		out = append(out, o.adv.watchTCP, o.adv.watchUDP)
	}
	return out
}

// chains lists every chain of the spec, base chains with their hook and
// priority.
func (o *objects) chains() []*nftables.Chain {
	out := append([]*nftables.Chain(nil), o.banChains...)
	if o.fs != nil {
		out = append(out, o.fs.chains()...)
	}
	if o.adv != nil {
		out = append(out, o.adv.chain)
	}
	return out
}

// wantChain reports whether got, a chain of the table, is one of the spec
// as it stands: a base chain must also have the spec's hook and priority,
// which the kernel cannot change in place.
func (o *objects) wantChain(got *nftables.Chain) bool {
	for _, w := range o.chains() {
		if w.Name == got.Name {
			return w.Hooknum == nil || sameBaseChain(got, w)
		}
	}
	return false
}

func baseChain(t *nftables.Table, name string, hook *nftables.ChainHook, priority int32) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     name,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  hook,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(priority)),
		Policy:   &accept,
	}
}

func sameBaseChain(got, want *nftables.Chain) bool {
	return got.Hooknum != nil && got.Priority != nil &&
		*got.Hooknum == *want.Hooknum && *got.Priority == *want.Priority && got.Type == want.Type
}

// dropRules are a ban chain's rules:
//
//	ip saddr @blocked4 ip saddr != @allow4 counter drop
//	ip6 saddr @blocked6 ip6 saddr != @allow6 counter drop
//	ip6 saddr & <IPv6Prefix mask> @strike6 ip6 saddr != @allow6 counter drop
//	ip saddr @wide4 ip saddr != @allow4 counter drop
//
// A ban never drops an address of the allow list (this host's own, its
// gateways and resolvers, the ignore list), whatever put it in a set: the
// allow lookup comes after the ban lookup, so only banned sources pay for
// it.
func (o *objects) dropRules(c *nftables.Chain) []*nftables.Rule {
	return []*nftables.Rule{
		dropRule(o.table, c, o.set4, o.allow4, unix.NFPROTO_IPV4, 12, 4, o.mask4),
		dropRule(o.table, c, o.set6, o.allow6, unix.NFPROTO_IPV6, 8, 16, nil),
		dropRule(o.table, c, o.strk6, o.allow6, unix.NFPROTO_IPV6, 8, 16, o.mask6),
		dropRule(o.table, c, o.wide4, o.allow4, unix.NFPROTO_IPV4, 12, 4, nil),
	}
}

// dropRule is `ip saddr @set ip saddr != @allow counter drop` (or its ip6
// twin): match the family, load the source address, look it up, look the
// address up in the allow set, count and drop. With a mask it is `ip saddr
// & mask @set ...`: the address is masked to its network before the ban
// lookup. A nil allow set leaves the guard out.
func dropRule(t *nftables.Table, c *nftables.Chain, s, allow *nftables.Set, proto byte, off, length uint32, mask []byte) *nftables.Rule {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: length},
	}
	if mask != nil {
		exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: length, Mask: mask, Xor: make([]byte, length)})
	}
	exprs = append(exprs, &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
	if allow != nil {
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: length},
			&expr.Lookup{SourceRegister: 1, SetName: allow.Name, SetID: allow.ID, Invert: true})
	}
	exprs = append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	return &nftables.Rule{Table: t, Chain: c, Exprs: exprs}
}

// ruleParts returns the set a rule looks up (the first one it must find
// the packet in: inverted lookups, the allow guard, do not count) and its
// counter.
func ruleParts(r *nftables.Rule) (set string, cnt *expr.Counter) {
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Lookup:
			if !e.Invert && set == "" {
				set = e.SetName
			}
		case *expr.Counter:
			cnt = e
		}
	}
	return set, cnt
}

// ruleMask returns the mask a rule applies before its lookup, or nil.
func ruleMask(r *nftables.Rule) []byte {
	for _, e := range r.Exprs {
		if b, ok := e.(*expr.Bitwise); ok {
			return b.Mask
		}
	}
	return nil
}

func hasDrop(r *nftables.Rule) bool {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictDrop {
			return true
		}
	}
	return false
}

// setShape says how got differs from want in type and flags, or "" if it
// does not.
func setShape(got, want *nftables.Set) string {
	if got.KeyType.Name == want.KeyType.Name && got.Interval == want.Interval && got.Dynamic == want.Dynamic &&
		got.HasTimeout == want.HasTimeout && got.IsMap == want.IsMap && got.Concatenation == want.Concatenation {
		return ""
	}
	return fmt.Sprintf("type %s interval=%t dynamic=%t timeout=%t map=%t concatenation=%t",
		got.KeyType.Name, got.Interval, got.Dynamic, got.HasTimeout, got.IsMap, got.Concatenation)
}

// setFlags is s's flags as nft writes them.
func setFlags(s *nftables.Set) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{s.Dynamic, "dynamic"}, {s.Interval, "interval"}, {s.HasTimeout, "timeout"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, ",")
}

// countingSet matches the names of first strike's counting sets, and
// ruleChain those of its rule chains, of any configuration.
var (
	countingSet = regexp.MustCompile(`^fs(?:[0-9]+_(?:probes|protos|keys|rate|hits|hot)|_struck)([46])$`)
	ruleChain   = regexp.MustCompile(`^(fs[0-9]+|strike_single|strike_over|strike_narrow)$`)
)

// fromKernel decodes the elements of an address set; other keys are
// skipped.
func fromKernel(els []nftables.SetElement) []element {
	out := make([]element, 0, len(els))
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		out = append(out, element{addr: a, end: e.IntervalEnd, timeout: e.Timeout, expires: e.Expires, comment: e.Comment})
	}
	return out
}

// rangeElements is the interval [first, last]: a start element carrying the
// timeout and comment and an end element (the first address after last)
// without them; no end element when last is the end of the address space.
func rangeElements(first, last netip.Addr, timeout time.Duration, comment string) []nftables.SetElement {
	start := nftables.SetElement{Key: first.AsSlice(), Timeout: timeout, Comment: comment}
	end := last.Next()
	if !end.IsValid() {
		return []nftables.SetElement{start}
	}
	return []nftables.SetElement{start, {Key: end.AsSlice(), IntervalEnd: true}}
}

// addrRangeElements encodes disjoint, non-adjacent ranges for an address
// interval set without timeout.
func addrRangeElements(rs []addrRange) []nftables.SetElement {
	var els []nftables.SetElement
	for _, r := range rs {
		els = append(els, nftables.SetElement{Key: r.first.AsSlice()})
		if end := r.last.Next(); end.IsValid() {
			els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// portRangeElements encodes disjoint, non-adjacent ranges for an
// inet_service interval set: a start element per range and an end element
// (the port after it) unless the range runs to 65535.
func portRangeElements(rs []rules.PortRange) []nftables.SetElement {
	var els []nftables.SetElement
	for _, r := range rs {
		els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Lo)})
		if r.Hi < 65535 {
			els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Hi + 1), IntervalEnd: true})
		}
	}
	return els
}

// keepElements are blocked4's elements for k, each commented as the
// daemon's.
func keepElements(k keep4) []nftables.SetElement {
	addrs := k.addrs()
	out := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, nftables.SetElement{Key: a.AsSlice(), Timeout: k[a], Comment: BanComment})
	}
	return out
}

// addrElements are elements with the given keys, to delete.
func addrElements(addrs []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, nftables.SetElement{Key: a.AsSlice()})
	}
	return out
}
