//go:build linux && measure

// The measurements behind the numbers in the README and the closing notes.
// They take minutes and print rather than assert, so they are built only
// with the measure tag:
//
//	make measure    (go test -tags measure -run Measure -v ./e2e ./sources ./actions)

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

func (l *lab) writeConfig(yaml string) {
	if err := os.WriteFile(l.cfg, []byte(yaml), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// TestMeasureReaction bans 400 sources one tripwire probe each, 20 ms
// apart, and reads the daemon's reaction percentiles: from the kernel's
// timestamp of the probe to the element in the set.
func TestMeasureReaction(t *testing.T) {
	l := newLab(t, "1h")
	l.writeConfig(configYAML(l.dir+"/state", "1h") + "bans: {max_new_per_minute: 0, single_packet: {max_new_per_minute: 0}}\n")
	d := l.startDaemon()
	var srcs []netip.Addr
	for _, net := range []string{"203.0.113.", "192.0.2."} {
		for i := 1; i <= 200; i++ {
			srcs = append(srcs, netip.MustParseAddr(net+strconv.Itoa(i)))
		}
	}
	l.pair.AddAttackerAddrs(t, srcs...)
	for _, src := range srcs {
		if err := l.pair.Attacker.Do(func() error {
			return scanner.RawProbe(context.Background(), src, l.pair.VictimIP4, 31337, scanner.FIN)
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	h := lastHealth(d)
	t.Logf("bans %s, reaction p50 %s p99 %s (kernel timestamp -> ban in the kernel)", h["decisions_ban"], h["reaction_p50"], h["reaction_p99"])
	if h["decisions_ban"] != strconv.Itoa(len(srcs)) {
		t.Errorf("%s bans, want %d: the percentiles are not over every source", h["decisions_ban"], len(srcs))
	}
}

// TestMeasureThroughput raises a bounded UDP flood from the attacker until
// the daemon loses events: loss is the victim's log-rule counter minus the
// events the daemon read.
func TestMeasureThroughput(t *testing.T) {
	l := newLab(t, "1h")
	// Only a TCP rule: the flood's UDP events go through the engine but ban
	// nobody, so the flood keeps being logged.
	l.writeConfig(fmt.Sprintf("state_dir: %s/state\nrules:\n  - {name: tcp-portscan, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: 1h}\n", l.dir))
	d := l.startDaemon()
	for _, rate := range []int{50000, 100000, 150000, 200000, 250000, 300000, 0} {
		before := logCounter(t, l)
		beforeEvents := healthEvents(d)
		sent, elapsed := flood(t, l, rate, 3*time.Second)
		time.Sleep(2500 * time.Millisecond) // two health lines
		logged := logCounter(t, l) - before
		read := healthEvents(d) - beforeEvents
		h := lastHealth(d)
		t.Logf("target %6d/s: sent %7d in %s (%.0f/s), logged %7d, read %7d, lost %d, overruns %s",
			rate, sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), logged, read, int64(logged)-int64(read), h["overruns"])
		if logged == 0 || read == 0 {
			t.Errorf("target %d/s: logged %d, read %d: the flood measured nothing", rate, logged, read)
		}
	}
}

// logCounter sums the packets counted by the victim's UDP log rule.
func logCounter(t *testing.T, l *lab) uint64 {
	out := l.pair.Victim.Run(t, "nft", "-j", "list", "table", "inet", "host")
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var r struct {
			Expr []map[string]json.RawMessage `json:"expr"`
		}
		json.Unmarshal(raw, &r)
		isLog := false
		var packets uint64
		for _, e := range r.Expr {
			if _, ok := e["log"]; ok {
				isLog = true
			}
			if c, ok := e["counter"]; ok {
				var cv struct{ Packets uint64 }
				json.Unmarshal(c, &cv)
				packets = cv.Packets
			}
		}
		if isLog {
			total += packets
		}
	}
	return total
}

// flood sends small UDP datagrams to a closed port of the victim at rate
// per second (0: as fast as possible) for d, bounded in count and time.
func flood(t *testing.T, l *lab, rate int, d time.Duration) (int, time.Duration) {
	var sent int
	var elapsed time.Duration
	err := l.pair.Attacker.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.pair.VictimIP4, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		payload := make([]byte, 32)
		start := time.Now()
		max := 400000 * int(d/time.Second)
		if rate > 0 {
			max = rate * int(d/time.Second)
		}
		for sent < max {
			if time.Since(start) > d+time.Second {
				break
			}
			if rate > 0 {
				// Pace in batches of 100 against the schedule.
				if due := time.Duration(sent) * time.Second / time.Duration(rate); time.Since(start) < due {
					time.Sleep(due - time.Since(start))
				}
			}
			for i := 0; i < 100 && sent < max; i++ {
				c.Write(payload) // ICMP port unreachable errors come back as write errors: ignore
				sent++
			}
		}
		elapsed = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sent, elapsed
}

// TestMeasureScannerLearns runs full-range fast SYN scans (IPv4, IPv6) and
// a UDP scan of 1-1000 against the victim with the default rules, with and
// without the kernel's first strike, and counts what the scanner learned
// before the ban landed.
func TestMeasureScannerLearns(t *testing.T) {
	for _, fs := range []bool{true, false} {
		l := newLab(t, "1h")
		if !fs {
			cfg, _ := os.ReadFile(l.cfg)
			l.writeConfig(string(cfg) + "first_strike: {enabled: false}\n")
		}
		count := l.dir + "/count.nft"
		os.WriteFile(count, []byte("table inet count {\n chain out {\n  type filter hook output priority 0; policy accept;\n  icmp type destination-unreachable counter\n }\n}\n"), 0o644)
		l.pair.Victim.Run(t, "nft", "-f", count)
		d := l.startDaemon()
		src6 := netip.MustParseAddr("2001:db8:bad:7::5")
		udpSrc := netip.MustParseAddr("198.51.100.9")
		l.pair.AddAttackerAddrs(t, src6, udpSrc)
		for _, tc := range []struct{ src, dst netip.Addr }{{l.pair.AttackerIP4, l.pair.VictimIP4}, {src6, l.pair.VictimIP6}} {
			r := l.synScan(tc.src, tc.dst, ports(1, 65535))
			t.Logf("first strike %v: SYN scan of %s 1-65535: sent %d in %s; learned %d closed ports (%d RST), open %v (%d SYN-ACK)",
				fs, tc.dst, r.Sent, r.Sending.Round(time.Millisecond), len(r.Closed), r.Resets, r.Open, r.SynAcks)
		}
		if err := l.pair.Attacker.Do(func() error {
			return scanner.UDPProbe(context.Background(), udpSrc, l.pair.VictimIP4, ports(1, 1000))
		}); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t, "action=ban", "source="+udpSrc.String())
		t.Logf("first strike %v: UDP probes of 1-1000: %d port-unreachable answers", fs,
			counterPackets(l.pair.Victim.Run(t, "nft", "list", "chain", "inet", "count", "out")))
	}
}

// TestMeasureNmap counts, with counters on the victim's output, the RST
// and SYN-ACK replies nmap -sS -T4 -p 1-65535 got before the ban landed.
// It needs nmap (apt-get install nmap); nmap runs at most 20 s.
func TestMeasureNmap(t *testing.T) {
	testkit.Need(t, "nmap")
	for _, fs := range []bool{true, false} {
		measureNmap(t, fs)
	}
}

func measureNmap(t *testing.T, fs bool) {
	l := newLab(t, "1h")
	if !fs {
		cfg, _ := os.ReadFile(l.cfg)
		l.writeConfig(string(cfg) + "first_strike: {enabled: false}\n")
	}
	d := l.startDaemon()
	count := l.dir + "/count.nft"
	os.WriteFile(count, []byte(`table inet count {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp flags & (syn | ack) == syn | ack counter
		tcp flags & rst == rst counter
	}
}
`), 0o644)
	l.pair.Victim.Run(t, "nft", "-f", count)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l.pair.Attacker.Command(ctx, "nmap", "-n", "-Pn", "-sS", "-T4", "-p", "1-65535", l.pair.VictimIP4.String()).Run()
	d.waitLog(t, "action=ban")
	out := l.pair.Victim.Run(t, "nft", "list", "chain", "inet", "count", "out")
	t.Logf("first strike %v: replies the victim sent to nmap -sS -T4 -p 1-65535 (SYN-ACK first, RST second):\n%s", fs, out)
}
