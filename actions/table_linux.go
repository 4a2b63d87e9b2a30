//go:build linux

package actions

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Table owns one inet table and the one netlink connection it is changed
// through. Open it with OpenTable, make the kernel match a TableSpec with
// Apply (at start, after a reload, after tampering: the same call), then
// Ban and Unblock. All methods are safe for concurrent use; they are
// serialised on the connection, whose batch only one of them builds at a
// time.
type Table struct {
	mu     sync.Mutex     // guards everything below and the connection's batch
	conn   *nftables.Conn // nil after a redial failed: dialled again on next use
	netns  int
	closed bool

	spec TableSpec // normalised; the last applied, or the opened one
	// applied is the spec of this process's last successful Apply, nil
	// before the first: first strike's counting sets are kept across
	// Applies that leave first strike unchanged, and made anew otherwise.
	applied *TableSpec

	// Descriptors for element operations, from spec.
	table             *nftables.Table
	set4, set6, strk6 *nftables.Set
	rec               record

	// flushes counts the batches committed, for tests.
	flushes int
	// beforeFlush, set by tests, runs when Apply has queued its whole
	// batch, just before it is sent; an error makes Apply fail there, as a
	// failing build step would.
	beforeFlush func(*nftables.Conn) error

	// view reads the table over a connection and a lock of its own, for
	// Missing and Snapshot: a dump of a set of a million elements, or of
	// every chain's rules, must not hold up a Ban. Its spec follows this
	// one's. nil in a view.
	view *Table
}

var errClosed = fmt.Errorf("nftables: %w", net.ErrClosed)

// OpenTable validates spec, fills in its defaults and opens a lasting
// netlink connection, in the network namespace of the open file descriptor
// netnsFd (of /run/netns/NAME, say) when it is not 0. It changes nothing in
// the kernel: Ban, Unblock, List and Forget work on a table an earlier
// Apply (of this process or another) made; Apply makes it.
func OpenTable(spec TableSpec, netnsFd int) (*Table, error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	if netnsFd < 0 {
		return nil, fmt.Errorf("nftables: invalid network namespace fd %d", netnsFd)
	}
	t := &Table{netns: netnsFd, view: &Table{netns: netnsFd}}
	t.setSpec(spec)
	c, err := dialLasting(netnsFd)
	if err != nil {
		return nil, kernelError("open netlink connection", err)
	}
	t.conn = c
	return t, nil
}

// followSpec gives the view the spec just applied or changed. Called with
// t.mu held; the view's lock is always taken after the table's.
func (t *Table) followSpec() {
	if t.view == nil {
		return
	}
	t.view.mu.Lock()
	t.view.setSpec(t.spec.clone())
	t.view.mu.Unlock()
}

// Snapshot returns the active bans as List does, read over the view's
// connection: it never waits for, nor holds up, a Ban, and it leaves Ban's
// record of what is banned as it is. The daemon compares the sets with the
// bans it holds this way.
func (t *Table) Snapshot() ([]BanEntry, error) {
	if t.view == nil {
		return t.List()
	}
	return t.view.List()
}

func (t *Table) setSpec(spec TableSpec) {
	t.spec = spec
	defer t.followSpec()
	o := newObjects(&spec)
	t.table, t.set4, t.set6, t.strk6 = o.table, o.set4, o.set6, o.strk6
	t.rec.reset()
}

func dialLasting(netns int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

// Spec returns the spec of the last successful Apply (the opened one
// before), with its defaults filled in and Listen as SetListening last
// set it.
func (t *Table) Spec() TableSpec {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spec.clone()
}

// Close closes the netlink connection. Everything in the kernel stays:
// bans until they expire, chains and sets until the next Apply or a
// firewall reload. Close is idempotent.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.view != nil {
		t.view.Close()
	}
	if t.conn == nil {
		return nil
	}
	err := t.conn.CloseLasting()
	t.conn = nil
	if err != nil {
		return fmt.Errorf("nftables: close: %w", err)
	}
	return nil
}

// ready returns the connection, dialling one if a discard could not.
func (t *Table) ready() (*nftables.Conn, error) {
	if t.closed {
		return nil, errClosed
	}
	if t.conn == nil {
		c, err := dialLasting(t.netns)
		if err != nil {
			return nil, kernelError("open netlink connection", err)
		}
		t.conn = c
	}
	return t.conn, nil
}

