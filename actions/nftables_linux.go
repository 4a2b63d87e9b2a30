//go:build linux

package actions

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTables enforces bans in one nftables table. Create it with
// OpenNFTables, call Setup once, then Ban and Unblock. All methods are safe
// for concurrent use; they are serialised on one lasting netlink connection.
type NFTables struct {
	cfg NFTablesConfig

	mu sync.Mutex // guards everything below and the connection's batch
	lasting
	table *nftables.Table
	set4  *nftables.Set
	set6  *nftables.Set
	strk6 *nftables.Set // strike6: first strike's IPv6 bans
	mask4 []byte        // the IPv4 rule's source mask; nil for /32
	mask6 []byte        // the strike6 rule's source mask; nil for /128
	rec   record
}

// OpenNFTables validates cfg, applies its defaults and opens a lasting
// netlink connection (in cfg.NetNSFd's namespace when set). It changes
// nothing in the kernel.
func OpenNFTables(cfg NFTablesConfig) (*NFTables, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if len(cfg.Table) > unix.NFT_TABLE_MAXNAMELEN-1 {
		return nil, fmt.Errorf("nftables: table name %q longer than %d bytes", cfg.Table, unix.NFT_TABLE_MAXNAMELEN-1)
	}
	if cfg.Priority == 0 {
		cfg.Priority = DefaultPriority
	}
	hooks, err := normalizeHooks(cfg.Hooks)
	if err != nil {
		return nil, err
	}
	cfg.Hooks = hooks
	if cfg.NetNSFd < 0 {
		return nil, fmt.Errorf("nftables: invalid network namespace fd %d", cfg.NetNSFd)
	}
	if cfg.IPv4Prefix == 0 {
		cfg.IPv4Prefix = 32
	}
	if cfg.IPv4Prefix < 1 || cfg.IPv4Prefix > 32 {
		return nil, fmt.Errorf("nftables: IPv4 ban prefix length %d out of range 1-32", cfg.IPv4Prefix)
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = 64
	}
	if cfg.IPv6Prefix < 1 || cfg.IPv6Prefix > 128 {
		return nil, fmt.Errorf("nftables: IPv6 strike prefix length %d out of range 1-128", cfg.IPv6Prefix)
	}
	if cfg.StrikeTimeout < 0 {
		return nil, fmt.Errorf("nftables: negative strike timeout %v", cfg.StrikeTimeout)
	}

	n := &NFTables{cfg: cfg}
	if cfg.IPv4Prefix < 32 {
		n.mask4 = net.CIDRMask(cfg.IPv4Prefix, 32)
	}
	if cfg.IPv6Prefix < 128 {
		n.mask6 = net.CIDRMask(cfg.IPv6Prefix, 128)
	}
	n.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: cfg.Table}
	// blocked4 is a plain hash set: inserts stay cheap however many bans
	// it holds (an interval set's grow with its size), and the packet path
	// (first strike) can add to it with `add @blocked4 { ip saddr timeout
	// T }`, which needs flags dynamic.
	n.set4 = newSet4(n.table)
	n.set6 = &nftables.Set{Table: n.table, Name: Set6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	n.strk6 = newStrike6(n.table)
	n.rec.init()
	if err := n.open("", cfg.NetNSFd); err != nil {
		return nil, err
	}
	return n, nil
}

// maxSet4 bounds blocked4. Without a size the kernel gives a set with flags
// dynamic created through google/nftables a bound of 65535 elements (nft
// lists "size 65535"), past which the daemon's own bans would fail; the
// bound costs nothing until used (the hash grows with its elements).
const maxSet4 = 1 << 24

func newSet4(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: Set4, KeyType: nftables.TypeIPAddr, HasTimeout: true, Dynamic: true, Size: maxSet4}
}

// newStrike6 is strike6, first strike's IPv6 bans: blocked6 is an interval
// set (an rbtree), which the packet path cannot add to. Its size is bound
// like first strike's own sets, though the strike valve bounds it first.
func newStrike6(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: SetStrike6, KeyType: nftables.TypeIP6Addr, HasTimeout: true, Dynamic: true, Size: DefaultFirstStrikeSetSize}
}

