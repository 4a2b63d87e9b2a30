//go:build linux

package actions

import (
	"context"
	"errors"
	"fmt"
	"github.com/sentry-nflog/sentry-nflog/rules"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/sources"
	"golang.org/x/sys/unix"
)

// nftList runs `nft list <what>` in the namespace and returns its output
// without handles, blank lines or indentation differences.
func nftList(tb testing.TB, ns string, what ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft", "list"}, what...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("nft list %v in %s: %v: %s", what, ns, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// setPorts returns the elements of an inet_service set as nft prints them.
func setPorts(tb testing.TB, fd int, set string) []uint16 {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		tb.Fatal(err)
	}
	els, err := c.GetSetElements(&nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}, Name: set})
	if err != nil {
		tb.Fatalf("GetSetElements %s: %v", set, err)
	}
	var ports []uint16
	for _, e := range els {
		ports = append(ports, binaryutil.BigEndian.Uint16(e.Key))
	}
	slices.Sort(ports)
	return ports
}

// advancedChainWant is the chain Apply writes for advancedTestConfig, as
// nft prints it (no counter values: they are stripped by the caller).
const advancedChainWant = `table inet sentry {
chain advanced {
type filter hook input priority filter - 5; policy accept;
iif "lo" return
meta pkttype != host return
tcp dport @listen_tcp return
tcp dport @watch_tcp tcp flags ! rst,ack ct state invalid,new counter packets 0 bytes 0 log prefix "SENTRY-ADV" group 4343 snaplen 128
udp dport @listen_udp return
udp dport @watch_udp ct state new counter packets 0 bytes 0 log prefix "SENTRY-ADV" group 4343 snaplen 128
}
}`

func advancedTestConfig() AdvancedConfig {
	return AdvancedConfig{
		TCP:     []rules.PortRange{{Lo: 1, Hi: 1023}},
		UDP:     []rules.PortRange{{Lo: 50, Hi: 55}, {Lo: 100, Hi: 200}},
		Exclude: []uint16{27, 53, 113},
		Group:   4343,
		Prefix:  "SENTRY-ADV",
	}
}

// advancedSpec is the daemon's table with the managed ban chain and
// advanced mode as advancedTestConfig says.
func advancedSpec() TableSpec {
	cfg := advancedTestConfig()
	return TableSpec{ManageChain: true, Advanced: &cfg}
}