// discard drops the connection and dials a new one. google/nftables keeps
// a batch's queued messages until the next Flush, and the first error
// marshalling one of them for good (every later Flush returns it): a
// batch that failed half-built must not be sent, or block, by the next
// unrelated one. It also drops a reply left unread after an error we
// cannot explain (no errno), so it cannot answer the next request.
func (t *Table) discard() {
	if t.conn != nil {
		_ = t.conn.CloseLasting()
		t.conn = nil
	}
	if c, err := dialLasting(t.netns); err == nil {
		t.conn = c
	}
}

// commit queues one batch with build and sends it with one flush. If build
// fails the batch is discarded with the connection and build's error
// returned as is; a failed flush is an *Error for op(), which only a
// failure formats (Ban's fast path allocates nothing for it).
func (t *Table) commit(op func() string, build func(c *nftables.Conn) error) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	if err := build(c); err != nil {
		t.discard()
		return err
	}
	if err := c.Flush(); err != nil {
		if errnoOf(err) == 0 {
			t.discard()
		}
		return kernelError(op(), err)
	}
	t.flushes++
	return nil
}

// readError wraps a failed read, redialling after an error without errno.
func (t *Table) readError(op string, err error) error {
	if errnoOf(err) == 0 {
		t.discard()
	}
	return kernelError(op, err)
}

// kernelState is what the table holds, as far as Apply and Missing look.
type kernelState struct {
	exists bool
	sets   []*nftables.Set
	chains []*nftables.Chain
}

func (st *kernelState) set(name string) *nftables.Set {
	i := slices.IndexFunc(st.sets, func(s *nftables.Set) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return st.sets[i]
}

func (st *kernelState) chain(name string) *nftables.Chain {
	i := slices.IndexFunc(st.chains, func(c *nftables.Chain) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return st.chains[i]
}

// readSets lists the table's sets; exists is false without the table.
func (t *Table) readSets(c *nftables.Conn) (sets []*nftables.Set, exists bool, err error) {
	sets, err = c.GetSets(t.table)
	if errnoOf(err) == unix.ENOENT {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, t.readError("list sets of table inet "+t.spec.Table, err)
	}
	for _, s := range sets {
		s.Table = t.table
	}
	return sets, true, nil
}

// readState lists the table's sets and chains; a missing table is an
// empty state.
func (t *Table) readState(c *nftables.Conn) (kernelState, error) {
	var st kernelState
	var err error
	st.sets, st.exists, err = t.readSets(c)
	if err != nil || !st.exists {
		return st, err
	}
	// google/nftables has no per-table chain dump: filter the family's.
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return st, t.readError("list chains", err)
	}
	for _, ch := range all {
		if ch.Table != nil && ch.Table.Name == t.spec.Table {
			ch.Table = t.table
			st.chains = append(st.chains, ch)
		}
	}
	return st, nil
}

// Apply makes the table match spec, in one batch sent with one flush: the
// table, the ban sets blocked4, blocked6 and strike6 (their elements
// kept), with ManageChain the ban chains, and first strike, advanced mode
// and the listen sets as spec says, creating what is missing, rewriting
// every chain of ours (so a second Apply leaves one copy of each rule) and
// deleting what spec no longer has. Bans stay. The allow sets are filled,
// and the listen sets hold spec.Listen, in the batch that writes the rules
// reading them, so there is never a moment with strike rules and an empty
// allow set. First strike's counting sets are kept while its
// configuration and the key lengths stay as this process last applied
// them, and made anew (the counting starts over) otherwise. Apply fails,
// changing nothing, if spec is invalid or a set of ours whose elements it
// keeps exists with another type or flags; a batch that fails on the way
// is never sent.
//
// A blocked4 left by an earlier version as an interval set is replaced by
// the plain set in the same batch, carrying over each active ban that is
// one prefix at least IPv4Prefix long (as its network address, with its
// remaining time); a plain blocked4 without flags dynamic likewise. If a
// rule outside the ban chains uses the old set the kernel refuses (EBUSY)
// and the error says what to run. After IPv4Prefix has been shortened (say
// 32 to 24), elements that are not network addresses of the new length are
// merged into the one that is, keeping the longest remaining time.
//
// The table's name is fixed by OpenTable: a spec naming another is an
// error. Without ManageChain Apply touches no chain named after a hook.
func (t *Table) Apply(spec TableSpec) error {
	spec, err := spec.normalize()
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	if spec.Table != t.spec.Table {
		return fmt.Errorf("nftables: apply: this Table owns table inet %s, not %s (open another for it)", t.spec.Table, spec.Table)
	}
	err = t.applyOnce(&spec)
	if errnoOf(err) == unix.ENOENT {
		// An element being moved or deleted went away between read
		// and write, which aborted the whole batch: read again.
		err = t.applyOnce(&spec)
	}
	if err != nil {
		return err
	}
	t.setSpec(spec)
	applied := spec.clone()
	t.applied = &applied
	return nil
}

// listenWrite is how Apply brings one listen set to spec.Listen.
type listenWrite struct {
	create   bool // missing: made with all the ports
	add, del []uint16
}

func (t *Table) applyOnce(spec *TableSpec) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	st, err := t.readState(c)
	if err != nil {
		return err
	}
	o := newObjects(spec)
	// Sets whose elements stay must have the right shape: refuse now,
	// before anything is queued.
	mig, err := t.plan4(c, spec, &st, o.set4)
	if err != nil {
		return err
	}
	for _, want := range []*nftables.Set{o.set6, o.strk6, o.wide4} {
		if got := st.set(want.Name); got != nil {
			if err := checkSet(spec.Table, got, want); err != nil {
				return err
			}
		}
	}
	var listen [2]listenWrite
	if o.listen.tcp != nil {
		for i, lw := range []struct {
			s    *nftables.Set
			want []uint16
		}{{o.listen.tcp, spec.Listen.TCP}, {o.listen.udp, spec.Listen.UDP}} {
			got := st.set(lw.s.Name)
			if got == nil {
				listen[i] = listenWrite{create: true, add: lw.want}
				continue
			}
			if err := checkSet(spec.Table, got, lw.s); err != nil {
				return err
			}
			have, err := t.ports(c, lw.s)
			if err != nil {
				return err
			}
			listen[i].add, listen[i].del = portDiff(have, lw.want)
		}
	}
	keep := t.keptSets(spec, &st, o)

	err = t.commit(func() string { return "apply table inet " + spec.Table }, func(c *nftables.Conn) error {
		if err := queueApply(c, spec, o, &st, mig, listen, keep); err != nil {
			return err
		}
		if t.beforeFlush != nil {
			return t.beforeFlush(c)
		}
		return nil
	})
	var ke *Error
	if mig.replace && errnoOf(err) == unix.EBUSY && errors.As(err, &ke) {
		return kernelError(fmt.Sprintf("replace set %s of table inet %s (from an earlier version) with a plain set (flags dynamic,timeout): a rule outside the managed chains still uses it; delete that rule, or run `nft delete set inet %s %s` after it (its bans are lost), and start again",
			Set4, spec.Table, spec.Table, Set4), ke.Err)
	}
	return err
}

