//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
)

// The fleet tests: hosts in namespaces on one segment, each running
// `sentry-nflog run` with a fleet section, and the real nats-server (one,
// or a cluster of three) in namespaces of their own.

// fleetHost is one host of a fleet: a lab whose "attacker" is the
// segment's scanner.
type fleetHost struct {
	*lab
	name string
	host *netnstest.Host
	d    *daemon
}

// newFleetHost sets up host h as a lab (firewall, service, config) with a
// fleet section naming it name, served by urls, with extra fleet keys.
func newFleetHost(t *testing.T, name string, h, attacker *netnstest.Host, urls []string, extra string) *fleetHost {
	t.Helper()
	pair := &netnstest.Pair{Victim: h.NS, Attacker: attacker.NS, VictimIf: h.If, AttackerIf: attacker.If,
		VictimIP4: h.IP4, AttackerIP4: attacker.IP4, VictimIP6: h.IP6, AttackerIP6: attacker.IP6}
	l := newLabOn(t, pair, "1h")
	f, err := os.OpenFile(l.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "fleet:\n  servers: [%s]\n  name: %s\n%s", strings.Join(urls, ", "), name, extra)
	f.Close()
	return &fleetHost{lab: l, name: name, host: h}
}

func (fh *fleetHost) start() *fleetHost {
	fh.t.Helper()
	fh.d = fh.startDaemon()
	return fh
}

// ban returns the host's ban of key, from `list --json`.
func (fh *fleetHost) ban(key string) (left int64, origin string, ok bool) {
	for _, b := range fh.list().Bans {
		if b.Source == key {
			return b.LeftSeconds, b.Origin, true
		}
	}
	return 0, "", false
}

