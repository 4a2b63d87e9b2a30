//go:build linux

package actions

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/sentry-nflog/sentry-nflog/rules"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"golang.org/x/sys/unix"
)

// fsLab is a victim with the daemon's table (ban chain and first strike,
// no daemon) and an attacker.
type fsLab struct {
	p    *netnstest.Pair
	tbl  *Table
	spec TableSpec
}

func synRule(n int) FirstStrikeRule {
	return FirstStrikeRule{Name: "syn", Proto: 6, TCPFlags: rules.ClassSYN, DistinctPorts: n, Window: time.Minute}
}

// newFSLab sets up the victim: the managed ban chain and first strike with
// cfg, never striking allow, and a service on TCP 22 that the listen sets
// know, all in one Apply.
func newFSLab(t *testing.T, cfg FirstStrikeConfig, allow ...netip.Prefix) *fsLab {
	t.Helper()
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	if cfg.Group == 0 {
		cfg.Group = 4344
	}
	p.Listen(t, 22)
	var tcp, udp []uint16
	if err := p.Victim.Do(func() error {
		var err error
		tcp, udp, err = hostinfo.Paths{Proc: "/proc/thread-self"}.Listening()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	spec := TableSpec{ManageChain: true, FirstStrike: &cfg, Allow: allow, Listen: ListenPorts{TCP: tcp, UDP: udp}}
	tbl, err := OpenTable(spec, p.Victim.Fd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	if err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	return &fsLab{p: p, tbl: tbl, spec: tbl.Spec()}
}

// apply applies spec in the lab, failing the test on an error.
func (l *fsLab) apply(t *testing.T, spec TableSpec) {
	t.Helper()
	if err := l.tbl.Apply(spec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func (l *fsLab) synScan(t *testing.T, src, dst netip.Addr, ports []uint16) scanner.Replies {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var r scanner.Replies
	if err := l.p.Attacker.Do(func() error {
		var err error
		r, err = scanner.SYNScan(ctx, src, dst, ports, 0)
		return err
	}); err != nil {
		t.Fatalf("SYN scan %s -> %s: %v", src, dst, err)
	}
	return r
}

// bansOf returns the active bans by key.
func (l *fsLab) bansOf(t *testing.T) map[netip.Prefix]BanEntry {
	t.Helper()
	bs, err := l.tbl.List()
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Prefix]BanEntry{}
	for _, b := range bs {
		m[b.Key] = b
	}
	return m
}

// setLen counts the elements of a set in the victim.
func setLen(t *testing.T, fd int, set string) int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	els, err := c.GetSetElements(&nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}, Name: set})
	if err != nil {
		t.Fatalf("read %s: %v", set, err)
	}
	return len(els)
}

var (
	counterRE = regexp.MustCompile(`counter packets (\d+)`)
	expiresRE = regexp.MustCompile(`expires [0-9hms.]+`)
)

// counters returns the packet counters of a chain, in rule order.
func counters(t *testing.T, ns string, what ...string) []int {
	t.Helper()
	var out []int
	for _, m := range counterRE.FindAllStringSubmatch(nftList(t, ns, what...), -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

func replies(r scanner.Replies) int { return r.Resets + r.SynAcks }

// TestFirstStrikeSYNScan: a full-range SYN scan at full speed learns at
// most threshold-1 answers, over IPv4 and IPv6.
func TestFirstStrikeSYNScan(t *testing.T) {
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{synRule(5)}, MaxPerMinute: 60})
	all := make([]uint16, 0, 65535)
	for p := 1; p <= 65535; p++ {
		all = append(all, uint16(p))
	}
	for _, tc := range []struct {
		src, dst netip.Addr
		key      netip.Prefix
	}{
		{l.p.AttackerIP4, l.p.VictimIP4, netip.PrefixFrom(l.p.AttackerIP4, 32)},
		{l.p.AttackerIP6, l.p.VictimIP6, netip.PrefixFrom(l.p.AttackerIP6, 64).Masked()},
	} {
		r := l.synScan(t, tc.src, tc.dst, all)
		t.Logf("MEASURE syn scan %s -> %s, 1-65535 at full speed: sent %d in %v, replies %d (resets %d, syn-acks %d), open %v, closed %v",
			tc.src, tc.dst, r.Sent, r.Sending, replies(r), r.Resets, r.SynAcks, r.Open, r.Closed)
		if replies(r) > 4 || len(r.Open) > 0 {
			t.Errorf("scanner learned %d replies (open %v), want at most 4 and not port 22", replies(r), r.Open)
		}
		b, ok := l.bansOf(t)[tc.key]
		if !ok || b.Origin != OriginKernel || b.Timeout != time.Minute {
			t.Errorf("ban of %s: %+v (found %v), want a kernel ban of 1m", tc.key, b, ok)
		}
	}
	t.Logf("MEASURE table after both scans:\n%s", nftList(t, l.p.Victim.Name, "table", "inet", "sentry"))

	// Rotating sources in one /64 outside the pair's subnet: one key.
	var srcs []netip.Addr
	for i := range 10 {
		srcs = append(srcs, netip.MustParseAddr(fmt.Sprintf("2001:db8:77::%x", 0x100+i)))
	}
	l.p.AddAttackerAddrs(t, srcs...)
	total := 0
	for i, src := range srcs {
		r := l.synScan(t, src, l.p.VictimIP6, []uint16{uint16(1000 + i)})
		total += replies(r)
	}
	t.Logf("MEASURE 10 addresses of 2001:db8:77::/64, one new port each: %d replies", total)
	if total > 4 {
		t.Errorf("rotating /64 learned %d replies, want at most 4", total)
	}
	if b, ok := l.bansOf(t)[netip.MustParsePrefix("2001:db8:77::/64")]; !ok || b.Origin != OriginKernel {
		t.Errorf("2001:db8:77::/64 not struck as one key: %v", l.bansOf(t))
	}
	if n := setLen(t, l.p.Victim.Fd(), SetStrike6); n != 2 {
		t.Errorf("strike6 holds %d elements, want 2", n)
	}
}

// TestFirstStrikeUDP: a UDP scan of 1-1000 gets at most threshold-1 ICMP
// port-unreachables.
func TestFirstStrikeUDP(t *testing.T) {
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{{Name: "udp", Proto: 17, DistinctPorts: 5, Window: time.Minute}}})
	l.p.Victim.Run(t, "nft", "add table ip cnt; add chain ip cnt out { type filter hook output priority 0; }; add rule ip cnt out icmp type destination-unreachable counter")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.p.Attacker.Do(func() error {
		return scanner.UDPProbe(ctx, netip.Addr{}, l.p.VictimIP4, portRange(1, 1000))
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	got := counters(t, l.p.Victim.Name, "chain", "ip", "cnt", "out")
	t.Logf("MEASURE udp probes 1-1000: %v ICMP port unreachable sent", got)
	if len(got) != 1 || got[0] > 4 {
		t.Errorf("victim sent %v port unreachables, want at most 4", got)
	}
	if b, ok := l.bansOf(t)[netip.PrefixFrom(l.p.AttackerIP4, 32)]; !ok || b.Origin != OriginKernel {
		t.Errorf("attacker not struck: %v", l.bansOf(t))
	}
}

// TestFirstStrikeAllow: an allowed source is never struck.
func TestFirstStrikeAllow(t *testing.T) {
	attacker := netip.MustParsePrefix("198.51.100.2/32")
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{synRule(5)}},
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), attacker)
	r := l.synScan(t, l.p.AttackerIP4, l.p.VictimIP4, portRange(1, 1000))
	t.Logf("MEASURE allowed source, 1-1000: %d replies, open %v", len(r.Open)+len(r.Closed), r.Open)
	if len(r.Open)+len(r.Closed) != 1000 || !slices.Equal(r.Open, []uint16{22}) {
		t.Errorf("allowed scan: %d ports answered, open %v; want 1000 and [22]", len(r.Open)+len(r.Closed), r.Open)
	}
	if n := setLen(t, l.p.Victim.Fd(), Set4); n != 0 {
		t.Errorf("blocked4 holds %d elements", n)
	}
	// Without the allow entry the same scan is struck.
	spec := l.spec
	spec.Allow = nil
	l.apply(t, spec)
	r = l.synScan(t, l.p.AttackerIP4, l.p.VictimIP4, portRange(2000, 3000))
	if replies(r) > 4 {
		t.Errorf("after an Apply without allow entries: %d replies", replies(r))
	}
}