// keptSets names the sets of first strike and advanced mode that stay
// rather than being made anew. The allow and watch sets stay, refilled in
// the batch, when present with their shape. First strike's counting sets
// stay as they are when they are those of a configuration this process
// applied last, with the same key lengths, present with the shape they
// were made with: the counting goes on across an Apply that changes
// something else.
func (t *Table) keptSets(spec *TableSpec, st *kernelState, o *objects) map[string]bool {
	keep := map[string]bool{}
	refill := []*nftables.Set{o.allow4, o.allow6}
	if o.adv != nil {
		refill = append(refill, o.adv.watchTCP, o.adv.watchUDP)
	}
	for _, want := range refill {
		if got := st.set(want.Name); got != nil && setShape(got, want) == "" {
			keep[want.Name] = true
		}
	}
	a := t.applied
	if o.fs == nil || a == nil || a.FirstStrike == nil || a.IPv4Prefix != spec.IPv4Prefix || a.IPv6Prefix != spec.IPv6Prefix ||
		!reflect.DeepEqual(*a.FirstStrike, *spec.FirstStrike) {
		return keep
	}
	for _, want := range o.fs.dynSets() {
		if got := st.set(want.Name); got != nil && setShape(got, want) == "" && got.Size == want.Size {
			keep[want.Name] = true
		}
	}
	return keep
}

// fillSet queues s with els as its only elements: made with them, or, when
// keep says it stays, flushed and refilled.
func fillSet(c *nftables.Conn, s *nftables.Set, els []nftables.SetElement, keep map[string]bool) error {
	if !keep[s.Name] {
		return c.AddSet(s, els)
	}
	c.FlushSet(s)
	if len(els) == 0 {
		return nil
	}
	return c.SetAddElements(s, els)
}