func normalizeHooks(in []string) ([]string, error) {
	if len(in) == 0 {
		return []string{HookInput}, nil
	}
	var out []string
	for _, h := range in {
		if err := CheckHook(h); err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

var errClosed = fmt.Errorf("nftables: %w", net.ErrClosed)

// Close closes the netlink connection. Bans stay in the kernel until they
// expire. Close is idempotent.
func (n *NFTables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.shut("nftables")
}

// Setup makes the table, both sets and (with ManageChain) the base chains
// exist as configured, in one batch. It is idempotent: a second run leaves
// one copy of each rule and keeps every set element.
//
// A blocked4 left by an earlier version as an interval set is replaced by
// the plain set in the same batch, carrying over each active ban that is
// one prefix at least IPv4Prefix long (as its network address, with its
// remaining time); wider or irregular ranges cannot be held and are
// dropped. If a rule outside the managed chains uses the old set the
// kernel refuses (EBUSY) and the error says what to run. After IPv4Prefix
// has been shortened (say 32 to 24), elements that are not network
// addresses of the new length are merged into the one that is, keeping the
// longest remaining time. A lengthened prefix cannot be told from the
// elements: each wider ban then covers only its network address until it
// expires.
//
// Setup fails, changing nothing, if a set of ours exists with another type
// or flags. With ManageChain it also deletes a chain of ours named after a
// hook that is no longer configured; without it it deletes nothing.
func (n *NFTables) Setup() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	err := n.setupOnce()
	if errnoOf(err) == unix.ENOENT {
		// An element being moved expired between read and write, which
		// aborted the whole batch: read again.
		err = n.setupOnce()
	}
	if err != nil {
		return err
	}
	return n.syncLocked()
}

func (n *NFTables) setupOnce() error {
	sets, err := n.conn.GetSets(n.table)
	if err != nil && errnoOf(err) != unix.ENOENT {
		n.redial(err)
		return kernelError("list sets of table inet "+n.cfg.Table, err)
	}
	// old4 is a blocked4 of an earlier version: an interval set, or a
	// plain one without flags dynamic.
	var have4, old4, oldInterval4 bool
	for _, s := range sets {
		switch s.Name {
		case Set4:
			have4 = true
			oldInterval4 = s.Interval && setShape(s, n.set4.KeyType, true, false) == ""
			old4 = oldInterval4 || (!s.Dynamic && setShape(s, n.set4.KeyType, false, false) == "")
			if !old4 {
				if err := n.checkSet(s, n.set4); err != nil {
					return err
				}
			}
		case Set6:
			if err := n.checkSet(s, n.set6); err != nil {
				return err
			}
		case SetStrike6:
			if err := n.checkSet(s, n.strk6); err != nil {
				return err
			}
		}
	}
	var chains []*nftables.Chain
	if n.cfg.ManageChain {
		if chains, err = n.ourChains(); err != nil {
			return err
		}
	}
	var del4, add4 []nftables.SetElement
	switch {
	case oldInterval4:
		// Read through a copy: n.set4 describes the new set.
		els, err := n.elements(&nftables.Set{Table: n.table, Name: Set4, KeyType: nftables.TypeIPAddr})
		if err != nil {
			return err
		}
		add4 = n.migrate4(spansFromElements(els))
	case old4:
		els, err := n.elements(&nftables.Set{Table: n.table, Name: Set4, KeyType: nftables.TypeIPAddr})
		if err != nil {
			return err
		}
		k := make(keep4)
		for _, e := range els {
			if a, ok := netip.AddrFromSlice(e.Key); ok && active(e) && a.Is4() {
				k.merge(n.key4(a).Addr(), e.Timeout, e.Expires)
			}
		}
		add4 = k.elements()
	case have4 && n.mask4 != nil:
		els, err := n.elements(n.set4)
		if err != nil {
			return err
		}
		del4, add4 = n.realign4(els)
	}

	n.conn.AddTable(n.table)
	if old4 {
		// The managed chains' rules look the old set up: the kernel
		// refuses to delete it while they exist.
		for _, c := range chains {
			if c.Name == HookInput || c.Name == HookForward || c.Name == StrikeChain {
				n.conn.FlushChain(c)
			}
		}
		n.conn.DelSet(&nftables.Set{Table: n.table, Name: Set4})
	}
	if err := n.conn.AddSet(n.set4, nil); err != nil {
		return fmt.Errorf("nftables: add set %s: %w", Set4, err)
	}
	if len(del4) > 0 {
		if err := n.conn.SetDeleteElements(n.set4, del4); err != nil {
			return fmt.Errorf("nftables: realign %s: %w", Set4, err)
		}
	}
	if len(add4) > 0 {
		if err := n.conn.SetAddElements(n.set4, add4); err != nil {
			return fmt.Errorf("nftables: fill %s: %w", Set4, err)
		}
	}
	if err := n.conn.AddSet(n.set6, nil); err != nil {
		return fmt.Errorf("nftables: add set %s: %w", Set6, err)
	}
	if err := n.conn.AddSet(n.strk6, nil); err != nil {
		return fmt.Errorf("nftables: add set %s: %w", SetStrike6, err)
	}
	if n.cfg.ManageChain {
		for _, name := range []string{HookInput, HookForward} {
			existing := findChain(chains, name)
			if !slices.Contains(n.cfg.Hooks, name) {
				if existing != nil {
					n.conn.DelChain(existing)
				}
				continue
			}
			want := n.chain(name)
			if existing != nil && !sameBaseChain(existing, want) {
				// The kernel refuses to move a base chain to another hook
				// or priority in place.
				n.conn.DelChain(existing)
			}
			n.conn.AddChain(want)
			n.conn.FlushChain(want)
			n.conn.AddRule(dropRule(n.table, want, n.set4, unix.NFPROTO_IPV4, 12, 4, n.mask4))
			n.conn.AddRule(dropRule(n.table, want, n.set6, unix.NFPROTO_IPV6, 8, 16, nil))
			n.conn.AddRule(dropRule(n.table, want, n.strk6, unix.NFPROTO_IPV6, 8, 16, n.mask6))
		}
	}
	if err := n.conn.Flush(); err != nil {
		n.redial(err)
		if old4 && errnoOf(err) == unix.EBUSY {
			return kernelError(fmt.Sprintf("replace set %s of table inet %s (from an earlier version) with a plain set (flags dynamic,timeout): a rule outside the managed chains still uses it; delete that rule, or run `nft delete set inet %s %s` after it (its bans are lost), and start again",
				Set4, n.cfg.Table, n.cfg.Table, Set4), err)
		}
		return kernelError("set up table inet "+n.cfg.Table, err)
	}
	return nil
}

// setShape says how s differs from a set of key type kt with flags
// timeout (and interval if interval, dynamic if dynamic), or "" if it does
// not.
func setShape(s *nftables.Set, kt nftables.SetDatatype, interval, dynamic bool) string {
	if s.KeyType.Name == kt.Name && s.Interval == interval && s.Dynamic == dynamic && s.HasTimeout && !s.IsMap && !s.Concatenation {
		return ""
	}
	return fmt.Sprintf("type %s interval=%t dynamic=%t timeout=%t map=%t concatenation=%t", s.KeyType.Name, s.Interval, s.Dynamic, s.HasTimeout, s.IsMap, s.Concatenation)
}

func setFlags(s *nftables.Set) string {
	switch {
	case s.Interval:
		return "interval,timeout"
	case s.Dynamic:
		return "dynamic,timeout"
	}
	return "timeout"
}

// checkSet returns an error wrapping EEXIST if got is not shaped like want.
func (n *NFTables) checkSet(got, want *nftables.Set) error {
	shape := setShape(got, want.KeyType, want.Interval, want.Dynamic)
	if shape == "" {
		return nil
	}
	return fmt.Errorf("nftables: set %s in table inet %s exists as %s, want type %s flags %s: run `nft delete set inet %s %s` (its elements are lost) or delete the table to recreate it: %w",
		got.Name, n.cfg.Table, shape, want.KeyType.Name, setFlags(want), n.cfg.Table, got.Name, syscall.EEXIST)
}

// active reports whether e is in force: without timeout, or not yet expired
// (the kernel lists expired elements until its garbage collection runs).
func active(e nftables.SetElement) bool {
	return e.Timeout == 0 || e.Expires > 0
}

// key4 is the ban key a blocked4 element stands for.
func (n *NFTables) key4(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, n.cfg.IPv4Prefix).Masked()
}

