//go:build linux

package actions

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Advanced is advanced mode: Portsentry's atcp/audp without a socket. A
// base chain in the daemon's table logs to NFLOG the new TCP connection
// attempts (and the FIN, NULL and XMAS probes conntrack marks invalid) and
// the new UDP datagrams that reach watched ports nothing listens on. It
// only logs: the user's firewall decides what happens to the packet.
//
// The ports something listens on are kept in two sets, shared with first
// strike, that the caller refreshes with SetListening (from
// hostinfo.Paths.Listening) every few seconds, so a service started on a watched port stops being reported
// within one refresh. Create it with OpenAdvanced, call SetListening and then
// Setup. All methods are safe for concurrent use.
type Advanced struct {
	cfg    AdvancedConfig
	watch  [2]*rules.PortSet // tcp, udp: watched ports minus excluded
	table  *nftables.Table
	sets   advSets
	prefix []byte

	mu sync.Mutex // guards everything below and the connection's batch
	lasting
	// batches counts the batches SetListening committed, for tests.
	batches int
}

type advSets struct {
	watchTCP, watchUDP, listenTCP, listenUDP *nftables.Set
}

func (s advSets) all() []*nftables.Set {
	return []*nftables.Set{s.watchTCP, s.watchUDP, s.listenTCP, s.listenUDP}
}

var errAdvancedClosed = fmt.Errorf("advanced: %w", net.ErrClosed)

// OpenAdvanced validates cfg, applies its defaults and opens a lasting
// netlink connection (in cfg.NetNSFd's namespace when set). It changes
// nothing in the kernel.
func OpenAdvanced(cfg AdvancedConfig) (*Advanced, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	a := &Advanced{cfg: cfg, prefix: []byte(cfg.Prefix)}
	a.watch[0] = watchSet(cfg.TCP, cfg.Exclude)
	a.watch[1] = watchSet(cfg.UDP, cfg.Exclude)
	a.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: cfg.Table}
	a.sets = advSets{
		watchTCP: &nftables.Set{Table: a.table, Name: SetWatchTCP, KeyType: nftables.TypeInetService, Interval: true},
		watchUDP: &nftables.Set{Table: a.table, Name: SetWatchUDP, KeyType: nftables.TypeInetService, Interval: true},
	}
	l := newListenSets(a.table)
	a.sets.listenTCP, a.sets.listenUDP = l.tcp, l.udp
	if err := a.open("advanced: ", cfg.NetNSFd); err != nil {
		return nil, err
	}
	return a, nil
}

// Close closes the netlink connection; the chain and sets stay in the
// kernel (Remove deletes them). Close is idempotent.
func (a *Advanced) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.shut("advanced")
}

// Setup makes the table, the four sets and the advanced chain exist as
// configured, in one batch: the watch sets are refilled from the
// configuration, the chain is flushed and rewritten, the listen sets keep
// their contents. It is idempotent: a second run leaves one copy of each
// rule. It fails, changing nothing, if a set of that name exists with
// another type or flags.
//
// The chain, `type filter hook input priority Priority; policy accept`:
//
//	iif "lo" return
//	meta pkttype != host return
//	tcp dport @listen_tcp return
//	tcp dport @watch_tcp tcp flags & (rst | ack) == 0 ct state invalid,new counter log prefix P group G snaplen 128
//	udp dport @listen_udp return
//	udp dport @watch_udp ct state new counter log prefix P group G snaplen 128
//
// Broadcast and multicast datagrams (NetBIOS, DHCP, RIP on a LAN) are not
// probes of this host. Segments with RST or ACK are not probes either but
// backscatter (a SYN-ACK or RST answering a SYN forged with this host's
// address): logging them would let anyone get a third party banned.
//
// Call SetListening before the first Setup: until the listen sets are
// filled, connections to services running on watched ports are logged as
// probes.
func (a *Advanced) Setup() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errAdvancedClosed
	}
	sets, err := a.conn.GetSets(a.table)
	if err != nil && errnoOf(err) != unix.ENOENT {
		a.redial(err)
		return advError("list sets of table inet "+a.cfg.Table, err)
	}
	for _, s := range sets {
		for _, want := range a.sets.all() {
			if s.Name == want.Name && (s.KeyType.Name != want.KeyType.Name || s.Interval != want.Interval || s.HasTimeout || s.IsMap || s.Concatenation) {
				return fmt.Errorf("advanced: set %s in table inet %s exists as type %s interval=%t timeout=%t, want type %s interval=%t: delete it to recreate it: %w",
					s.Name, a.cfg.Table, s.KeyType.Name, s.Interval, s.HasTimeout, want.KeyType.Name, want.Interval, syscall.EEXIST)
			}
		}
	}
	existing, err := a.chainLocked()
	if err != nil {
		return err
	}

	a.conn.AddTable(a.table)
	for _, s := range a.sets.all() {
		if err := a.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("advanced: add set %s: %w", s.Name, err)
		}
	}
	for i, s := range []*nftables.Set{a.sets.watchTCP, a.sets.watchUDP} {
		a.conn.FlushSet(s)
		if els := intervalElements(a.watch[i].Ranges()); len(els) > 0 {
			if err := a.conn.SetAddElements(s, els); err != nil {
				return fmt.Errorf("advanced: fill set %s: %w", s.Name, err)
			}
		}
	}
	chain := a.chain()
	if existing != nil && !advSameBaseChain(existing, chain) {
		// The kernel refuses to move a base chain to another priority in
		// place.
		a.conn.DelChain(existing)
	}
	a.conn.AddChain(chain)
	a.conn.FlushChain(chain)
	for _, r := range a.rules(chain) {
		a.conn.AddRule(r)
	}
	if err := a.conn.Flush(); err != nil {
		a.redial(err)
		return advError("set up chain "+AdvancedChain+" in table inet "+a.cfg.Table, err)
	}
	return nil
}

