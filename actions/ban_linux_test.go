//go:build linux

package actions

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

// TestBan4 checks that an IPv4 ban is one element of the plain set
// blocked4, carrying the timeout, and that only /32 keys are accepted at
// the default prefix.
func TestBan4(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.1/32", 90*time.Second)
	mustBan(t, n, "::ffff:198.51.100.7/128", time.Hour)
	els := rawElements(t, ns, "sentry", "blocked4")
	if len(els) != 2 || len(endsOf(els)) != 0 {
		t.Errorf("elements %+v, want two, no interval ends", els)
	}
	starts := startsOf(els)
	if e, ok := starts[netip.MustParseAddr("192.0.2.1")]; !ok || e.Timeout != 90*time.Second || e.Expires <= 80*time.Second {
		t.Errorf("192.0.2.1 element = %+v (present %t), want timeout 90s", e, ok)
	}
	if e, ok := starts[netip.MustParseAddr("198.51.100.7")]; !ok || e.Timeout != time.Hour {
		t.Errorf("198.51.100.7 element = %+v (present %t)", e, ok)
	}
	// A wider IPv4 key (an aggregate) goes to wide4; a longer one is
	// refused.
	mustBan(t, n, "203.0.113.0/24", time.Hour)
	if err := n.Ban(netip.MustParsePrefix("192.0.2.0/31"), time.Hour); err != nil {
		t.Errorf("Ban of a /31 with IPv4Prefix 32: %v, want a wide ban", err)
	}
	wantOnly(t, n, map[string][2]time.Duration{
		"192.0.2.0/31":    {59 * time.Minute, time.Hour},
		"192.0.2.1/32":    {80 * time.Second, 90 * time.Second},
		"198.51.100.7/32": {59 * time.Minute, time.Hour},
		"203.0.113.0/24":  {59 * time.Minute, time.Hour},
	})
	// A shorter ban inside never shortens it; unblocking an address
	// inside lifts it.
	mustBan(t, n, "203.0.113.0/25", time.Minute)
	removed, err := n.Unblock(netip.MustParsePrefix("203.0.113.77/32"))
	if err != nil || fmt.Sprint(removed) != "[203.0.113.0/24]" {
		t.Errorf("Unblock inside the /24: %v %v", removed, err)
	}
}

// TestPlainSetReAdd pins the kernel behaviour the IPv4 code relies on:
// re-adding a present element to a plain timeout set succeeds and sets the
// new timeout, shorter or longer (so Ban must read before it re-adds a key
// it knows), and a delete and an add of one key in one batch work.
func TestPlainSetReAdd(t *testing.T) {
	ns := newNetNS(t)
	openTable(t, ns, TableSpec{})
	c := raw(t, ns)
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Name: Set4, HasTimeout: true}
	k := []byte{192, 0, 2, 3}
	for _, d := range []time.Duration{time.Hour, time.Minute} {
		if err := c.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: d}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("add with timeout %v: %v", d, err)
		}
		if els := rawElements(t, ns, "sentry", Set4); len(els) != 1 || els[0].Timeout != d {
			t.Fatalf("after adding with timeout %v: %+v", d, els)
		}
	}
	_ = c.SetDeleteElements(s, []nftables.SetElement{{Key: k}})
	_ = c.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: 2 * time.Hour}})
	if err := c.Flush(); err != nil {
		t.Fatalf("delete and add in one batch: %v", err)
	}
	if els := rawElements(t, ns, "sentry", Set4); len(els) != 1 || els[0].Timeout != 2*time.Hour {
		t.Errorf("after delete and add: %+v", els)
	}
}