// keep4 collects blocked4 elements to write: per address the longest
// remaining time, zero standing for an element without timeout.
type keep4 map[netip.Addr]time.Duration

func (k keep4) merge(a netip.Addr, timeout, left time.Duration) {
	if timeout == 0 {
		k[a] = 0
		return
	}
	if d, ok := k[a]; ok && (d == 0 || d >= left) {
		return
	}
	k[a] = left
}

func (k keep4) elements() []nftables.SetElement {
	addrs := slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for a := range k {
			if !yield(a) {
				return
			}
		}
	}, netip.Addr.Compare)
	out := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, nftables.SetElement{Key: a.AsSlice(), Timeout: k[a], Comment: BanComment})
	}
	return out
}

// migrate4 turns the active ranges of an old interval blocked4 into
// elements of the plain one: each range that is a single prefix at least
// IPv4Prefix long becomes its network address at that length.
func (n *NFTables) migrate4(spans []span) []nftables.SetElement {
	k := make(keep4)
	for _, sp := range spans {
		if ps := rangePrefixes(sp.first, sp.last); len(ps) == 1 && ps[0].Bits() >= n.cfg.IPv4Prefix {
			k.merge(n.key4(sp.first).Addr(), sp.timeout, sp.expires)
		}
	}
	return k.elements()
}

// realign4 moves active elements that are not network addresses at
// IPv4Prefix (left by a run with a longer prefix) onto the one that is:
// every element of such a network is deleted and one added with the
// longest remaining time, so nothing is released early.
func (n *NFTables) realign4(els []nftables.SetElement) (del, add []nftables.SetElement) {
	moved := make(map[netip.Addr]bool)
	for _, e := range els {
		if a, ok := netip.AddrFromSlice(e.Key); ok && active(e) && a.Is4() && n.key4(a).Addr() != a {
			moved[n.key4(a).Addr()] = true
		}
	}
	if len(moved) == 0 {
		return nil, nil
	}
	k := make(keep4)
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || !active(e) || !a.Is4() || !moved[n.key4(a).Addr()] {
			continue
		}
		del = append(del, nftables.SetElement{Key: e.Key})
		k.merge(n.key4(a).Addr(), e.Timeout, e.Expires)
	}
	return del, k.elements()
}

// ourChains lists the chains of our table (the kernel has no per-table dump
// in google/nftables, so we filter the family's dump).
func (n *NFTables) ourChains() ([]*nftables.Chain, error) {
	all, err := n.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		n.redial(err)
		return nil, kernelError("list chains", err)
	}
	var out []*nftables.Chain
	for _, c := range all {
		if c.Table != nil && c.Table.Name == n.cfg.Table {
			c.Table = n.table
			out = append(out, c)
		}
	}
	return out, nil
}

func findChain(chains []*nftables.Chain, name string) *nftables.Chain {
	for _, c := range chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func sameBaseChain(got, want *nftables.Chain) bool {
	return got.Hooknum != nil && got.Priority != nil &&
		*got.Hooknum == *want.Hooknum && *got.Priority == *want.Priority && got.Type == want.Type
}

func (n *NFTables) chain(name string) *nftables.Chain {
	hook := nftables.ChainHookInput
	if name == HookForward {
		hook = nftables.ChainHookForward
	}
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     name,
		Table:    n.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  hook,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(n.cfg.Priority)),
		Policy:   &accept,
	}
}