// chainLocked returns our chain as the kernel has it, or nil.
func (a *Advanced) chainLocked() (*nftables.Chain, error) {
	c, err := a.conn.ListChain(a.table, AdvancedChain)
	if err != nil {
		if errnoOf(err) == unix.ENOENT {
			return nil, nil
		}
		a.redial(err)
		return nil, advError("look up chain "+AdvancedChain, err)
	}
	c.Table = a.table
	return c, nil
}

func advSameBaseChain(got, want *nftables.Chain) bool {
	return got.Hooknum != nil && got.Priority != nil &&
		*got.Hooknum == *want.Hooknum && *got.Priority == *want.Priority && got.Type == want.Type
}

func (a *Advanced) chain() *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     AdvancedChain,
		Table:    a.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(a.cfg.Priority)),
		Policy:   &accept,
	}
}

// rules returns the chain's rules (see Setup).
func (a *Advanced) rules(c *nftables.Chain) []*nftables.Rule {
	rule := func(es ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Table: a.table, Chain: c, Exprs: es}
	}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	dport := func(proto byte, s *nftables.Set) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		}
	}
	ctState := func(bits uint32) []expr.Any {
		return []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		}
	}
	logTo := []expr.Any{
		&expr.Counter{},
		&expr.Log{
			Key:     1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group:   a.cfg.Group,
			Snaplen: AdvancedSnaplen,
			Data:    a.prefix,
		},
	}
	const (
		tcpFlagRST = 0x04
		tcpFlagACK = 0x10
	)
	noRSTorACK := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFlagRST | tcpFlagACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
	}
	return []*nftables.Rule{
		// The loopback interface's index is 1 in every namespace.
		rule(&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
			ret),
		rule(&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}},
			ret),
		rule(append(dport(unix.IPPROTO_TCP, a.sets.listenTCP), ret)...),
		rule(slices.Concat(dport(unix.IPPROTO_TCP, a.sets.watchTCP), noRSTorACK,
			ctState(expr.CtStateBitNEW|expr.CtStateBitINVALID), logTo)...),
		rule(append(dport(unix.IPPROTO_UDP, a.sets.listenUDP), ret)...),
		rule(slices.Concat(dport(unix.IPPROTO_UDP, a.sets.watchUDP), ctState(expr.CtStateBitNEW), logTo)...),
	}
}

// intervalElements encodes disjoint, non-adjacent ranges for an
// inet_service interval set: a start element per range and an end element
// (the port after it) unless the range runs to 65535.
func intervalElements(rs []rules.PortRange) []nftables.SetElement {
	var els []nftables.SetElement
	for _, r := range rs {
		els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Lo)})
		if r.Hi < 65535 {
			els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Hi + 1), IntervalEnd: true})
		}
	}
	return els
}

// SetListening makes the listen sets hold exactly the given TCP and UDP
// ports (see listenSets.sync). The sets are shared with first strike: a
// call here updates both features.
func (a *Advanced) SetListening(tcp, udp []uint16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errAdvancedClosed
	}
	committed, err := syncListening(a.conn, a.table, listenSetsOf(a.sets), tcp, udp)
	if err != nil {
		a.redial(err)
		return fmt.Errorf("advanced: %w", err)
	}
	if committed {
		a.batches++
	}
	return nil
}

func listenSetsOf(s advSets) listenSets { return listenSets{tcp: s.listenTCP, udp: s.listenUDP} }

// listenSets are the sets listen_tcp and listen_udp: the ports something
// listens on (on a non-loopback address), shared by advanced mode and
// first strike, whose chains return early for them.
type listenSets struct{ tcp, udp *nftables.Set }

func newListenSets(t *nftables.Table) listenSets {
	return listenSets{
		tcp: &nftables.Set{Table: t, Name: SetListenTCP, KeyType: nftables.TypeInetService},
		udp: &nftables.Set{Table: t, Name: SetListenUDP, KeyType: nftables.TypeInetService},
	}
}

func (l listenSets) all() []*nftables.Set { return []*nftables.Set{l.tcp, l.udp} }