func TestBan6Range(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "2001:db8:aa:bb::/64", time.Hour)
	els := rawElements(t, ns, "sentry", "blocked6")
	if len(els) != 2 {
		t.Fatalf("%d elements, want start and end: %+v", len(els), els)
	}
	start := startsOf(els)[netip.MustParseAddr("2001:db8:aa:bb::")]
	if start.Timeout != time.Hour {
		t.Errorf("start element %+v, want timeout 1h", start)
	}
	if got, want := endsOf(els), []netip.Addr{netip.MustParseAddr("2001:db8:aa:bc::")}; !slices.Equal(got, want) {
		t.Errorf("end %v, want %v", got, want)
	}
	for _, e := range els {
		if e.IntervalEnd && e.Timeout != 0 {
			t.Errorf("end element has timeout %v", e.Timeout)
		}
	}
	// Other addresses of the /64 fall inside the kernel's range.
	spans := spansFromElements(fromKernel(els))
	for _, a := range []string{"2001:db8:aa:bb::1", "2001:db8:aa:bb:ffff:ffff:ffff:ffff", "2001:db8:aa:bb:1234::5"} {
		if ip := netip.MustParseAddr(a); len(spans) != 1 || !spans[0].contains(ip, ip) {
			t.Errorf("%s not inside the banned range %v", a, spans)
		}
	}
	if ip := netip.MustParseAddr("2001:db8:aa:bc::1"); spans[0].contains(ip, ip) {
		t.Errorf("%s is inside the banned range %v", ip, spans)
	}
}

func TestBanEndOfAddressSpace(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{})
	mustBan(t, n, "255.255.255.255/32", time.Hour)
	mustBan(t, n, "ffff:ffff:ffff:ffff::/64", time.Hour)
	mustBan(t, n, "255.255.255.255/32", 2*time.Hour) // re-ban takes the slow path
	wantOnly(t, n, map[string][2]time.Duration{
		"255.255.255.255/32":       {119 * time.Minute, 2 * time.Hour},
		"ffff:ffff:ffff:ffff::/64": {59 * time.Minute, time.Hour},
	})
	for _, k := range []string{"255.255.255.255/32", "ffff:ffff:ffff:ffff::1/128"} {
		if _, err := n.Unblock(netip.MustParsePrefix(k)); err != nil {
			t.Errorf("Unblock %s: %v", k, err)
		}
	}
	wantOnly(t, n, nil)
}

func TestBanExtendsNeverShortens(t *testing.T) {
	for _, key := range []string{"192.0.2.10/32", "2001:db8:5::/64"} {
		t.Run(key, func(t *testing.T) {
			ns := newNetNS(t)
			n := openTable(t, ns, TableSpec{ManageChain: true})
			mustBan(t, n, key, 10*time.Minute)
			mustBan(t, n, key, time.Hour)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			mustBan(t, n, key, time.Minute)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			// A new process (empty record) does not shorten it either.
			n2 := openTable(t, ns, TableSpec{})
			mustBan(t, n2, key, time.Minute)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			want := 2 // start and end of the range
			if setName(key) == Set4 {
				want = 1
			}
			if got := len(rawElements(t, ns, "sentry", setName(key))); got != want {
				t.Errorf("%d elements after re-bans, want %d", got, want)
			}
		})
	}
}

func setName(key string) string {
	if netip.MustParsePrefix(key).Addr().Is4() {
		return Set4
	}
	return Set6
}

func TestBanInsideActiveRange(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "2001:db8:7:7::/64", 10*time.Minute)
	mustBan(t, n, "2001:db8:7:7::99/128", 5*time.Minute) // already banned, shorter
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:7:7::/64": {9 * time.Minute, 10 * time.Minute}})
	mustBan(t, n, "2001:db8:7:7::99/128", time.Hour) // extends the /64
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:7:7::/64": {59 * time.Minute, time.Hour}})
}

func TestBanAroundActiveRanges(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "2001:db8:9:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:9:2::/64", 2*time.Minute)
	mustBan(t, n, "2001:db8:9::/48", 10*time.Minute)
	// The /48 replaces both and keeps the longest remaining time.
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:9::/48": {59 * time.Minute, time.Hour}})
	if got := len(rawElements(t, ns, "sentry", Set6)); got != 2 {
		t.Errorf("%d elements, want 2", got)
	}
}