// waitBan waits up to within for key in the host's sets, from origin.
func (fh *fleetHost) waitBan(t *testing.T, key, origin string, within time.Duration) (left int64, took time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		left, o, ok := fh.ban(key)
		if ok && o == origin {
			return left, time.Since(start)
		}
		if ok {
			t.Fatalf("%s: %s banned by %s, want %s", fh.name, key, o, origin)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: %s not banned within %v; log:\n%s", fh.name, key, within, fh.d.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scanFrom has the scanner probe five closed ports of fh from src.
func (fh *fleetHost) scanFrom(t *testing.T, src netip.Addr) {
	t.Helper()
	fh.connectScan(src, fh.host.IP4, ports(20, 24)...)
	fh.d.waitLog(t, "action=ban", "source="+src.String()+"/32")
}

// requireFleetTools is requireTools plus the nats-server binary.
func requireFleetTools(t *testing.T) {
	t.Helper()
	requireTools(t)
	natsServerBin(t)
}

// TestFleet runs three hosts and one server through the fleet's life: a
// scan of A dropped on B and C, B's own gateway not
// banned on B, exactly one outbound connection and no listener, a
// restart of B (its table gone, as after a reboot) restoring the remote
// bans, C partitioned for 10 s catching up with the remaining times, and
// the server killed and restarted losing nothing.
func TestFleet(t *testing.T) {
	requireFleetTools(t)
	lan := netnstest.NewLAN(t, 5)
	srvHost, attacker := lan.Hosts[0], lan.Hosts[4]
	x := []netip.Addr{netip.MustParseAddr("203.0.113.21"), netip.MustParseAddr("203.0.113.22"), netip.MustParseAddr("203.0.113.23"),
		netip.MustParseAddr("203.0.113.24")}
	attacker.AddAddrs(t, x...)
	// The scanner is B's default gateway.
	lan.Hosts[2].Run(t, "ip", "route", "add", "default", "via", attacker.IP4.String())
	srv := startNats(t, "s0", srvHost, "")
	urls := []string{srv.url()}
	a := newFleetHost(t, "a", lan.Hosts[1], attacker, urls, "").start()
	b := newFleetHost(t, "b", lan.Hosts[2], attacker, urls, "").start()
	c := newFleetHost(t, "c", lan.Hosts[3], attacker, urls, "").start()
	for _, h := range []*fleetHost{a, b, c} {
		h.d.waitLog(t, `msg="fleet: receiving bans"`)
	}
	key := func(ad netip.Addr) string { return ad.String() + "/32" }

	t.Run("scan of A dropped on B and C", func(t *testing.T) {
		a.connectScan(x[0], a.host.IP4, ports(20, 24)...)
		scanned := time.Now()
		// How soon is measured (make measure: TestMeasureFleetPropagation)
		// and logged here, not asserted: the waits are bounded.
		for _, h := range []*fleetHost{b, c} {
			_, _ = h.waitBan(t, key(x[0]), "fleet:a", 5*time.Second)
			t.Logf("MEASURE %s: the ban was in its set %v after the scan", h.name, time.Since(scanned).Round(time.Millisecond))
		}
		for _, h := range []*fleetHost{b, c} {
			if st := h.connect(x[0], h.host.IP4); st == scanner.Open {
				t.Errorf("%s: the scanner still reaches the service", h.name)
			}
			line := h.d.waitLog(t, `msg="fleet: applied a remote ban"`, "source="+key(x[0]), "origin=a")
			t.Logf("%s: %s", h.name, line[strings.Index(line, "source="):])
		}
		if _, origin, _ := a.ban(key(x[0])); origin != "daemon" {
			t.Errorf("a: origin %q of its own ban, want daemon", origin)
		}
		text := b.pair.Victim.Run(t, bin, "list", "--config", b.cfg)
		if !strings.Contains(text, key(x[0])) || !strings.Contains(text, "fleet:a") {
			t.Errorf("list on b:\n%s", text)
		}
		fl := b.pair.Victim.Run(t, bin, "list", "--fleet", "--config", b.cfg)
		if !strings.Contains(fl, key(x[0])) || !strings.Contains(fl, "tcp-portscan") {
			t.Errorf("list --fleet on b:\n%s", fl)
		}
	})

	t.Run("B's own gateway banned by A is not applied on B", func(t *testing.T) {
		gw := attacker.IP4
		a.scanFrom(t, gw)
		c.waitBan(t, key(gw), "fleet:a", 5*time.Second)
		b.d.waitLog(t, `msg="fleet: refused a remote ban"`, "reason=ignored", "source="+key(gw), "origin=a")
		if _, _, ok := b.ban(key(gw)); ok {
			t.Errorf("b banned its own gateway")
		}
		if st := b.connect(gw, b.host.IP4); st != scanner.Open {
			t.Errorf("b: its gateway lost the service: %v", st)
		}
	})

	t.Run("fleet mode opens one outbound connection and no listener", func(t *testing.T) {
		pid := a.d.cmd.Process.Pid
		socks := socketInodes(t, pid)
		netlink := procInodes(t, fmt.Sprintf("/proc/%d/net/netlink", pid), 9)
		unix := procInodes(t, fmt.Sprintf("/proc/%d/net/unix", pid), 6)
		var tcp []string
		for _, table := range []string{"tcp", "tcp6"} {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
			for i, line := range strings.Split(string(data), "\n") {
				f := strings.Fields(line)
				if i == 0 || len(f) < 10 || !socks[f[9]] {
					continue
				}
				if f[3] == "0A" {
					t.Errorf("the daemon listens: %s", line)
				}
				tcp = append(tcp, f[9])
				if f[3] != "01" || !strings.HasSuffix(f[2], fmt.Sprintf(":%04X", 4222)) {
					t.Errorf("a TCP socket not established to the server's port: %s", line)
				}
			}
		}
		for _, table := range []string{"udp", "udp6", "raw", "raw6"} {
			for ino := range procInodes(t, fmt.Sprintf("/proc/%d/net/%s", pid, table), 9) {
				if socks[ino] {
					t.Errorf("the daemon holds a %s socket", table)
				}
			}
		}
		if len(tcp) != 1 {
			t.Errorf("%d TCP sockets, want exactly 1", len(tcp))
		}
		for ino := range socks {
			if !netlink[ino] && !unix[ino] && (len(tcp) == 0 || ino != tcp[0]) {
				t.Errorf("socket %s is neither netlink nor the server connection", ino)
			}
		}
	})

	t.Run("daemon restart on B restores remote bans", func(t *testing.T) {
		if err := b.d.stop(); err != nil {
			t.Fatal(err)
		}
		// As after a reboot: the sets are gone with the table.
		b.pair.Victim.Run(t, "nft", "delete", "table", "inet", "sentry")
		b.start()
		left, _ := b.waitBan(t, key(x[0]), "fleet:a", 10*time.Second)
		if left > 3600 || left < 3500 {
			t.Errorf("restored with %ds left, want the remaining time of a 1h ban", left)
		}
		if _, _, ok := b.ban(key(attacker.IP4)); ok {
			t.Error("the gateway's ban was applied at the restart")
		}
		b.d.waitLog(t, `msg="fleet: caught up"`)
	})

	t.Run("C partitioned 10s then catches up", func(t *testing.T) {
		c.host.Cut(t)
		cut := time.Now()
		a.scanFrom(t, x[1])
		b.waitBan(t, key(x[1]), "fleet:a", 5*time.Second)
		decided := time.Now()
		c.d.waitLog(t, `msg="fleet: disconnected; banning locally, publishing once reconnected"`)
		t.Logf("c noticed the partition after %v", time.Since(cut).Round(100*time.Millisecond))
		if _, _, ok := c.ban(key(x[1])); ok {
			t.Fatal("c got the ban through the partition")
		}
		time.Sleep(time.Until(cut.Add(10 * time.Second)))
		c.host.Mend(t)
		left, took := c.waitBan(t, key(x[1]), "fleet:a", 20*time.Second)
		t.Logf("c caught up %v after the mend", took.Round(100*time.Millisecond))
		want := int64((time.Hour - time.Since(decided)) / time.Second)
		if left > want+2 || left < want-5 {
			t.Errorf("c holds %ds, want the remaining %ds", left, want)
		}
		logs := c.d.log()
		if n := strings.Count(logs, "fleet: disconnected"); n != 1 {
			t.Errorf("%d disconnection lines, want 1", n)
		}
		if n := strings.Count(logs, "fleet: reconnected"); n != 1 {
			t.Errorf("%d reconnection lines, want 1", n)
		}
	})

	t.Run("server SIGKILL and restart loses nothing", func(t *testing.T) {
		srv.kill()
		a.scanFrom(t, x[2]) // decided while the server is down
		time.Sleep(time.Second)
		srv.start()
		for _, h := range []*fleetHost{b, c} {
			h.waitBan(t, key(x[2]), "fleet:a", 20*time.Second)
		}
		var fl struct {
			Bans []struct {
				Source, Origin string
			} `json:"bans"`
		}
		out := c.pair.Victim.Run(t, bin, "list", "--fleet", "--json", "--config", c.cfg)
		if err := json.Unmarshal([]byte(out), &fl); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, m := range fl.Bans {
			have[m.Source] = m.Origin == "a"
		}
		for _, k := range []string{key(x[0]), key(attacker.IP4), key(x[1]), key(x[2])} {
			if !have[k] {
				t.Errorf("%s missing from the stream after the restart: %s", k, out)
			}
		}
		_, js := natsClient(t, srvHost.NS, urls)
		info := streamInfo(t, js)
		if info.State.Msgs != 4 || info.State.LastSeq != 4 {
			t.Errorf("stream: %d messages, last sequence %d; want 4 and 4 (each ban stored once)", info.State.Msgs, info.State.LastSeq)
		}
		if strings.Count(a.d.log(), "cannot publish") > 1 {
			t.Errorf("a logged the failing publish more than once:\n%s", a.d.log())
		}
	})

	t.Run("unblock --fleet lifts the ban on every host", func(t *testing.T) {
		out := c.pair.Victim.Run(t, bin, "unblock", "--fleet", "--config", c.cfg, x[0].String())
		if !strings.Contains(out, "unblocked "+key(x[0])) || !strings.Contains(out, "pardon published to the fleet as c") {
			t.Errorf("unblock --fleet on c: %s", out)
		}
		// a decided the ban: it lifts it and pardons its evidence.
		a.d.waitLog(t, `msg="fleet: pardoned"`, "source="+key(x[0]), "origin=c", "keys=1")
		b.d.waitLog(t, `msg="fleet: pardoned"`, "source="+key(x[0]), "origin=c")
		for _, h := range []*fleetHost{a, b, c} {
			if _, _, ok := h.ban(key(x[0])); ok {
				t.Errorf("%s still bans %s", h.name, key(x[0]))
			}
			if st := h.connect(x[0], h.host.IP4); st != scanner.Open {
				t.Errorf("%s: the pardoned source cannot reach the service: %v", h.name, st)
			}
		}
		if fl := c.pair.Victim.Run(t, bin, "list", "--fleet", "--config", c.cfg); !strings.Contains(fl, "(pardon)") {
			t.Errorf("list --fleet shows no pardon:\n%s", fl)
		}
	})

	t.Run("a ban A could not publish before a restart is published after it", func(t *testing.T) {
		_, js := natsClient(t, srvHost.NS, urls)
		before := streamInfo(t, js).State
		srv.kill()
		a.scanFrom(t, x[3]) // decided while the server is down
		if err := a.d.stop(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.d.log(), `msg="fleet: bans not published before stopping" count=1`) {
			t.Fatalf("a did not drop the ban at its stop:\n%s", a.d.log())
		}
		a.start()
		srv.start()
		for _, h := range []*fleetHost{b, c} {
			h.waitBan(t, key(x[3]), "fleet:a", 20*time.Second)
		}
		// Its other bans still in force (x[1], x[2], the gateway; x[0] was
		// pardoned) are in the stream already: left as they are.
		a.d.waitLog(t, `msg="fleet: bans from before the start published again where the stream had none"`, "published=1", "already_there=3")
		_, js = natsClient(t, srvHost.NS, urls)
		after := streamInfo(t, js).State
		if after.Msgs != before.Msgs+1 || after.LastSeq != before.LastSeq+1 {
			t.Errorf("stream: %d messages, last sequence %d; want %d and %d (the one ban added, nothing replaced)",
				after.Msgs, after.LastSeq, before.Msgs+1, before.LastSeq+1)
		}
	})
}

// TestFleetRemoteValve: a flood of bans forged by a host of the fleet is
// applied up to the remote valve, and no further.
func TestFleetRemoteValve(t *testing.T) {
	requireFleetTools(t)
	lan := netnstest.NewLAN(t, 3)
	srv := startNats(t, "s0", lan.Hosts[0], "")
	urls := []string{srv.url()}
	a := newFleetHost(t, "a", lan.Hosts[1], lan.Hosts[2], urls, "  max_remote_per_minute: 20\n").start()
	a.d.waitLog(t, `msg="fleet: receiving bans"`)
	_, js := natsClient(t, lan.Hosts[2].NS, urls)
	const flood = 200
	for i := range flood {
		k := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32)
		m := fleet.Message{Kind: fleet.KindBan, Origin: "forger", Key: k, Rule: "forged", Ban: time.Hour, Decided: time.Now(), Until: time.Now().Add(time.Hour)}
		data, _ := m.Encode()
		if _, err := js.Publish(context.Background(), fleet.Subject("sentry_bans", "forger", k), data, jetstream.WithMsgTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	a.d.waitLog(t, `msg="fleet: refused a remote ban"`, "reason=valve", "origin=forger")
	time.Sleep(time.Second)
	n := 0
	for _, b := range a.list().Bans {
		if b.Origin == "fleet:forger" {
			n++
		}
	}
	if n != 20 {
		t.Errorf("%d forged bans applied, want the valve's 20", n)
	}
	a.d.waitLog(t, "fleet_applied=20", "fleet_refused=180")
}

// TestFleetCredentials: with per-host credentials (nkeys allowed to
// publish only under their own origin) a host cannot publish under
// another's name, nor claim another origin under its own.
func TestFleetCredentials(t *testing.T) {
	requireFleetTools(t)
	lan := netnstest.NewLAN(t, 5)
	seeds := map[string]string{}
	var users []string
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c"} {
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		seeds[name] = filepath.Join(dir, name+".nk")
		os.WriteFile(seeds[name], seed, 0o600)
		users = append(users, fmt.Sprintf(`    {nkey: %s, permissions: {
      publish: {allow: ["sentry_bans.%[2]s.>", "$JS.API.STREAM.INFO.sentry_bans", "$JS.API.STREAM.CREATE.sentry_bans",
        "$JS.API.CONSUMER.CREATE.sentry_bans.>", "$JS.API.CONSUMER.DELETE.sentry_bans.>", "$JS.API.CONSUMER.MSG.NEXT.sentry_bans.>"]}
      subscribe: {allow: ["_INBOX.>"]}}}`, pub, name))
	}
	auth := "authorization: {\n  users: [\n" + strings.Join(users, "\n") + "\n  ]\n}\n"
	srv := startNats(t, "s0", lan.Hosts[0], auth)
	urls := []string{srv.url()}
	attacker := lan.Hosts[4]
	x1, x2 := netip.MustParseAddr("203.0.113.31"), netip.MustParseAddr("203.0.113.32")
	attacker.AddAddrs(t, x1, x2)
	a := newFleetHost(t, "a", lan.Hosts[1], attacker, urls, "  creds: "+seeds["a"]+"\n").start()
	// b holds a's credentials and says it is b.
	b := newFleetHost(t, "b", lan.Hosts[2], attacker, urls, "  creds: "+seeds["a"]+"\n").start()
	c := newFleetHost(t, "c", lan.Hosts[3], attacker, urls, "  creds: "+seeds["c"]+"\n").start()
	c.d.waitLog(t, `msg="fleet: receiving bans"`)

	a.scanFrom(t, x1)
	c.waitBan(t, x1.String()+"/32", "fleet:a", 5*time.Second)

	b.scanFrom(t, x2)
	b.d.waitLog(t, `msg="fleet: server reported an error"`, "Permissions Violation", "sentry_bans.b.")
	// a's credentials, a's subject, b inside.
	_, js := natsClient(t, attacker.NS, urls, nats.Nkey(mustNkey(t, seeds["a"])))
	k := netip.MustParsePrefix("203.0.113.33/32")
	m := fleet.Message{Kind: fleet.KindBan, Origin: "b", Key: k, Ban: time.Hour, Decided: time.Now(), Until: time.Now().Add(time.Hour)}
	data, _ := m.Encode()
	if _, err := js.Publish(context.Background(), fleet.Subject("sentry_bans", "a", k), data); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	for _, key := range []string{x2.String() + "/32", k.String()} {
		if _, o, ok := c.ban(key); ok {
			t.Errorf("c applied %s from %s", key, o)
		}
	}
	if strings.Count(b.d.log(), "Permissions Violation") != 1 {
		t.Errorf("b's refused publishes logged %d times, want once", strings.Count(b.d.log(), "Permissions Violation"))
	}
	c.d.waitLog(t, "fleet_refused=1")
}

// waitLogFor is daemon.waitLog with a longer wait.
func waitLogFor(t *testing.T, d *daemon, within time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !slices.ContainsFunc(strings.Split(d.log(), "\n"), func(l string) bool { return containsAll(l, parts) }) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v:\n%s", parts, within, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustNkey returns the nkey option's signer for a seed file.
func mustNkey(t *testing.T, seedFile string) (string, nats.SignatureHandler) {
	t.Helper()
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub, kp.Sign
}

// TestFleetClusterLeaderKilled: with a cluster of three servers and the
// stream replicated on all three, killing the stream's leader with
// SIGKILL loses no ban, and bans decided after it still reach every host.
func TestFleetClusterLeaderKilled(t *testing.T) {
	requireFleetTools(t)
	lan := netnstest.NewLAN(t, 6)
	attacker := lan.Hosts[5]
	x1, x2 := netip.MustParseAddr("203.0.113.41"), netip.MustParseAddr("203.0.113.42")
	attacker.AddAddrs(t, x1, x2)
	var routes []string
	for _, h := range lan.Hosts[:3] {
		routes = append(routes, fmt.Sprintf("nats-route://%s", netip.AddrPortFrom(h.IP4, 6222)))
	}
	var srvs []*natsProc
	var urls []string
	for i, h := range lan.Hosts[:3] {
		cluster := fmt.Sprintf("cluster: {name: sentry, listen: %q, routes: [%s]}\n", netip.AddrPortFrom(h.IP4, 6222), strings.Join(routes, ", "))
		srvs = append(srvs, startNats(t, fmt.Sprintf("s%d", i), h, cluster))
		urls = append(urls, srvs[i].url())
	}
	a := newFleetHost(t, "a", lan.Hosts[3], attacker, urls, "").start()
	b := newFleetHost(t, "b", lan.Hosts[4], attacker, urls, "").start()
	// A new cluster elects its meta leader first.
	waitLogFor(t, b.d, 30*time.Second, `msg="fleet: receiving bans"`)
	a.scanFrom(t, x1)
	b.waitBan(t, x1.String()+"/32", "fleet:a", 10*time.Second)

	_, js := natsClient(t, attacker.NS, urls)
	info := streamInfo(t, js)
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not replicated on three servers: %+v", info.Cluster)
	}
	var leader *natsProc
	for _, s := range srvs {
		if s.name == info.Cluster.Leader {
			leader = s
		}
	}
	killed := time.Now()
	leader.kill()
	t.Logf("killed the stream leader %s", leader.name)
	a.scanFrom(t, x2)
	_, took := b.waitBan(t, x2.String()+"/32", "fleet:a", 30*time.Second)
	t.Logf("a ban decided after the leader's death reached b %v after the kill (%v after the scan)", time.Since(killed).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	info = streamInfo(t, js)
	if info.State.Msgs != 2 || info.State.LastSeq != 2 || info.Cluster.Leader == leader.name {
		t.Errorf("after the failover: %d messages, last sequence %d, leader %s", info.State.Msgs, info.State.LastSeq, info.Cluster.Leader)
	}
	if _, _, ok := b.ban(x1.String() + "/32"); !ok {
		t.Error("the ban made before the failover is gone from b")
	}
}