func TestAdvancedApply(t *testing.T) {
	ns := newNetNS(t)
	// The ban table alone first, as a daemon without advanced mode has it.
	n := openTable(t, ns, TableSpec{ManageChain: true})
	banChain := nftList(t, ns.name, "chain", "inet", "sentry", "input")

	spec := advancedSpec()
	spec.Listen = ListenPorts{TCP: []uint16{22, 113, 8080}, UDP: []uint16{53, 123, 137}}
	for range 2 {
		before := n.flushes
		if err := n.Apply(spec); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if n.flushes != before+1 {
			t.Errorf("Apply sent %d batches, want 1", n.flushes-before)
		}
	}
	got := nftList(t, ns.name, "chain", "inet", "sentry", AdvancedChain)
	if got != advancedChainWant {
		t.Errorf("after two Applies the chain is\n%s\nwant\n%s", got, advancedChainWant)
	}
	if now := nftList(t, ns.name, "chain", "inet", "sentry", "input"); now != banChain {
		t.Errorf("ban chain changed:\n%s\nwas\n%s", now, banChain)
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing after Apply: %v", m)
	}

	// The watch sets as nft sees them, excluded ports cut out.
	for set, want := range map[string]string{
		SetWatchTCP: "elements = { 1-26, 28-52, 54-112, 114-1023 }",
		SetWatchUDP: "elements = { 50-52, 54-55, 100-112, 114-200 }",
	} {
		if out := nftList(t, ns.name, "set", "inet", "sentry", set); !strings.Contains(out, want) || !strings.Contains(out, "flags interval") {
			t.Errorf("set %s:\n%s\nwant interval set with %s", set, out, want)
		}
	}
	// Every port is kept, watched or not: the sets are shared with first
	// strike, which counts probes of any port.
	check := func(tcp, udp []uint16) {
		t.Helper()
		if got := setPorts(t, ns.fd, SetListenTCP); !slices.Equal(got, tcp) {
			t.Errorf("listen_tcp = %v, want %v", got, tcp)
		}
		if got := setPorts(t, ns.fd, SetListenUDP); !slices.Equal(got, udp) {
			t.Errorf("listen_udp = %v, want %v", got, udp)
		}
		if l := n.Spec().Listen; !slices.Equal(l.TCP, tcp) || !slices.Equal(l.UDP, udp) {
			t.Errorf("Spec().Listen = %+v, want %v %v", l, tcp, udp)
		}
	}
	check([]uint16{22, 113, 8080}, []uint16{53, 123, 137})

	// The same ports again (in another order, with a duplicate): nothing
	// is sent.
	before := n.flushes
	if err := n.SetListening([]uint16{8080, 22, 113, 22}, []uint16{137, 123, 53}); err != nil {
		t.Fatal(err)
	}
	if n.flushes != before {
		t.Errorf("unchanged SetListening committed %d batch(es)", n.flushes-before)
	}
	// A change is one batch with additions and deletions.
	if err := n.SetListening([]uint16{25, 80, 443}, []uint16{51, 150}); err != nil {
		t.Fatal(err)
	}
	if n.flushes != before+1 {
		t.Errorf("changed SetListening committed %d batches, want 1", n.flushes-before)
	}
	check([]uint16{25, 80, 443}, []uint16{51, 150})
	// Someone else's edit is repaired, not fatal.
	run(t, "ip", "netns", "exec", ns.name, "nft", "add", "element", "inet", "sentry", SetListenTCP, "{ 7 }")
	run(t, "ip", "netns", "exec", ns.name, "nft", "delete", "element", "inet", "sentry", SetListenTCP, "{ 80 }")
	if err := n.SetListening([]uint16{25, 80, 443}, []uint16{51, 150}); err != nil {
		t.Fatal(err)
	}
	check([]uint16{25, 80, 443}, []uint16{51, 150})
	// A deleted listen set is made again.
	run(t, "ip", "netns", "exec", ns.name, "nft", "delete", "chain", "inet", "sentry", AdvancedChain)
	run(t, "ip", "netns", "exec", ns.name, "nft", "delete", "set", "inet", "sentry", SetListenUDP)
	if err := n.SetListening([]uint16{25, 80, 443}, []uint16{51, 150}); err != nil {
		t.Fatal(err)
	}
	check([]uint16{25, 80, 443}, []uint16{51, 150})
	if m := missing(t, n); !slices.Equal(m, []string{"chain advanced"}) {
		t.Errorf("Missing = %v, want the deleted chain", m)
	}
	if err := n.SetListening(nil, nil); err != nil {
		t.Fatal(err)
	}
	check(nil, nil)

	// Apply with the spec as it stands keeps the ports SetListening set.
	if err := n.SetListening([]uint16{22}, []uint16{52}); err != nil {
		t.Fatal(err)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatal(err)
	}
	check([]uint16{22}, []uint16{52})
	if got := nftList(t, ns.name, "chain", "inet", "sentry", AdvancedChain); got != advancedChainWant {
		t.Errorf("after repair the chain is\n%s", got)
	}

	// A new priority moves the chain; the rules are rewritten once.
	moved := n.Spec()
	moved.Advanced.Priority = -3
	moved.Advanced.TCP = nil // an empty watch set still makes valid rules
	if err := n.Apply(moved); err != nil {
		t.Fatalf("Apply with priority -3: %v", err)
	}
	want := strings.Replace(advancedChainWant, "priority filter - 5", "priority filter - 3", 1)
	if got := nftList(t, ns.name, "chain", "inet", "sentry", AdvancedChain); got != want {
		t.Errorf("after moving the chain:\n%s\nwant\n%s", got, want)
	}
	if out := nftList(t, ns.name, "set", "inet", "sentry", SetWatchTCP); strings.Contains(out, "elements") {
		t.Errorf("watch_tcp not emptied:\n%s", out)
	}

	// Without advanced mode (nor first strike) the chain and the four sets
	// go, nothing else; twice is fine.
	mustBan(t, n, "192.0.2.1/32", time.Hour)
	for range 2 {
		if err := n.Apply(TableSpec{ManageChain: true}); err != nil {
			t.Fatalf("Apply without advanced mode: %v", err)
		}
	}
	all := nftList(t, ns.name, "table", "inet", "sentry")
	for _, name := range []string{"chain " + AdvancedChain, SetWatchTCP, SetWatchUDP, SetListenTCP, SetListenUDP} {
		if strings.Contains(all, name) {
			t.Errorf("after removing advanced mode the table still has %s:\n%s", name, all)
		}
	}
	if now := nftList(t, ns.name, "chain", "inet", "sentry", "input"); now != banChain {
		t.Errorf("ban chain changed:\n%s\nwas\n%s", now, banChain)
	}
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.1/32": {59 * time.Minute, time.Hour}})
	// Without listen sets in the spec SetListening only records the
	// ports, for the next Apply, which brings it all back.
	if err := n.SetListening([]uint16{22}, []uint16{52}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(nftList(t, ns.name, "table", "inet", "sentry"), SetListenTCP) {
		t.Error("SetListening without advanced mode or first strike made the listen sets")
	}
	spec = advancedSpec()
	spec.Listen = n.Spec().Listen
	if err := n.Apply(spec); err != nil {
		t.Fatalf("Apply after removing: %v", err)
	}
	if got := nftList(t, ns.name, "chain", "inet", "sentry", AdvancedChain); got != advancedChainWant {
		t.Errorf("after removing and applying again:\n%s", got)
	}
	check([]uint16{22}, []uint16{52})
}

func TestAdvancedApplyConflicts(t *testing.T) {
	ns := newNetNS(t)
	run(t, "ip", "netns", "exec", ns.name, "nft", "add table inet sentry; add set inet sentry listen_tcp { type ipv4_addr; }")
	n, err := OpenTable(advancedSpec(), ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Apply(advancedSpec())
	if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "listen_tcp") {
		t.Fatalf("Apply over a foreign set: %v, want EEXIST naming listen_tcp", err)
	}
	if out := nftList(t, ns.name, "table", "inet", "sentry"); strings.Contains(out, "chain") || strings.Contains(out, Set4) {
		t.Errorf("a failed Apply changed the table:\n%s", out)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Apply(advancedSpec()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// advEvents runs an NFLOG reader for group in the namespace fd and returns
// its events. It waits until the reader delivers (probing UDP port 99 of
// victim from the attacker, a watched port) and drains the warm-up.
func advEvents(t *testing.T, p *netnstest.Pair, fd int, group uint16, warm netip.Addr) <-chan parsers.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	items := make(chan sources.Item, 4096)
	out := make(chan parsers.Event, 4096)
	done := make(chan error, 1)
	src := sources.NewNFLOGSource(sources.NFLOGConfig{Group: group, NetNS: fd})
	go func() { done <- src.Run(ctx, items) }()
	go func() {
		for {
			select {
			case it := <-items:
				out <- it.Event
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("NFLOG Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("NFLOG Run did not return within 5 s of cancellation")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("NFLOG Run returned early: %v", err)
		default:
		}
		if err := p.Attacker.Do(func() error {
			return scanner.UDPProbe(ctx, netip.Addr{}, warm, []uint16{99})
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-out:
			for {
				select {
				case <-out:
				case <-time.After(100 * time.Millisecond):
					return out
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no warm-up event within 5 s")
	return nil
}

// probe is what an event says was probed.
type probe struct {
	v6    bool
	proto uint8
	port  uint16
}

func (p probe) String() string {
	fam := "4"
	if p.v6 {
		fam = "6"
	}
	name := map[uint8]string{parsers.ProtoTCP: "tcp", parsers.ProtoUDP: "udp"}[p.proto]
	return fmt.Sprintf("%s%s/%d", name, fam, p.port)
}

// collect reads events until quiet has passed without one (at most 10 s),
// keeping those of the attacker with our prefix.
func collect(t *testing.T, events <-chan parsers.Event, attacker [2]netip.Addr, quiet time.Duration) map[probe][]parsers.Event {
	t.Helper()
	got := map[probe][]parsers.Event{}
	limit := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Prefix != "SENTRY-ADV" || (ev.Src != attacker[0] && ev.Src != attacker[1]) {
				t.Errorf("unexpected event %+v", ev)
				continue
			}
			k := probe{v6: ev.Src.Is6(), proto: ev.Proto, port: ev.DstPort}
			got[k] = append(got[k], ev)
		case <-time.After(quiet):
			return got
		case <-limit:
			t.Error("events did not stop within 10 s")
			return got
		}
	}
}

func keys(m map[probe][]parsers.Event) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

func expect(v6s []bool, proto uint8, ports ...uint16) []string {
	var out []string
	for _, v6 := range v6s {
		for _, p := range ports {
			out = append(out, probe{v6: v6, proto: proto, port: p}.String())
		}
	}
	return out
}

func portRange(lo, hi uint16) []uint16 {
	var ps []uint16
	for p := lo; p <= hi; p++ {
		ps = append(ps, p)
	}
	return ps
}

// TestAdvancedEndToEnd scans a victim namespace from an attacker namespace
// and reads the victim's NFLOG group with the real reader: every probe of a
// watched port nothing reachable listens on is reported, once, and nothing
// else; a service started later stops the reports for its port after one
// refresh from the victim's /proc.
func TestAdvancedEndToEnd(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	fd := p.Victim.Fd()
	attacker := [2]netip.Addr{p.AttackerIP4, p.AttackerIP6}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Services in the victim: ssh on every address; 24 on 127.0.0.1 and
	// ::1 only, unreachable from outside; UDP 52 on every address.
	p.Listen(t, 22)
	var closers []func() error
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
	})
	if err := p.Victim.Do(func() error {
		for _, addr := range []string{"127.0.0.1:24", "[::1]:24"} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			closers = append(closers, ln.Close)
		}
		uc, err := net.ListenPacket("udp", ":52")
		if err != nil {
			return err
		}
		closers = append(closers, uc.Close)
		return nil
	}); err != nil {
		t.Fatalf("listen in victim: %v", err)
	}

	// The daemon's ban chain (priority -10) and advanced mode (-5).
	spec := TableSpec{ManageChain: true, Advanced: &AdvancedConfig{
		TCP:     []rules.PortRange{{Lo: 1, Hi: 1023}},
		UDP:     []rules.PortRange{{Lo: 1, Hi: 1023}},
		Exclude: []uint16{27, 53},
		Group:   4343,
		Prefix:  "SENTRY-ADV",
	}}
	tbl, err := OpenTable(spec, fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	// /proc/net is the main thread's namespace: read the victim's sockets
	// through /proc/thread-self from a thread switched into it.
	listening := func() (tcp, udp []uint16) {
		t.Helper()
		if err := p.Victim.Do(func() error {
			var err error
			tcp, udp, err = hostinfo.Paths{Proc: "/proc/thread-self"}.Listening()
			return err
		}); err != nil {
			t.Fatalf("Listening in victim: %v", err)
		}
		return tcp, udp
	}
	refresh := func() (tcp, udp []uint16) {
		t.Helper()
		tcp, udp = listening()
		if err := tbl.SetListening(tcp, udp); err != nil {
			t.Fatalf("SetListening: %v", err)
		}
		return tcp, udp
	}
	tcp, udp := listening()
	if !slices.Equal(tcp, []uint16{22}) || !slices.Equal(udp, []uint16{52}) {
		t.Fatalf("victim listens on tcp %v udp %v, want [22] [52] (24 is loopback only)", tcp, udp)
	}
	// The listening ports go in with the chain that reads them.
	spec.Listen = ListenPorts{TCP: tcp, UDP: udp}
	if err := tbl.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	events := advEvents(t, p, fd, 4343, p.VictimIP4)

	both := []bool{false, true}
	t.Run("scan", func(t *testing.T) {
		for _, dst := range []netip.Addr{p.VictimIP4, p.VictimIP6} {
			var res scanner.Result
			if err := p.Attacker.Do(func() error {
				var err error
				res, err = scanner.ConnectScan(ctx, netip.Addr{}, dst, portRange(20, 30), time.Second)
				if err != nil {
					return err
				}
				return scanner.UDPProbe(ctx, netip.Addr{}, dst, portRange(50, 55))
			}); err != nil {
				t.Fatalf("scan %s: %v", dst, err)
			}
			// Logging changes nothing for the scanner: 22 open, the rest refused.
			if open := res.Ports(scanner.Open); !slices.Equal(open, []uint16{22}) {
				t.Errorf("open ports on %s: %v, want [22]", dst, open)
			}
		}
		got := collect(t, events, attacker, 500*time.Millisecond)
		// Not 22 (listening), 27 and 53 (excluded), UDP 52 (listening); 24
		// is reported: its service is bound to loopback only.
		want := slices.Concat(
			expect(both, parsers.ProtoTCP, 20, 21, 23, 24, 25, 26, 28, 29, 30),
			expect(both, parsers.ProtoUDP, 50, 51, 54, 55))
		slices.Sort(want)
		if k := keys(got); !slices.Equal(k, want) {
			t.Errorf("probes reported:\n%v\nwant\n%v", k, want)
		}
		for k, evs := range got {
			if len(evs) != 1 {
				t.Errorf("%v reported %d times, want once", k, len(evs))
			}
			if k.proto == parsers.ProtoTCP && evs[0].Flags != parsers.SYN {
				t.Errorf("%v: flags %v, want SYN", k, evs[0].Flags)
			}
		}
	})

	t.Run("stealth", func(t *testing.T) {
		// FIN, NULL and XMAS are invalid to conntrack and reported;
		// SYN-ACK, RST and ACK (backscatter) are not, nor is anything
		// to a listening port.
		type raw struct {
			port  uint16
			flags parsers.TCPFlags
		}
		sends := []raw{
			{40, parsers.FIN}, {41, 0}, {42, parsers.FIN | parsers.PSH | parsers.URG},
			{43, parsers.SYN | parsers.ACK}, {44, parsers.RST}, {45, parsers.ACK}, {46, parsers.RST | parsers.ACK},
			{22, parsers.FIN}, {22, 0},
		}
		for _, dst := range []netip.Addr{p.VictimIP4, p.VictimIP6} {
			if err := p.Attacker.Do(func() error {
				for _, s := range sends {
					if err := scanner.RawProbe(ctx, netip.Addr{}, dst, s.port, uint8(s.flags)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatalf("raw probes to %s: %v", dst, err)
			}
		}
		got := collect(t, events, attacker, 500*time.Millisecond)
		want := expect(both, parsers.ProtoTCP, 40, 41, 42)
		slices.Sort(want)
		if k := keys(got); !slices.Equal(k, want) {
			t.Errorf("stealth probes reported:\n%v\nwant\n%v", k, want)
		}
		for k, evs := range got {
			i := slices.IndexFunc(sends, func(s raw) bool { return s.port == k.port })
			if i < 0 || len(evs) != 1 || evs[0].Flags != sends[i].flags {
				t.Errorf("%v: %d event(s), first with flags %q; want one per probe, with the flags sent", k, len(evs), evs[0].Flags)
			}
		}
	})

	t.Run("service started", func(t *testing.T) {
		// A service appears on 25; one refresh later its connections are
		// no longer reported, while 26 still is.
		p.Listen(t, 25)
		if tcp, _ := refresh(); !slices.Equal(tcp, []uint16{22, 25}) {
			t.Fatalf("after listening on 25 the victim listens on tcp %v", tcp)
		}
		for _, dst := range []netip.Addr{p.VictimIP4, p.VictimIP6} {
			var res scanner.Result
			if err := p.Attacker.Do(func() error {
				var err error
				// 25 first: events arrive in order, so once 26's is in,
				// none can still come for 25.
				if res, err = scanner.ConnectScan(ctx, netip.Addr{}, dst, []uint16{25}, time.Second); err != nil {
					return err
				}
				r2, err := scanner.ConnectScan(ctx, netip.Addr{}, dst, []uint16{26}, time.Second)
				res.Probes = append(res.Probes, r2.Probes...)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if open := res.Ports(scanner.Open); !slices.Equal(open, []uint16{25}) {
				t.Errorf("open on %s: %v, want [25]", dst, open)
			}
		}
		got := collect(t, events, attacker, 500*time.Millisecond)
		if k, want := keys(got), expect(both, parsers.ProtoTCP, 26); !slices.Equal(k, want) {
			t.Errorf("after starting a service on 25: reported %v, want %v", k, want)
		}
	})

	t.Run("counters", func(t *testing.T) {
		// The log rules counted what they logged (warm-up probes included).
		out := nftList(t, p.Victim.Name, "chain", "inet", "sentry", AdvancedChain)
		if strings.Contains(out, "counter packets 0 ") {
			t.Errorf("a log rule counted nothing:\n%s", out)
		}
	})
}

// Only a listener reachable from outside silences a port: a dual-stack
// wildcard counts, loopback (IPv4, IPv6, mapped) does not.
func TestAdvancedListeningOnlyLoopback(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	var tcp, udp []uint16
	if err := p.Victim.Do(func() error {
		for _, a := range []struct{ network, addr string }{
			{"tcp4", "127.0.0.1:631"}, {"tcp6", "[::1]:631"},
			{"tcp6", "[::]:443"}, {"tcp4", "198.51.100.1:80"},
		} {
			ln, err := net.Listen(a.network, a.addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
		}
		for _, a := range []struct{ network, addr string }{
			{"udp4", "127.0.0.1:161"}, {"udp6", "[2001:db8:51::1]:514"},
		} {
			c, err := net.ListenPacket(a.network, a.addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
		}
		// Go refuses IPv4-mapped binds: a dual-stack socket bound to
		// ::ffff:127.0.0.1, by hand.
		fd, err := listenMapped(netip.MustParseAddr("::ffff:127.0.0.1"), 5432)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		tcp, udp, err = hostinfo.Paths{Proc: "/proc/thread-self"}.Listening()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := []uint16{80, 443}; !slices.Equal(tcp, want) {
		t.Errorf("tcp %v, want %v", tcp, want)
	}
	if want := []uint16{514}; !slices.Equal(udp, want) {
		t.Errorf("udp %v, want %v", udp, want)
	}
}

// listenMapped makes a listening AF_INET6 TCP socket bound to an IPv4-mapped
// address.
func listenMapped(a netip.Addr, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet6{Port: port, Addr: a.As16()})
	}
	if err == nil {
		err = unix.Listen(fd, 8)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on [%s]:%d: %w", a, port, err)
	}
	return fd, nil
}