// TestFirstStrikeDaemonBanForget: the daemon's ban of a struck key
// replaces the kernel's, with the daemon's timeout and origin; a shorter
// decision replaces it; Forget clears the counting state.
func TestFirstStrikeDaemonBanForget(t *testing.T) {
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{synRule(5)}, Provisional: 10 * time.Minute})
	key := netip.PrefixFrom(l.p.AttackerIP4, 32)
	src, dst := l.p.AttackerIP4, l.p.VictimIP4

	if r := l.synScan(t, src, dst, portRange(100, 199)); replies(r) > 4 {
		t.Fatalf("%d replies", replies(r))
	}
	if b := l.bansOf(t)[key]; b.Origin != OriginKernel || b.Timeout != 10*time.Minute {
		t.Fatalf("after the strike: %+v", b)
	}
	// The kernel's ban is provisional: the daemon's decision replaces it,
	// even a shorter one.
	if err := l.tbl.Ban(key, time.Minute); err != nil {
		t.Fatal(err)
	}
	if b := l.bansOf(t)[key]; b.Origin != OriginDaemon || b.Timeout != time.Minute {
		t.Errorf("after a 1m daemon ban: %+v, want the daemon's 1m", b)
	}
	// A daemon ban is never shortened by a later, shorter one.
	if err := l.tbl.Ban(key, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if b := l.bansOf(t)[key]; b.Timeout != time.Minute {
		t.Errorf("after a 30s ban over the 1m one: %+v, want 1m kept", b)
	}
	if err := l.tbl.Ban(key, time.Hour); err != nil {
		t.Fatal(err)
	}
	b := l.bansOf(t)[key]
	t.Logf("MEASURE after Table.Ban(%s, 1h): %+v", key, b)
	if b.Origin != OriginDaemon || b.Timeout != time.Hour || b.Expires < 59*time.Minute {
		t.Errorf("after a 1h daemon ban: %+v", b)
	}
	// The fast path (a key the record does not know) also takes over a
	// kernel ban.
	key6 := netip.MustParsePrefix("2001:db8:51::/64")
	if r := l.synScan(t, l.p.AttackerIP6, l.p.VictimIP6, portRange(100, 199)); replies(r) > 4 {
		t.Fatalf("%d replies", replies(r))
	}
	if b := l.bansOf(t)[key6]; b.Origin != OriginKernel {
		t.Errorf("v6 strike: %+v", b)
	}
	mustBan(t, l.tbl, key6.String(), time.Hour)
	if b := l.bansOf(t)[key6]; b.Origin != OriginDaemon || b.Timeout != time.Hour {
		t.Errorf("v6 after a daemon ban: %+v", b)
	}
	if _, err := l.tbl.Unblock(key6); err != nil {
		t.Fatal(err)
	}
	if n := setLen(t, l.p.Victim.Fd(), SetStrike6); n != 0 {
		t.Errorf("Unblock left %d elements in strike6", n)
	}

	// Unblock alone: the empty bucket strikes at the next new port.
	if _, err := l.tbl.Unblock(key); err != nil {
		t.Fatal(err)
	}
	r := l.synScan(t, src, dst, []uint16{300})
	_, struck := l.bansOf(t)[key]
	t.Logf("MEASURE unblock without Forget, 1 new port: %d replies, struck again %v", replies(r), struck)
	if !struck {
		t.Errorf("stale state did not strike (the test's premise)")
	}
	// Unblock and Forget: two new ports are fine, a fresh 5-port scan is not.
	if _, err := l.tbl.Unblock(key); err != nil {
		t.Fatal(err)
	}
	if err := l.tbl.Forget(key); err != nil {
		t.Fatal(err)
	}
	if n := setLen(t, l.p.Victim.Fd(), "fs0_probes4"); n != 0 {
		t.Errorf("Forget left %d probe elements", n)
	}
	r = l.synScan(t, src, dst, []uint16{400, 401})
	_, struck = l.bansOf(t)[key]
	t.Logf("MEASURE unblock + Forget, 2 new ports: %d replies, struck %v", replies(r), struck)
	if struck || replies(r) != 2 {
		t.Errorf("after Forget 2 new ports: %d replies, struck %v; want 2 and no strike", replies(r), struck)
	}
	r = l.synScan(t, src, dst, portRange(500, 504))
	_, struck = l.bansOf(t)[key]
	if !struck || replies(r) != 2 {
		t.Errorf("after Forget and 2 ports, 5 more: %d replies, struck %v; want 2 (4 in all) and a strike", replies(r), struck)
	}
}