// syncListening makes the listen sets hold exactly the given ports. It
// reads the sets and applies the difference in one batch, sending nothing
// when there is none (committed reports whether it sent one). It creates
// the table and the sets if they are missing. If the sets change between
// read and write it reads again once. The slices are not kept.
func syncListening(c *nftables.Conn, t *nftables.Table, l listenSets, tcp, udp []uint16) (committed bool, err error) {
	committed, err = syncListeningOnce(c, t, l, tcp, udp)
	if e := errnoOf(err); e == unix.ENOENT || e == unix.EEXIST {
		// Someone else edited the sets, or they were deleted: read again.
		committed, err = syncListeningOnce(c, t, l, tcp, udp)
	}
	return committed, err
}

func syncListeningOnce(c *nftables.Conn, t *nftables.Table, l listenSets, tcp, udp []uint16) (bool, error) {
	type change struct {
		s        *nftables.Set
		add, del []nftables.SetElement
	}
	var changes []change
	missing := false
	for _, sw := range []struct {
		s    *nftables.Set
		want []uint16
	}{{l.tcp, tcp}, {l.udp, udp}} {
		want := new(rules.PortSet)
		for _, p := range sw.want {
			want.Add(p, p)
		}
		have := new(rules.PortSet)
		els, err := c.GetSetElements(sw.s)
		switch {
		case errnoOf(err) == unix.ENOENT:
			missing = true
		case err != nil:
			return false, kernelError("read set "+sw.s.Name, err)
		}
		for _, e := range els {
			if len(e.Key) == 2 {
				p := binaryutil.BigEndian.Uint16(e.Key)
				have.Add(p, p)
			}
		}
		ch := change{s: sw.s}
		for p := 0; p < 65536; p++ {
			w, h := want.Has(uint16(p)), have.Has(uint16(p))
			if w == h {
				continue
			}
			el := nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(uint16(p))}
			if w {
				ch.add = append(ch.add, el)
			} else {
				ch.del = append(ch.del, el)
			}
		}
		if len(ch.add) > 0 || len(ch.del) > 0 {
			changes = append(changes, ch)
		}
	}
	if len(changes) == 0 && !missing {
		return false, nil
	}
	if missing {
		c.AddTable(t)
		for _, s := range l.all() {
			if err := c.AddSet(s, nil); err != nil {
				return false, fmt.Errorf("add set %s: %w", s.Name, err)
			}
		}
	}
	var summary []string
	for _, ch := range changes {
		if len(ch.del) > 0 {
			if err := c.SetDeleteElements(ch.s, ch.del); err != nil {
				return false, fmt.Errorf("delete from %s: %w", ch.s.Name, err)
			}
		}
		if len(ch.add) > 0 {
			if err := c.SetAddElements(ch.s, ch.add); err != nil {
				return false, fmt.Errorf("add to %s: %w", ch.s.Name, err)
			}
		}
		summary = append(summary, fmt.Sprintf("%s +%d -%d", ch.s.Name, len(ch.add), len(ch.del)))
	}
	if err := c.Flush(); err != nil {
		return false, kernelError("update listen sets ("+strings.Join(summary, ", ")+")", err)
	}
	return true, nil
}

// Remove deletes the advanced chain and its four sets, whichever exist, in
// one batch; the table stays, and so do the listen sets while first
// strike's chain uses them. Removing what is not there is not an error.
func (a *Advanced) Remove() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errAdvancedClosed
	}
	sets, err := a.conn.GetSets(a.table)
	if errnoOf(err) == unix.ENOENT {
		return nil // no table
	}
	if err != nil {
		a.redial(err)
		return advError("list sets of table inet "+a.cfg.Table, err)
	}
	chain, err := a.chainLocked()
	if err != nil {
		return err
	}
	n := 0
	if chain != nil {
		// The chain goes first: its rules hold references to the sets.
		a.conn.DelChain(chain)
		n++
	}
	// First strike shares the listen sets: they stay while its chain
	// refers to them.
	fs, err := a.conn.ListChain(a.table, FirstStrikeChain)
	if err != nil && errnoOf(err) != unix.ENOENT {
		a.redial(err)
		return advError("look up chain "+FirstStrikeChain, err)
	}
	for _, s := range a.sets.all() {
		if fs != nil && (s == a.sets.listenTCP || s == a.sets.listenUDP) {
			continue
		}
		if slices.ContainsFunc(sets, func(k *nftables.Set) bool { return k.Name == s.Name }) {
			a.conn.DelSet(s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := a.conn.Flush(); err != nil {
		a.redial(err)
		return advError("remove chain "+AdvancedChain+" and its sets from table inet "+a.cfg.Table, err)
	}
	return nil
}

// advError wraps err from google/nftables as an *Error with the errno
// recovered, so errors.Is works (google/nftables formats some errors with
// %v).
func advError(op string, err error) error {
	return &Error{Op: "advanced: " + op, Err: err, Errno: errnoOf(err)}
}