// dropRule is `ip saddr @set counter drop` (or its ip6 twin): match the
// family, load the source address, look it up, count and drop. With a mask
// it is `ip saddr & mask @set counter drop`: the address is masked to its
// network before the lookup.
func dropRule(t *nftables.Table, c *nftables.Chain, s *nftables.Set, proto byte, off, length uint32, mask []byte) *nftables.Rule {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: length},
	}
	if mask != nil {
		exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: length, Mask: mask, Xor: make([]byte, length)})
	}
	exprs = append(exprs,
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	return &nftables.Rule{Table: t, Chain: c, Exprs: exprs}
}

// Ban drops key for timeout (at least a millisecond, the kernel's unit).
// An IPv4-mapped IPv6 key is treated as IPv4; an IPv4 key must be exactly
// NFTablesConfig.IPv4Prefix long and is stored as its network address.
// On the fast path (the record knows nothing active that overlaps key) it
// is one batch and one flush, without reading the set. If key (or, for
// IPv6, a prefix containing it) is already banned, the ban ends with the
// longer of the remaining and the new timeout, never earlier: the set is
// read, and an extension is a delete and an add in one batch. An IPv6 key
// around active bans replaces them in one batch, keeping the longest
// remaining time; an IPv6 range that overlaps key without nesting
// (someone else's) is an error wrapping syscall.EEXIST.
func (n *NFTables) Ban(key netip.Prefix, timeout time.Duration) error {
	key, err := normalizeKey(key)
	if err != nil {
		return err
	}
	is4 := key.Addr().Is4()
	if is4 && key.Bits() != n.cfg.IPv4Prefix {
		return fmt.Errorf("nftables: ban %s: IPv4 bans here are /%d (NFTablesConfig.IPv4Prefix, bans.ipv4_prefix), not /%d", key, n.cfg.IPv4Prefix, key.Bits())
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("nftables: ban %s: timeout %v below 1ms", key, timeout)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	if !n.rec.synced {
		if err := n.syncLocked(); err != nil {
			return err
		}
	}
	now := time.Now()
	if !is4 {
		// A provisional kernel ban of the key's prefix gives way to the
		// daemon's decision, which may be shorter, or narrower (a single
		// address where the /64 holds a host we never ban).
		if err := n.dropStrike6(key); err != nil {
			return err
		}
	}
	if !n.rec.overlaps(key, now) {
		s := n.setFor(key)
		var err error
		if is4 {
			// The key may hold a kernel ban (first strike's, without our
			// comment), which a plain add would keep as it is, comment
			// and all, only changing its timeout: add (a no-op if
			// present), delete and add again, in one batch, so the
			// element is ours whatever was there.
			k := key.Addr().AsSlice()
			err = n.conn.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: timeout}})
			if err == nil {
				err = n.conn.SetDeleteElements(s, []nftables.SetElement{{Key: k}})
			}
			if err == nil {
				err = n.conn.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: timeout, Comment: BanComment}})
			}
		} else {
			err = n.conn.SetAddElements(s, rangeElements(key.Addr(), lastAddr(key), timeout))
		}
		if err == nil {
			err = n.conn.Flush()
		}
		if err == nil {
			n.rec.put(key, now, timeout)
			return nil
		}
		if errnoOf(err) != unix.EEXIST {
			n.redial(err)
			return kernelError(fmt.Sprintf("add %s to %s", key, s.Name), err)
		}
		// Someone else's element overlaps: read the set and resolve.
	}
	slow := n.banSlow
	if is4 {
		slow = n.ban4Slow
	}
	err = slow(key, timeout)
	if errnoOf(err) == unix.ENOENT {
		// An element we meant to replace expired between read and write,
		// which aborted the whole batch: read again.
		err = slow(key, timeout)
	}
	return err
}

// ban4Slow reads blocked4 and bans key without shortening its ban.
func (n *NFTables) ban4Slow(key netip.Prefix, timeout time.Duration) error {
	now := time.Now()
	els, err := n.elements(n.set4)
	if err != nil {
		return err
	}
	k := key.Addr().AsSlice()
	for _, e := range els {
		if !active(e) || !bytes.Equal(e.Key, k) {
			continue
		}
		kernel := e.Comment != BanComment
		if e.Timeout == 0 || (e.Expires >= timeout && !kernel) {
			n.rec.put(key, now, left(e.Timeout, e.Expires))
			return nil
		}
		// A kernel ban is provisional: the daemon's decision replaces it,
		// shorter or not. Our own ban is never shortened. Re-adding alone
		// would do on this kernel for the timeout; older ones keep the old
		// timeout, and none changes the comment, unless the element is
		// deleted first.
		if !kernel {
			timeout = max(timeout, e.Expires)
		}
		if err := n.conn.SetDeleteElements(n.set4, []nftables.SetElement{{Key: k}}); err != nil {
			return fmt.Errorf("nftables: extend %s in %s: %w", key, Set4, err)
		}
		break
	}
	if err := n.conn.SetAddElements(n.set4, []nftables.SetElement{{Key: k, Timeout: timeout, Comment: BanComment}}); err != nil {
		return fmt.Errorf("nftables: add %s to %s: %w", key, Set4, err)
	}
	if err := n.conn.Flush(); err != nil {
		n.redial(err)
		return kernelError(fmt.Sprintf("add %s to %s", key, Set4), err)
	}
	n.rec.put(key, now, timeout)
	return nil
}

// left is how long an element stays: its time left, or farFuture without
// a timeout.
func left(timeout, expires time.Duration) time.Duration {
	if timeout == 0 {
		return farFuture
	}
	return expires
}