// TestFirstStrikeApplyRemove: Apply twice is one copy; a changed
// configuration drops the old rules' chains and sets; an Apply without
// first strike deletes only first strike's objects, and the listen sets
// only once advanced mode is gone too.
func TestFirstStrikeApplyRemove(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	adv := advancedTestConfig()
	base := TableSpec{ManageChain: true, Advanced: &adv}
	tbl := openTableFd(t, p.Victim.Fd(), base)
	mustBan(t, tbl, "192.0.2.9/32", time.Hour)
	// The table as nft lists it, the bans' time left blanked.
	table := func() string {
		return expiresRE.ReplaceAllString(nftList(t, p.Victim.Name, "table", "inet", "sentry"), "expires X")
	}
	before := table()

	fsCfg := FirstStrikeConfig{Group: 7, MaxPerMinute: 60,
		Rules: []FirstStrikeRule{synRule(5), {Proto: 17, Hits: 1, Ports: []rules.PortRange{{Lo: 161, Hi: 162}}}}}
	spec := base
	spec.FirstStrike = &fsCfg
	if err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	once := table()
	if err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if twice := table(); twice != once {
		t.Errorf("second Apply changed the table:\n%s\nwas\n%s", twice, once)
	}
	t.Logf("MEASURE nft list table inet sentry:\n%s", once)
	for _, want := range []string{
		// The SYN class, exactly the combinations the engine classifies so.
		"tcp flags & (fin | syn | rst | psh | ack | urg) == { syn | psh | urg, syn | urg, syn | psh, syn } ct state invalid,new jump fs0",
		// A window that starts at the first probe and does not slide or
		// refill: the 5th distinct port within it strikes.
		"ip saddr . th dport != @fs0_probes4 add @fs0_probes4 { ip saddr . th dport timeout 1m } add @fs0_rate4 { ip saddr timeout 1m limit rate over 1/week burst 4 packets } jump strike",
		`ip saddr . th dport != @fs0_probes4 counter packets 0 bytes 0 log prefix "SENTRY-FS-FULL" group 7 snaplen 128 drop`,
		"ct state new udp dport { 161-162 } jump fs1",
		"limit rate over 60/minute burst 60 packets counter packets 0 bytes 0 return",
		"add @blocked4 { ip saddr timeout 1m } counter",
		"add @strike6 { ip6 saddr & ffff:ffff:ffff:ffff:: timeout 1m } counter",
		`log prefix "SENTRY-FS" group 7 snaplen 128 drop`,
		"ip6 saddr & ffff:ffff:ffff:ffff:: == @strike6 ip6 saddr != @allow6 counter packets 0 bytes 0 drop",
		"type filter hook input priority filter - 7; policy accept;",
	} {
		if strings.Count(once, want) != 1 {
			t.Errorf("table has %d copies of %q", strings.Count(once, want), want)
		}
	}
	if m := missing(t, tbl); len(m) != 0 {
		t.Errorf("Missing = %v", m)
	}

	// A configuration with one rule fewer drops fs1 and its sets.
	fewer := fsCfg
	fewer.Rules = fsCfg.Rules[:1]
	spec.FirstStrike = &fewer
	if err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if now := nftList(t, p.Victim.Name, "table", "inet", "sentry"); strings.Contains(now, "fs1") {
		t.Errorf("fs1 left after a shorter configuration:\n%s", now)
	}

	for range 2 {
		if err := tbl.Apply(base); err != nil {
			t.Fatal(err)
		}
	}
	after := table()
	if after != before {
		t.Errorf("after removing first strike:\n%s\nwant as before it:\n%s", after, before)
	}
	for _, gone := range []string{"fs0", "chain strike", "firststrike"} {
		if strings.Contains(after, gone) {
			t.Errorf("after removing first strike %q is left:\n%s", gone, after)
		}
	}
	for _, kept := range []string{"set listen_tcp", "set listen_udp", "chain advanced"} {
		if !strings.Contains(after, kept) {
			t.Errorf("removing first strike took %q, which advanced mode uses:\n%s", kept, after)
		}
	}
	wantOnly(t, tbl, map[string][2]time.Duration{"192.0.2.9/32": {59 * time.Minute, time.Hour}})
	// With advanced mode gone too, the listen sets go.
	spec.Advanced = nil
	if err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Apply(TableSpec{ManageChain: true}); err != nil {
		t.Fatal(err)
	}
	after = nftList(t, p.Victim.Name, "table", "inet", "sentry")
	for _, gone := range []string{"listen_", "fs0", "chain strike", "firststrike", "advanced", "watch_"} {
		if strings.Contains(after, gone) {
			t.Errorf("after removing first strike and advanced mode %q is left:\n%s", gone, after)
		}
	}
	if m := missing(t, tbl); len(m) != 0 {
		t.Errorf("Missing after removing = %v", m)
	}
	wantOnly(t, tbl, map[string][2]time.Duration{"192.0.2.9/32": {59 * time.Minute, time.Hour}})
}