// queueApply queues Apply's batch.
func queueApply(c *nftables.Conn, spec *TableSpec, o *objects, st *kernelState, mig plan4, listen [2]listenWrite, keep map[string]bool) error {
	c.AddTable(o.table)
	// Flush every chain of ours first, kept or not: their rules refer to
	// the sets and chains replaced or deleted below.
	for _, ch := range st.chains {
		if ownChain(spec, ch.Name) {
			c.FlushChain(ch)
		}
	}
	for _, ch := range st.chains {
		if ownChain(spec, ch.Name) && !o.wantChain(ch) {
			c.DelChain(ch)
		}
	}
	if mig.replace {
		c.DelSet(&nftables.Set{Table: o.table, Name: Set4})
	}
	for _, s := range st.sets {
		switch {
		case keep[s.Name]:
		case s.Name == SetAllow4 || s.Name == SetAllow6 || s.Name == SetWatchTCP || s.Name == SetWatchUDP,
			countingSet.MatchString(s.Name):
			// Not in spec, or made anew below.
			c.DelSet(s)
		case (s.Name == SetListenTCP || s.Name == SetListenUDP) && o.listen.tcp == nil:
			c.DelSet(s)
		}
	}

	if err := c.AddSet(o.set4, nil); err != nil {
		return fmt.Errorf("nftables: add set %s: %w", Set4, err)
	}
	if len(mig.del) > 0 {
		if err := c.SetDeleteElements(o.set4, mig.del); err != nil {
			return fmt.Errorf("nftables: realign %s: %w", Set4, err)
		}
	}
	if len(mig.add) > 0 {
		if err := c.SetAddElements(o.set4, mig.add); err != nil {
			return fmt.Errorf("nftables: fill %s: %w", Set4, err)
		}
	}
	for _, s := range []*nftables.Set{o.set6, o.strk6, o.wide4} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: add set %s: %w", s.Name, err)
		}
	}
	if o.listen.tcp != nil {
		for i, s := range o.listen.all() {
			if err := queueListen(c, s, listen[i]); err != nil {
				return err
			}
		}
	}
	// The allow sets guard the drop rules too: always there.
	a4, a6 := mergePrefixes(spec.Allow)
	for _, sv := range []struct {
		s  *nftables.Set
		rs []addrRange
	}{{o.allow4, a4}, {o.allow6, a6}} {
		if err := fillSet(c, sv.s, addrRangeElements(sv.rs), keep); err != nil {
			return fmt.Errorf("nftables: fill set %s: %w", sv.s.Name, err)
		}
	}
	if o.fs != nil {
		for _, s := range o.fs.dynSets() {
			if keep[s.Name] {
				continue
			}
			if err := c.AddSet(s, nil); err != nil {
				return fmt.Errorf("first strike: add set %s: %w", s.Name, err)
			}
		}
	}
	if o.adv != nil {
		for i, s := range []*nftables.Set{o.adv.watchTCP, o.adv.watchUDP} {
			if err := fillSet(c, s, portRangeElements(o.adv.watch[i].Ranges()), keep); err != nil {
				return fmt.Errorf("advanced: fill set %s: %w", s.Name, err)
			}
		}
	}

	for _, ch := range o.banChains {
		c.AddChain(ch)
		for _, r := range o.dropRules(ch) {
			c.AddRule(r)
		}
	}
	if o.fs != nil {
		// The base chain last: every chain it reaches exists first.
		chains := o.fs.chains()
		for _, ch := range chains[1:] {
			c.AddChain(ch)
		}
		c.AddChain(chains[0])
		rules, err := o.fs.rules(o, c.AddSet)
		if err != nil {
			return err
		}
		for _, r := range rules {
			c.AddRule(r)
		}
	}
	if o.adv != nil {
		c.AddChain(o.adv.chain)
		for _, r := range o.adv.rules(o) {
			c.AddRule(r)
		}
	}
	return nil
}

// ownChain reports whether Apply rewrites or deletes the chain name: the
// ban chains only with ManageChain, first strike's and advanced mode's
// always.
func ownChain(spec *TableSpec, name string) bool {
	switch name {
	case HookInput, HookForward:
		return spec.ManageChain
	case AdvancedChain, FirstStrikeChain, StrikeChain:
		return true
	}
	return ruleChain.MatchString(name)
}

// checkSet returns an error wrapping EEXIST if got is not shaped like want.
func checkSet(table string, got, want *nftables.Set) error {
	shape := setShape(got, want)
	if shape == "" {
		return nil
	}
	return fmt.Errorf("nftables: set %s in table inet %s exists as %s, want type %s flags %s: run `nft delete set inet %s %s` (its elements are lost) or delete the table to recreate it: %w",
		got.Name, table, shape, want.KeyType.Name, setFlags(want), table, got.Name, syscall.EEXIST)
}