// banSlow reads blocked6 and bans key without shortening any active ban.
func (n *NFTables) banSlow(key netip.Prefix, timeout time.Duration) error {
	s := n.setFor(key)
	now := time.Now()
	spans, err := n.spans(s)
	if err != nil {
		return err
	}
	first, last := key.Addr(), lastAddr(key)
	var inside []span
	for _, sp := range spans {
		if !sp.overlaps(first, last) {
			continue
		}
		if sp.contains(first, last) {
			// key is already banned: extend the covering range if needed.
			n.rec.putSpan(sp, now)
			if sp.permanent() || sp.expires >= timeout {
				return nil
			}
			n.deleteSpan(s, sp)
			if err := n.conn.SetAddElements(s, rangeElements(sp.first, sp.last, timeout)); err != nil {
				return fmt.Errorf("nftables: extend %s in %s: %w", sp, s.Name, err)
			}
			if err := n.conn.Flush(); err != nil {
				n.redial(err)
				return kernelError(fmt.Sprintf("extend %s in %s", sp, s.Name), err)
			}
			n.rec.putSpan(span{first: sp.first, last: sp.last, timeout: timeout, expires: timeout}, now)
			return nil
		}
		if !sp.within(first, last) {
			return fmt.Errorf("nftables: ban %s: overlaps range %s in %s that is not a prefix of it: %w", key, sp, s.Name, syscall.EEXIST)
		}
		if sp.permanent() {
			return fmt.Errorf("nftables: ban %s: contains %s in %s, which has no timeout: %w", key, sp, s.Name, syscall.EEXIST)
		}
		inside = append(inside, sp)
	}
	// key covers zero or more active ranges: replace them with key, keeping
	// the longest remaining time so no address is released early.
	t := timeout
	for _, sp := range inside {
		n.deleteSpan(s, sp)
		t = max(t, sp.expires)
	}
	if err := n.conn.SetAddElements(s, rangeElements(first, last, t)); err != nil {
		return fmt.Errorf("nftables: add %s to %s: %w", key, s.Name, err)
	}
	if err := n.conn.Flush(); err != nil {
		n.redial(err)
		return kernelError(fmt.Sprintf("add %s to %s (replacing %d)", key, s.Name, len(inside)), err)
	}
	for _, sp := range inside {
		n.rec.delSpan(sp)
	}
	n.rec.put(key, now, t)
	return nil
}

// deleteSpan queues the deletion of both elements of sp, as the kernel
// stored them.
func (n *NFTables) deleteSpan(s *nftables.Set, sp span) {
	els := []nftables.SetElement{{Key: sp.first.AsSlice()}}
	if end := sp.last.Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	// Only a marshalling error is possible, which these keys cannot cause.
	_ = n.conn.SetDeleteElements(s, els)
}

// Unblock removes every active ban that overlaps key: the ban equal to key,
// a ban containing it (a single address inside a banned /64, or inside a
// banned IPv4 network when IPv4Prefix is below 32, lifts that ban) and bans
// inside it. It returns the removed prefixes, or an error wrapping
// ErrNotBanned if nothing matched.
func (n *NFTables) Unblock(key netip.Prefix) ([]netip.Prefix, error) {
	key, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errClosed
	}
	removed, err := n.unblockOnce(key)
	if errnoOf(err) == unix.ENOENT {
		// A ban expired between read and delete, aborting the batch.
		removed, err = n.unblockOnce(key)
	}
	return removed, err
}

func (n *NFTables) unblockOnce(key netip.Prefix) ([]netip.Prefix, error) {
	s := n.setFor(key)
	var removed []netip.Prefix
	if key.Addr().Is4() {
		els, err := n.elements(s)
		if err != nil {
			return nil, err
		}
		var del []nftables.SetElement
		for _, e := range els {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok || !active(e) || !n.key4(a).Overlaps(key) {
				continue
			}
			del = append(del, nftables.SetElement{Key: e.Key})
			removed = append(removed, n.key4(a))
		}
		if len(del) > 0 {
			// Only a marshalling error is possible, which these keys
			// cannot cause.
			_ = n.conn.SetDeleteElements(s, del)
		}
		slices.SortFunc(removed, comparePrefix)
		removed = slices.Compact(removed)
	} else {
		spans, err := n.spans(s)
		if err != nil {
			return nil, err
		}
		first, last := key.Addr(), lastAddr(key)
		for _, sp := range spans {
			if sp.overlaps(first, last) {
				n.deleteSpan(s, sp)
				removed = append(removed, rangePrefixes(sp.first, sp.last)...)
			}
		}
		strikes, err := n.strikes6()
		if err != nil {
			return nil, err
		}
		var del []nftables.SetElement
		for _, b := range strikes {
			if b.Key.Overlaps(key) {
				del = append(del, nftables.SetElement{Key: b.Key.Addr().AsSlice()})
				removed = append(removed, b.Key)
			}
		}
		if len(del) > 0 {
			_ = n.conn.SetDeleteElements(n.strk6, del)
		}
		slices.SortFunc(removed, comparePrefix)
		removed = slices.Compact(removed)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("nftables: unblock %s: %w", key, ErrNotBanned)
	}
	if err := n.conn.Flush(); err != nil {
		n.redial(err)
		return nil, kernelError(fmt.Sprintf("unblock %s from %s", key, s.Name), err)
	}
	for _, p := range removed {
		n.rec.del(p)
	}
	return removed, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// List returns the active bans, IPv4 first, each family in address order.
// Expired leftovers and interval-end elements are skipped. An IPv6 range
// that is not a prefix (someone else's) is listed as the prefixes that
// cover it. List also refreshes the record of what is banned from the
// kernel.
func (n *NFTables) List() ([]BanEntry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errClosed
	}
	return n.loadLocked()
}