// rawFlood sends SYNs from count distinct spoofed sources in 100.64.0.0/10
// (ports ports each) to dst through an IP_HDRINCL socket, for at most
// limit. It returns the packets sent.
func rawFlood(p *netnstest.Pair, dst netip.Addr, count, ports int, limit time.Duration) (int, time.Duration, error) {
	sent := 0
	start := time.Now()
	err := p.Attacker.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.As4()}
		pkt := make([]byte, 40)
		d := dst.As4()
		for i := range count {
			if time.Since(start) > limit {
				break
			}
			// Odd multiplier modulo 2^22: distinct addresses in the /10.
			off := uint32(i) * 2654435761 % (1 << 22)
			src := binary.BigEndian.Uint32([]byte{100, 64, 0, 0}) + off
			for k := range ports {
				buildSYN(pkt, src, d, uint16(40000+rand.N(20000)), uint16(1+k))
				if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
					if err == unix.ENOBUFS {
						continue
					}
					return err
				}
				sent++
			}
		}
		return nil
	})
	return sent, time.Since(start), err
}

func buildSYN(b []byte, src uint32, dst [4]byte, sport, dport uint16) {
	clear(b)
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(b[2:], 40)
	binary.BigEndian.PutUint32(b[12:], src)
	copy(b[16:20], dst[:])
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], rand.Uint32())
	t[12], t[13] = 5<<4, tcpSYN
	binary.BigEndian.PutUint16(t[14:], 1024)
	// Checksum over the pseudo-header and the segment.
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	s += unix.IPPROTO_TCP + 20
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(t[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(t[16:], ^uint16(s))
	// The kernel fills in the IP checksum (and the ID) with IP_HDRINCL.
}

// meminfo returns /proc/meminfo fields in KiB.
func meminfo(t *testing.T, keys ...string) map[string]int {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && slices.Contains(keys, strings.TrimSuffix(f[0], ":")) {
			m[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[1])
		}
	}
	return m
}