// TestBanUnknownOverlap: a ban this process does not know of (made by
// another) makes the fast path fail with EEXIST; Ban then reads and resolves.
func TestBanUnknownOverlap(t *testing.T) {
	ns := newNetNS(t)
	a := openTable(t, ns, TableSpec{ManageChain: true})
	b := openTable(t, ns, TableSpec{})
	mustBan(t, a, "2001:db8:c::/64", time.Hour)
	mustBan(t, b, "2001:db8:c::/48", time.Minute)
	mustBan(t, b, "2001:db8:c::5/128", 2*time.Hour)
	wantOnly(t, a, map[string][2]time.Duration{"2001:db8:c::/48": {119 * time.Minute, 2 * time.Hour}})
}

func TestUnblock(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.1/32", time.Hour)
	mustBan(t, n, "192.0.2.2/32", time.Hour)
	mustBan(t, n, "2001:db8:1:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:2:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:2:2::/64", time.Hour)

	tests := []struct {
		key  string
		want []string
	}{
		{"192.0.2.1/32", []string{"192.0.2.1/32"}},
		{"2001:db8:1:1::abcd/128", []string{"2001:db8:1:1::/64"}},
		{"2001:db8:2::/48", []string{"2001:db8:2:1::/64", "2001:db8:2:2::/64"}},
	}
	for _, tt := range tests {
		got, err := n.Unblock(netip.MustParsePrefix(tt.key))
		if err != nil {
			t.Errorf("Unblock(%s): %v", tt.key, err)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if !slices.Equal(gs, tt.want) {
			t.Errorf("Unblock(%s) = %v, want %v", tt.key, gs, tt.want)
		}
	}
	for _, k := range []string{"192.0.2.1/32", "2001:db8:1:1::/64", "10.0.0.1/32"} {
		if _, err := n.Unblock(netip.MustParsePrefix(k)); !errors.Is(err, ErrNotBanned) {
			t.Errorf("Unblock(%s) again = %v, want ErrNotBanned", k, err)
		}
	}
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.2/32": {59 * time.Minute, time.Hour}})
	if got := len(rawElements(t, ns, "sentry", Set6)); got != 0 {
		t.Errorf("%d IPv6 elements left, want 0", got)
	}
	// Unblocked keys take the fast path again.
	mustBan(t, n, "192.0.2.1/32", time.Minute)
	mustBan(t, n, "2001:db8:1:1::/64", time.Minute)
}

func TestTimeoutsExpire(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.50/32", time.Second)
	mustBan(t, n, "2001:db8:e::/64", 1500*time.Millisecond)
	mustBan(t, n, "192.0.2.51/32", time.Hour)
	got := list(t, n)
	if e := got[netip.MustParsePrefix("192.0.2.50/32")]; e.Timeout != time.Second || e.Expires <= 0 || e.Expires > time.Second {
		t.Errorf("List entry %+v, want timeout 1s and time left", e)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		got = list(t, n)
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bans did not expire: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := got[netip.MustParsePrefix("192.0.2.51/32")]; !ok {
		t.Errorf("the 1h ban expired too: %v", got)
	}
	// The expired key can be banned again (fast path, then a leftover end
	// element must not get in the way).
	mustBan(t, n, "192.0.2.50/32", time.Hour)
	mustBan(t, n, "2001:db8:e::/64", time.Hour)
	if len(list(t, n)) != 3 {
		t.Errorf("re-ban after expiry: %v", list(t, n))
	}
}

func TestBansStayAfterClose(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.9/32", time.Hour)
	mustBan(t, n, "2001:db8:f::/64", time.Hour)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Ban(netip.MustParsePrefix("192.0.2.10/32"), time.Hour); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Ban after Close = %v, want net.ErrClosed", err)
	}
	n2 := openTable(t, ns, TableSpec{ManageChain: true})
	if got := list(t, n2); len(got) != 2 {
		t.Errorf("after Close: %v, want both bans", got)
	}
}

func TestConcurrentBans(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if err := n.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}), 32), time.Hour); err != nil {
					t.Errorf("Ban: %v", err)
				}
				k := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(g), 0, byte(i)}), 64)
				if err := n.Ban(k, time.Hour); err != nil {
					t.Errorf("Ban: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got := len(list(t, n)); got != 400 {
		t.Errorf("%d bans, want 400", got)
	}
}