// Counters returns the drop rules' packet and byte counters summed over the
// managed chains; zero without ManageChain.
func (n *NFTables) Counters() (Counters, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var c Counters
	if n.closed {
		return c, errClosed
	}
	if !n.cfg.ManageChain {
		return c, nil
	}
	for _, h := range n.cfg.Hooks {
		rules, err := n.conn.GetRules(n.table, &nftables.Chain{Name: h, Table: n.table})
		if err != nil {
			n.redial(err)
			return Counters{}, kernelError("read rules of chain "+h, err)
		}
		for _, r := range rules {
			set, cnt := ruleParts(r)
			if cnt == nil {
				continue
			}
			switch set {
			case Set4:
				c.Packets4 += cnt.Packets
				c.Bytes4 += cnt.Bytes
			case Set6, SetStrike6:
				c.Packets6 += cnt.Packets
				c.Bytes6 += cnt.Bytes
			}
		}
	}
	return c, nil
}

func ruleParts(r *nftables.Rule) (set string, cnt *expr.Counter) {
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Lookup:
			set = e.SetName
		case *expr.Counter:
			cnt = e
		}
	}
	return set, cnt
}

// Present reports whether the table, both sets with the right type and
// flags and, with ManageChain, each configured chain with its two drop
// rules (the IPv4 one masking to IPv4Prefix) exist; missing names what does
// not ("table inet sentry", "set blocked4", "chain input", "rule input
// @blocked6"). An error means the kernel could not be asked.
func (n *NFTables) Present() (ok bool, missing []string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false, nil, errClosed
	}
	if _, err := n.conn.ListTableOfFamily(n.cfg.Table, nftables.TableFamilyINet); err != nil {
		if errnoOf(err) == unix.ENOENT {
			return false, []string{"table inet " + n.cfg.Table}, nil
		}
		n.redial(err)
		return false, nil, kernelError("look up table inet "+n.cfg.Table, err)
	}
	sets, err := n.conn.GetSets(n.table)
	if err != nil {
		n.redial(err)
		return false, nil, kernelError("list sets", err)
	}
	for _, want := range []*nftables.Set{n.set4, n.set6, n.strk6} {
		i := slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == want.Name })
		if i < 0 || setShape(sets[i], want.KeyType, want.Interval, want.Dynamic) != "" {
			missing = append(missing, "set "+want.Name)
		}
	}
	if n.cfg.ManageChain {
		chains, err := n.ourChains()
		if err != nil {
			return false, nil, err
		}
		for _, h := range n.cfg.Hooks {
			c := findChain(chains, h)
			if c == nil || !sameBaseChain(c, n.chain(h)) {
				missing = append(missing, "chain "+h)
				continue
			}
			rules, err := n.conn.GetRules(n.table, c)
			if err != nil {
				n.redial(err)
				return false, nil, kernelError("read rules of chain "+h, err)
			}
			for _, name := range []string{Set4, Set6, SetStrike6} {
				var mask []byte
				switch name {
				case Set4:
					mask = n.mask4
				case SetStrike6:
					mask = n.mask6
				}
				found := slices.ContainsFunc(rules, func(r *nftables.Rule) bool {
					set, cnt := ruleParts(r)
					return set == name && cnt != nil && hasDrop(r) && bytes.Equal(ruleMask(r), mask)
				})
				if !found {
					missing = append(missing, "rule "+h+" @"+name)
				}
			}
		}
	}
	return len(missing) == 0, missing, nil
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

func (n *NFTables) setFor(key netip.Prefix) *nftables.Set {
	if key.Addr().Is4() {
		return n.set4
	}
	return n.set6
}

// syncLocked loads both sets into the record, so that bans made before this
// process started are not shortened by the fast path.
func (n *NFTables) syncLocked() error {
	_, err := n.loadLocked()
	return err
}

