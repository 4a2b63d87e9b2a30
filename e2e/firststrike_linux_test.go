//go:build linux

package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
)

// synScan runs a full-speed SYN scan from src and returns what it learned.
func (l *lab) synScan(src, dst netip.Addr, ps []uint16) scanner.Replies {
	l.t.Helper()
	var r scanner.Replies
	if err := l.pair.Attacker.Do(func() error {
		var err error
		r, err = scanner.SYNScan(context.Background(), src, dst, ps, 0)
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	return r
}

// inFlight is the slack for probes already past the strike chain when the
// kernel ban landed: none on this kernel, where the strike is synchronous,
// but a retransmitted SYN-ACK or RST may be counted twice.
const inFlight = 2

func TestFirstStrikeLimitsWhatAScannerLearns(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	// An IPv6 scanner in a /64 of its own (the pair's /64 holds the
	// victim, whose address is never banned, so a key there narrows to
	// the single address).
	src6 := netip.MustParseAddr("2001:db8:bad:7::5")
	p.AddAttackerAddrs(t, src6)
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"IPv4", p.AttackerIP4, p.VictimIP4},
		{"IPv6", src6, p.VictimIP6},
	} {
		r := l.synScan(tc.src, tc.dst, ports(1, 65535))
		learned := r.Resets + r.SynAcks
		t.Logf("%s: %d SYNs, learned %d closed ports, open %v (%d RST, %d SYN-ACK)", tc.name, r.Sent, len(r.Closed), r.Open, r.Resets, r.SynAcks)
		if learned > 4+inFlight || len(r.Open) > 0 {
			t.Errorf("%s: the scanner learned %d answers and open ports %v; a 5-port threshold allows 4", tc.name, learned, r.Open)
		}
	}
	// The provisional kernel bans become the rule's bans.
	key4 := p.AttackerIP4.String() + "/32"
	key6 := "2001:db8:bad:7::/64"
	banLine(t, d, key4)
	banLine(t, d, key6)
	ls := l.list()
	for _, b := range ls.Bans {
		if (b.Source == key4 || b.Source == key6) && (b.BanSeconds != 3600 || b.Origin != "daemon") {
			t.Errorf("ban %+v, want the rule's 1h ban by the daemon", b)
		}
	}
}

func TestFirstStrikeUDP(t *testing.T) {
	l := newLab(t, "1h")
	// Count the port-unreachable answers the victim sends.
	count := l.dir + "/count.nft"
	os.WriteFile(count, []byte("table inet count {\n chain out {\n  type filter hook output priority 0; policy accept;\n  icmp type destination-unreachable counter\n }\n}\n"), 0o644)
	l.pair.Victim.Run(t, "nft", "-f", count)
	d := l.startDaemon()
	p := l.pair
	if err := p.Attacker.Do(func() error {
		return scanner.UDPProbe(context.Background(), p.AttackerIP4, p.VictimIP4, ports(1, 1000))
	}); err != nil {
		t.Fatal(err)
	}
	banLine(t, d, p.AttackerIP4.String()+"/32")
	out := p.Victim.Run(t, "nft", "list", "chain", "inet", "count", "out")
	n := counterPackets(out)
	t.Logf("UDP probes of 1-1000: %d port-unreachable answers", n)
	if n > 4+inFlight {
		t.Errorf("%d answers to a UDP scan; a 5-port threshold allows 4", n)
	}
}

func counterPackets(nft string) int {
	i := strings.Index(nft, "counter packets ")
	if i < 0 {
		return -1
	}
	var n int
	for _, c := range nft[i+len("counter packets "):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func TestFirstStrikeNeverStrikesIgnored(t *testing.T) {
	l := newLab(t, "1h", "198.51.100.2")
	d := l.startDaemon()
	p := l.pair
	r := l.synScan(p.AttackerIP4, p.VictimIP4, ports(1, 1000))
	if got := len(r.Closed) + len(r.Open); got != 1000 {
		t.Errorf("the ignore-listed scanner learned %d of 1000 ports: it was struck", got)
	}
	d.waitLog(t, "action=ignored", "source=198.51.100.2/32")
	if ls := l.list(); len(ls.Bans) != 0 {
		t.Errorf("bans: %+v, want none", ls.Bans)
	}
}

func TestFirstStrikeUnblockedIsNotStruckByStaleState(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	r := l.synScan(p.AttackerIP4, p.VictimIP4, ports(1, 100))
	if len(r.Closed) > 4+inFlight {
		t.Fatalf("learned %d", len(r.Closed))
	}
	key := p.AttackerIP4.String() + "/32"
	banLine(t, d, key)
	p.Victim.Run(t, bin, "unblock", "--config", l.cfg, p.AttackerIP4.String())
	d.waitLog(t, "msg=pardoned", "source="+key)
	// Two new ports: the kernel's old count must not strike again.
	r = l.synScan(p.AttackerIP4, p.VictimIP4, []uint16{200, 201})
	if len(r.Closed) != 2 {
		t.Errorf("after unblock, 2 new ports answered %d times: struck by stale kernel state", len(r.Closed))
	}
	if l.list().has(key) {
		t.Error("banned again after unblock by two probes")
	}
}