// trafficPair is a server namespace with a TCP listener on every address
// and a client namespace, joined by a veth pair.
type trafficPair struct {
	srv, cli netNS
	port     int
}

func newTrafficPair(t *testing.T, srvAddrs, cliAddrs []string) *trafficPair {
	t.Helper()
	p := &trafficPair{srv: newNetNS(t), cli: newNetNS(t)}
	vethPair(t, p.srv, p.cli, "snt0", "snt1")
	for _, a := range srvAddrs {
		addrAdd(t, p.srv, a, "snt0")
	}
	for _, a := range cliAddrs {
		addrAdd(t, p.cli, a, "snt1")
	}
	var ln net.Listener
	p.srv.do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", "[::]:0"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p.port = ln.Addr().(*net.TCPAddr).Port
	return p
}

func addrAdd(t *testing.T, ns netNS, a, dev string) {
	t.Helper()
	if netip.MustParsePrefix(a).Addr().Is4() {
		ns.ip(t, "addr", "add", a, "dev", dev)
	} else {
		ns.ip(t, "-6", "addr", "add", a, "dev", dev, "nodad")
	}
}

func (p *trafficPair) dial(t *testing.T, src, dst string, timeout time.Duration) error {
	t.Helper()
	var err error
	p.cli.do(t, func() {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var c net.Conn
		if c, err = d.Dial("tcp", net.JoinHostPort(dst, fmt.Sprint(p.port))); err == nil {
			c.Close()
		}
	})
	return err
}

type path struct{ src, dst string }

// wantConnect waits (while the link comes up) until each path connects.
func (p *trafficPair) wantConnect(t *testing.T, paths []path) {
	t.Helper()
	for _, pa := range paths {
		var err error
		for range 20 {
			if err = p.dial(t, pa.src, pa.dst, 500*time.Millisecond); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s -> %s: %v", pa.src, pa.dst, err)
		}
	}
}

// wantDropped checks that each path times out (dropped, not refused).
func (p *trafficPair) wantDropped(t *testing.T, paths []path) {
	t.Helper()
	for _, pa := range paths {
		if err := p.dial(t, pa.src, pa.dst, 700*time.Millisecond); err == nil {
			t.Errorf("banned %s -> %s connected", pa.src, pa.dst)
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("banned %s -> %s: %v, want a timeout", pa.src, pa.dst, err)
		}
	}
}

// TestBanDropsTraffic bans one IPv4 address and one IPv6 /64 in a
// namespace with a TCP listener and connects from a second namespace: from
// two addresses inside the /64 and the banned IPv4 address the connection
// times out; from addresses outside it connects.
func TestBanDropsTraffic(t *testing.T) {
	p := newTrafficPair(t, []string{"10.77.0.1/24", "fd00:77::1/48"},
		[]string{"10.77.0.2/24", "10.77.0.3/24", "fd00:77:0:1::10/48", "fd00:77:0:1::20/48", "fd00:77:0:2::10/48"})
	n := openTable(t, p.srv, TableSpec{ManageChain: true})
	banned := []path{{"10.77.0.2", "10.77.0.1"}, {"fd00:77:0:1::10", "fd00:77::1"}, {"fd00:77:0:1::20", "fd00:77::1"}}
	allowed := []path{{"10.77.0.3", "10.77.0.1"}, {"fd00:77:0:2::10", "fd00:77::1"}}
	p.wantConnect(t, append(slices.Clone(banned), allowed...))
	mustBan(t, n, "10.77.0.2/32", time.Minute)
	mustBan(t, n, "fd00:77:0:1::/64", time.Minute)
	p.wantDropped(t, banned)
	p.wantConnect(t, allowed)
	c, err := n.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets4 == 0 || c.Packets6 < 2 || c.Bytes4 == 0 || c.Bytes6 == 0 {
		t.Errorf("Counters = %+v, want drops in both families", c)
	}
	// Unblocking by an address inside the /64 lets it through again.
	if _, err := n.Unblock(netip.MustParsePrefix("fd00:77:0:1::10/128")); err != nil {
		t.Fatal(err)
	}
	if err := p.dial(t, "fd00:77:0:1::20", "fd00:77::1", 2*time.Second); err != nil {
		t.Errorf("after Unblock: %v", err)
	}
}