// loadLocked reads both sets, replaces the record with what they hold and
// returns the active bans as List does.
func (n *NFTables) loadLocked() ([]BanEntry, error) {
	now := time.Now()
	n.rec.reset()
	els, err := n.elements(n.set4)
	if err != nil {
		return nil, err
	}
	var out []BanEntry
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || !active(e) {
			continue
		}
		b := BanEntry{Key: n.key4(a), Timeout: e.Timeout, Expires: e.Expires, Origin: OriginDaemon}
		if e.Comment != BanComment {
			b.Origin = OriginKernel
		}
		if b.Timeout == 0 {
			b.Expires = 0
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	spans, err := n.spans(n.set6)
	if err != nil {
		return nil, err
	}
	n6 := len(out)
	for _, sp := range spans {
		for _, p := range rangePrefixes(sp.first, sp.last) {
			out = append(out, BanEntry{Key: p, Timeout: sp.timeout, Expires: sp.expires, Origin: OriginDaemon})
		}
	}
	for _, b := range out {
		n.rec.put(b.Key, now, left(b.Timeout, b.Expires))
	}
	// First strike's IPv6 bans, unless a daemon ban covers them. They are
	// not recorded: the record is of blocked6, and a ban of the same key
	// goes to blocked6 all the same.
	strikes, err := n.strikes6()
	if err != nil {
		return nil, err
	}
	for _, b := range strikes {
		covered := false
		for _, sp := range spans {
			if sp.contains(b.Key.Addr(), lastAddr(b.Key)) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out[n6:], func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	n.rec.synced = true
	return out, nil
}

// strikes6 reads strike6: first strike's active IPv6 bans, as prefixes of
// IPv6Prefix bits. A missing set (an earlier version's table) is empty.
func (n *NFTables) strikes6() ([]BanEntry, error) {
	els, err := n.conn.GetSetElements(n.strk6)
	if errnoOf(err) == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		n.redial(err)
		return nil, kernelError("read set "+SetStrike6, err)
	}
	var out []BanEntry
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || !active(e) || !a.Is6() {
			continue
		}
		out = append(out, BanEntry{Key: netip.PrefixFrom(a, n.cfg.IPv6Prefix).Masked(), Timeout: e.Timeout, Expires: e.Expires, Origin: OriginKernel})
	}
	slices.SortFunc(out, func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	return out, nil
}

// elements reads s.
func (n *NFTables) elements(s *nftables.Set) ([]nftables.SetElement, error) {
	els, err := n.conn.GetSetElements(s)
	if err != nil {
		n.redial(err)
		return nil, kernelError("read set "+s.Name, err)
	}
	return els, nil
}

// spans reads the interval set s and pairs its elements into active
// ranges.
func (n *NFTables) spans(s *nftables.Set) ([]span, error) {
	els, err := n.elements(s)
	if err != nil {
		return nil, err
	}
	return spansFromElements(els), nil
}

// lastAddr returns the last address of p (p must be masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// rangeElements is the interval [first, last]: a start element carrying the
// timeout and an end element (the first address after last) without one;
// no end element when last is the end of the address space.
func rangeElements(first, last netip.Addr, timeout time.Duration) []nftables.SetElement {
	start := nftables.SetElement{Key: first.AsSlice(), Timeout: timeout, Comment: BanComment}
	end := last.Next()
	if !end.IsValid() {
		return []nftables.SetElement{start}
	}
	return []nftables.SetElement{start, {Key: end.AsSlice(), IntervalEnd: true}}
}

// rangePrefixes splits [first, last] into the fewest prefixes covering it.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for first.IsValid() && first.Compare(last) <= 0 {
		p := netip.PrefixFrom(first, first.BitLen())
		for bits := 0; bits <= first.BitLen(); bits++ {
			c := netip.PrefixFrom(first, bits)
			if c.Masked().Addr() == first && lastAddr(c).Compare(last) <= 0 {
				p = c
				break
			}
		}
		out = append(out, p)
		first = lastAddr(p).Next()
	}
	return out
}

// span is one active range of an interval set.
type span struct {
	first, last netip.Addr
	timeout     time.Duration // zero: the element has no timeout
	expires     time.Duration
}

func (s span) permanent() bool { return s.timeout == 0 }

func (s span) overlaps(first, last netip.Addr) bool {
	return s.first.Compare(last) <= 0 && first.Compare(s.last) <= 0
}

// contains reports whether s covers all of [first, last].
func (s span) contains(first, last netip.Addr) bool {
	return s.first.Compare(first) <= 0 && last.Compare(s.last) <= 0
}

// within reports whether s lies inside [first, last].
func (s span) within(first, last netip.Addr) bool {
	return first.Compare(s.first) <= 0 && s.last.Compare(last) <= 0
}

func (s span) String() string {
	if ps := rangePrefixes(s.first, s.last); len(ps) == 1 {
		return ps[0].String()
	}
	return s.first.String() + "-" + s.last.String()
}

// spansFromElements pairs each start element with the end element after it.
// End elements without a start (left behind by an expired start until the
// kernel's garbage collection runs) and expired starts are skipped; a start
// with no end runs to the end of the address space.
func spansFromElements(els []nftables.SetElement) []span {
	type el struct {
		a       netip.Addr
		end     bool
		timeout time.Duration
		expires time.Duration
	}
	list := make([]el, 0, len(els))
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		list = append(list, el{a: a, end: e.IntervalEnd, timeout: e.Timeout, expires: e.Expires})
	}
	// In address order; at one address the end of the range below comes
	// before the start of the range above.
	slices.SortFunc(list, func(x, y el) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	})
	var out []span
	var open *el
	emit := func(last netip.Addr) {
		if open.timeout != 0 && open.expires == 0 {
			return // expired, not yet collected
		}
		out = append(out, span{first: open.a, last: last, timeout: open.timeout, expires: open.expires})
	}
	for i := range list {
		e := &list[i]
		if e.end {
			if open != nil && e.a.Compare(open.a) > 0 {
				emit(e.a.Prev())
			}
			open = nil
			continue
		}
		open = e
	}
	if open != nil {
		emit(lastAddr(netip.PrefixFrom(open.a, 0).Masked()))
	}
	return out
}

// record remembers which prefixes this process knows to be banned and
// until when, to keep reads off the fast path. It is a hint: the kernel
// stays the truth, and anything the record misses is caught by EEXIST.
type record struct {
	synced bool
	until  map[netip.Prefix]time.Time
	// lens counts recorded prefixes per family (0 IPv4, 1 IPv6) and
	// length, so overlaps are looked up only at lengths in use.
	lens [2][129]int
	// sweepAt is the size at which expired entries are next swept.
	sweepAt int
}