// TestFirstStrikeSpoofedFlood: spoofed sources each over the threshold are
// struck at most as fast as the valve allows, and the counting sets stay
// within SetSize under a million sources.
func TestFirstStrikeSpoofedFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for up to two minutes")
	}
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{synRule(5)}, MaxPerMinute: 60})
	fd := l.p.Victim.Fd()
	// Replies to the spoofed sources go back to the attacker through one
	// neighbour; conntrack entries of the flood die within a second.
	l.p.Victim.Run(t, "ip", "route", "add", "100.64.0.0/10", "via", l.p.AttackerIP4.String())
	for _, k := range []string{"tcp_timeout_close", "tcp_timeout_syn_recv", "tcp_timeout_syn_sent"} {
		l.p.Victim.Run(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_"+k+"=1")
	}

	sent, took, err := rawFlood(l.p, l.p.VictimIP4, 100_000, 5, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n4 := setLen(t, fd, Set4)
	c := counters(t, l.p.Victim.Name, "chain", "inet", "sentry", StrikeChain)
	allowance := 60 + int(60*took.Minutes()+1)
	t.Logf("MEASURE spoofed flood: %d SYNs from 100,000 sources (5 ports each) in %v (%.0f/s); blocked4 %d elements (valve allowance 60 burst + 60/min = %d); strike chain counters [valve-suppressed, struck4, struck6, logged] %v; fs0_rate4 %d, fs0_probes4 %d elements",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), n4, allowance, c, setLen(t, fd, "fs0_rate4"), setLen(t, fd, "fs0_probes4"))
	if n4 > allowance {
		t.Errorf("blocked4 holds %d elements, over the valve's %d", n4, allowance)
	}
	// The attacker's own probes are still struck only when the valve has room:
	// it has none now, so a scan goes on to the user's rules.
	r := l.synScan(t, l.p.AttackerIP4, l.p.VictimIP4, portRange(1, 100))
	t.Logf("MEASURE real scan 1-100 right after the flood (valve empty): %d replies", replies(r))

	// A million sources, one SYN each, with a fresh first strike (empty
	// sets: made anew after an Apply without it) and no valve: memory is
	// bounded by SetSize.
	without := l.spec
	without.FirstStrike = nil
	l.apply(t, without)
	l.apply(t, l.spec)
	keys := []string{"Slab", "SUnreclaim", "MemAvailable", "Percpu"}
	m0 := meminfo(t, keys...)
	sent, took, err = rawFlood(l.p, l.p.VictimIP4, 1_000_000, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m1 := meminfo(t, keys...)
	np, nr := setLen(t, fd, "fs0_probes4"), setLen(t, fd, "fs0_rate4")
	// Conntrack entries of the flood (1 s timeouts) leave within seconds;
	// the set elements stay for the window (60 s).
	time.Sleep(3 * time.Second)
	m2 := meminfo(t, keys...)
	l.apply(t, without)
	time.Sleep(2 * time.Second) // set destruction is RCU-deferred
	m3 := meminfo(t, keys...)
	t.Logf("MEASURE 1,000,000 spoofed sources: %d SYNs in %v (%.0f/s); fs0_probes4 %d, fs0_rate4 %d elements (SetSize 65536)",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), np, nr)
	t.Logf("MEASURE meminfo KiB before %v, right after %v, +3s %v, after removing %v; Slab held by the two full sets (after conntrack drained, minus after removing): %d KiB",
		m0, m1, m2, m3, m2["Slab"]-m3["Slab"])
	if np > 65536 || nr > 65536 {
		t.Errorf("sets over SetSize: probes %d rate %d", np, nr)
	}
}