// TestBan4PrefixDropsTraffic bans an IPv4 /24 with IPv4Prefix 24: the
// masked rule drops an address of the /24 that was never named, lets
// another /24 through, and Unblock by a single address lifts the ban.
func TestBan4PrefixDropsTraffic(t *testing.T) {
	p := newTrafficPair(t, []string{"10.78.0.1/16"}, []string{"10.78.1.2/16", "10.78.1.3/16", "10.78.2.5/16"})
	n := openTable(t, p.srv, TableSpec{ManageChain: true, IPv4Prefix: 24})
	banned := []path{{"10.78.1.2", "10.78.0.1"}, {"10.78.1.3", "10.78.0.1"}}
	allowed := []path{{"10.78.2.5", "10.78.0.1"}}
	p.wantConnect(t, append(slices.Clone(banned), allowed...))
	mustBan(t, n, "10.78.1.0/24", time.Minute)
	if els := rawElements(t, p.srv, "sentry", Set4); len(els) != 1 || !slices.Equal(els[0].Key, []byte{10, 78, 1, 0}) {
		t.Errorf("blocked4 = %+v, want the one element 10.78.1.0", els)
	}
	p.wantDropped(t, banned)
	p.wantConnect(t, allowed)
	if c, err := n.Counters(); err != nil || c.Packets4 < 2 {
		t.Errorf("Counters = %+v, %v; want drops from both addresses", c, err)
	}
	got, err := n.Unblock(netip.MustParsePrefix("10.78.1.3/32"))
	if err != nil || !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.78.1.0/24")}) {
		t.Errorf("Unblock(10.78.1.3/32) = %v, %v; want [10.78.1.0/24]", got, err)
	}
	p.wantConnect(t, banned)
}

// TestBan4Prefix: with IPv4Prefix 24 Ban takes /24 keys only, List returns
// /24s, re-bans never shorten, and Unblock takes an address or any prefix.
func TestBan4Prefix(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true, IPv4Prefix: 24})
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRulesMask(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl}, []byte{255, 255, 255, 0})
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing = %v", m)
	}
	// Longer than the key length: refused (a wider one is an aggregate,
	// for wide4: TestBan4).
	if err := n.Ban(netip.MustParsePrefix("192.0.2.7/32"), time.Hour); err == nil || !strings.Contains(err.Error(), "/24") {
		t.Errorf("Ban(192.0.2.7/32) = %v, want an error naming /24", err)
	}
	mustBan(t, n, "192.0.2.77/24", 10*time.Minute) // masked to 192.0.2.0/24
	mustBan(t, n, "198.51.100.0/24", time.Hour)
	mustBan(t, n, "203.0.113.0/24", time.Hour)
	mustBan(t, n, "192.0.2.0/24", time.Hour)   // extends
	mustBan(t, n, "192.0.2.0/24", time.Minute) // never shortens
	wantOnly(t, n, map[string][2]time.Duration{
		"192.0.2.0/24":    {59 * time.Minute, time.Hour},
		"198.51.100.0/24": {59 * time.Minute, time.Hour},
		"203.0.113.0/24":  {59 * time.Minute, time.Hour},
	})
	if got := len(rawElements(t, ns, "sentry", Set4)); got != 3 {
		t.Errorf("%d elements, want 3", got)
	}
	tests := []struct {
		key  string
		want []string
	}{
		{"192.0.2.200/32", []string{"192.0.2.0/24"}},
		{"198.51.100.0/24", []string{"198.51.100.0/24"}},
		{"203.0.0.0/8", []string{"203.0.113.0/24"}},
	}
	for _, tt := range tests {
		got, err := n.Unblock(netip.MustParsePrefix(tt.key))
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if err != nil || !slices.Equal(gs, tt.want) {
			t.Errorf("Unblock(%s) = %v, %v; want %v", tt.key, gs, err, tt.want)
		}
	}
	if _, err := n.Unblock(netip.MustParsePrefix("192.0.2.1/32")); !errors.Is(err, ErrNotBanned) {
		t.Errorf("Unblock again = %v, want ErrNotBanned", err)
	}
	wantOnly(t, n, nil)
	mustBan(t, n, "192.0.2.0/24", time.Minute) // the fast path again
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.0/24": {50 * time.Second, time.Minute}})
}