func (r *record) init() {
	r.until = make(map[netip.Prefix]time.Time)
	r.sweepAt = 1024
}

func (r *record) reset() {
	r.init()
	r.lens = [2][129]int{}
	r.synced = false
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// put records p as banned from now for d.
func (r *record) put(p netip.Prefix, now time.Time, d time.Duration) {
	if _, ok := r.until[p]; !ok {
		r.lens[family(p.Addr())][p.Bits()]++
	}
	r.until[p] = now.Add(d)
	if len(r.until) >= r.sweepAt {
		// Sweep at now, not at the new entry's end: that would forget
		// every active ban ending sooner, and the fast path would then
		// re-add (and shorten) it.
		r.sweep(now)
	}
}

func (r *record) del(p netip.Prefix) {
	if _, ok := r.until[p]; ok {
		delete(r.until, p)
		r.lens[family(p.Addr())][p.Bits()]--
	}
}

// farFuture stands for an element without timeout.
const farFuture = 100 * 365 * 24 * time.Hour

func (r *record) putSpan(sp span, now time.Time) {
	d := sp.expires
	if sp.permanent() {
		d = farFuture
	}
	for _, p := range rangePrefixes(sp.first, sp.last) {
		r.put(p, now, d)
	}
}

func (r *record) delSpan(sp span) {
	for _, p := range rangePrefixes(sp.first, sp.last) {
		r.del(p)
	}
}

// sweep drops expired entries and sets the next sweep at twice the live
// size, so sweeping costs O(1) amortised per put.
func (r *record) sweep(now time.Time) {
	for p, u := range r.until {
		if !u.After(now) {
			r.del(p)
		}
	}
	r.sweepAt = max(1024, 2*len(r.until))
}

// overlaps reports whether an unexpired recorded prefix equals, contains or
// lies inside key.
func (r *record) overlaps(key netip.Prefix, now time.Time) bool {
	f := family(key.Addr())
	for l := 0; l <= key.Bits(); l++ {
		if r.lens[f][l] == 0 {
			continue
		}
		p := netip.PrefixFrom(key.Addr(), l).Masked()
		if u, ok := r.until[p]; ok && u.After(now) {
			return true
		}
	}
	for l := key.Bits() + 1; l <= key.Addr().BitLen(); l++ {
		if r.lens[f][l] == 0 {
			continue
		}
		// Rare (a shorter key than usual): scan.
		for p, u := range r.until {
			if p.Bits() > key.Bits() && family(p.Addr()) == f && key.Contains(p.Addr()) && u.After(now) {
				return true
			}
		}
		return false
	}
	return false
}

// kernelError wraps err from google/nftables with the operation. That
// library formats some errors with %v, losing the errno; it is recovered
// from the text so errors.Is(err, syscall.EEXIST) and errors.Is(err,
// os.ErrPermission) keep working. A permission error names CAP_NET_ADMIN.
func kernelError(op string, err error) error {
	e := &Error{Op: op, Err: err, Errno: errnoOf(err)}
	return e
}

// Error is an nftables failure: the operation, the underlying error and,
// when known, the kernel's errno (reachable with errors.Is).
type Error struct {
	Op    string
	Errno syscall.Errno
	Err   error
}

func (e *Error) Error() string {
	s := "nftables: " + e.Op + ": " + e.Err.Error()
	if e.Errno == unix.EPERM || e.Errno == unix.EACCES {
		s += " (needs CAP_NET_ADMIN in the target network namespace; run as root or grant the capability)"
	}
	return s
}

// Unwrap returns the underlying error and the errno, if known.
func (e *Error) Unwrap() []error {
	if e.Errno != 0 {
		return []error{e.Err, e.Errno}
	}
	return []error{e.Err}
}

// knownErrnos are the errnos recognised in error text.
var knownErrnos = [...]syscall.Errno{
	unix.EPERM, unix.EACCES, unix.ENOENT, unix.EEXIST, unix.EBUSY, unix.EINVAL,
	unix.ENOBUFS, unix.ENOSPC, unix.ENOMEM, unix.EOPNOTSUPP, unix.ERANGE, unix.E2BIG,
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	msg := err.Error()
	for _, e := range knownErrnos {
		if strings.HasSuffix(msg, e.Error()) {
			return e
		}
	}
	return 0
}

// dropStrike6 removes first strike's provisional IPv6 ban of key's prefix,
// if there is one: an add (a no-op when present) and a delete in one batch
// succeed whether or not the element existed.
func (n *NFTables) dropStrike6(key netip.Prefix) error {
	if n.strk6 == nil {
		return nil
	}
	p, err := key.Addr().Prefix(n.cfg.IPv6Prefix)
	if err != nil {
		return fmt.Errorf("nftables: ban %s: %w", key, err)
	}
	k := p.Addr().AsSlice()
	if err := n.conn.SetAddElements(n.strk6, []nftables.SetElement{{Key: k, Timeout: time.Second}}); err != nil {
		return fmt.Errorf("nftables: replace %s in %s: %w", p, SetStrike6, err)
	}
	if err := n.conn.SetDeleteElements(n.strk6, []nftables.SetElement{{Key: k}}); err != nil {
		return fmt.Errorf("nftables: replace %s in %s: %w", p, SetStrike6, err)
	}
	if err := n.conn.Flush(); err != nil {
		n.redial(err)
		return kernelError(fmt.Sprintf("replace %s in %s", p, SetStrike6), err)
	}
	return nil
}