// Snapshot reads over the view's own connection: it lists what List does,
// and a slow read there (its lock held, as a dump of a large set holds it)
// never holds up a Ban, nor the other way round.
func TestSnapshotNeverHoldsUpBan(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.1/32", time.Hour)
	mustBan(t, n, "2001:db8:1::/64", time.Hour)
	list, err := n.List()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := n.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	keys := func(bs []BanEntry) (out []string) {
		for _, b := range bs {
			out = append(out, b.Key.String()+" "+b.Origin)
		}
		return out
	}
	if !slices.Equal(keys(list), keys(snap)) || len(snap) != 2 {
		t.Errorf("Snapshot %v, List %v", keys(snap), keys(list))
	}
	n.view.mu.Lock()
	done := make(chan error, 1)
	go func() { done <- n.Ban(netip.MustParsePrefix("192.0.2.2/32"), time.Hour) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Ban waited for the view's lock")
	}
	n.view.mu.Unlock()
	if m, err := n.Missing(); err != nil || len(m) != 0 {
		t.Errorf("Missing = %v, %v over the view", m, err)
	}
}

// TestBanMany: the daemon's own bans put back together, as Ban puts each:
// a first strike's provisional ban of a key (IPv4 in blocked4, IPv6 in
// strike6), made behind this Table's back, gives way to the daemon's.
func TestBanMany(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.99/32", time.Hour) // n has read the sets
	addRaw(t, ns, Set4, nftables.SetElement{Key: v4Key(3).Addr().AsSlice(), Timeout: 10 * time.Minute})
	c := raw(t, ns)
	strike6 := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Name: SetStrike6, KeyType: nftables.TypeIP6Addr}
	if err := c.SetAddElements(strike6, []nftables.SetElement{{Key: v6Key(4).Addr().AsSlice(), Timeout: 10 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var bans []KeyBan
	for i := range 300 {
		bans = append(bans, KeyBan{Key: v4Key(i), Timeout: time.Hour}, KeyBan{Key: v6Key(i), Timeout: time.Hour})
	}
	before := n.flushes
	for i, err := range n.BanMany(bans) {
		if err != nil {
			t.Errorf("ban %d (%s): %v", i, bans[i].Key, err)
		}
	}
	if d := n.flushes - before; d != 3 {
		t.Errorf("%d transactions for 600 bans, want 3", d)
	}
	got := list(t, openTable(t, ns, TableSpec{ManageChain: true}))
	for _, b := range bans {
		if e, ok := got[b.Key]; !ok || e.Origin != OriginDaemon || e.Timeout != time.Hour {
			t.Errorf("%s: %+v (present %v), want the daemon's 1h ban", b.Key, e, ok)
		}
	}
	if els := rawElements(t, ns, "sentry", SetStrike6); len(els) != 0 {
		t.Errorf("strike6 still holds %d elements", len(els))
	}
}
