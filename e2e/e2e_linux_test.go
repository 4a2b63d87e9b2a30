//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// bin is the binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sentry-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "sentry-nflog")
	build := exec.Command("go", "build", "-o", bin, "../cmd/sentry-nflog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The victim's listening service, accepted by its firewall.
const servicePort = 8080

// lab is one victim/attacker pair with the victim's firewall loaded.
type lab struct {
	t    *testing.T
	pair *netnstest.Pair
	dir  string
	cfg  string
}

// requireTools is netnstest.Require plus the nft tool the victim's
// firewall is loaded with.
func requireTools(t *testing.T) {
	t.Helper()
	netnstest.Require(t)
	testkit.Need(t, "nft")
}

// config is the rules the tests use: the shipped ones, with bans short
// enough to watch one expire when a test asks for it.
func configYAML(stateDir string, ban string, ignore ...string) string {
	ig := append([]string{"127.0.0.0/8", `"::1/128"`, "self", "gateways", "resolvers"}, ignore...)
	return fmt.Sprintf(`state_dir: %s
ignore: [%s]
rules:
  - {name: tcp-portscan, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: %s}
  - {name: stealth-scan, proto: tcp, flags: [null, fin, xmas], threshold: {hits: 1}, ban: %s}
  - {name: udp-portscan, proto: udp, threshold: {distinct_ports: 5, within: 60s}, ban: %s}
`, stateDir, strings.Join(ig, ", "), ban, ban, ban)
}

func newLab(t *testing.T, ban string, ignore ...string) *lab {
	t.Helper()
	requireTools(t)
	return newLabOn(t, netnstest.NewPair(t), ban, ignore...)
}

// newLabOn is newLab on a pair the test prepared.
func newLabOn(t *testing.T, pair *netnstest.Pair, ban string, ignore ...string) *lab {
	t.Helper()
	l := &lab{t: t, pair: pair, dir: t.TempDir()}
	l.cfg = filepath.Join(l.dir, "sentry.yaml")
	if err := os.WriteFile(l.cfg, []byte(configYAML(filepath.Join(l.dir, "state"), ban, ignore...)), 0o644); err != nil {
		t.Fatal(err)
	}
	l.installFirewall(servicePort, "")
	return l
}

// installFirewall gives the victim the firewall a user writes: accept
// rules for service, whose port it listens on, then the rules `sentry-nflog
// firewall --rules-only` prints for l's config; then extra, more tables.
func (l *lab) installFirewall(service uint16, extra string) {
	l.t.Helper()
	rules, err := exec.Command(bin, "firewall", "--rules-only", "--config", l.cfg).Output()
	if err != nil {
		l.t.Fatalf("firewall: %v", err)
	}
	ruleset := fmt.Sprintf(`table inet host {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iif lo accept
		tcp dport %d accept
%s	}
}
%s`, service, rules, extra)
	path := filepath.Join(l.dir, "victim.nft")
	if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.pair.Victim.Run(l.t, "nft", "-f", path)
	l.pair.Listen(l.t, service)
}

// daemon is a running `sentry-nflog run` in the victim.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func (l *lab) startDaemon(extra ...string) *daemon {
	l.t.Helper()
	args := append([]string{bin, "run", "--config", l.cfg, "--health-interval", "1s"}, extra...)
	d := &daemon{cmd: l.pair.Victim.Command(context.Background(), args...), done: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	d.cmd.Stdout = nil
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			d.mu.Lock()
			d.logs.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if strings.Contains(sc.Text(), "msg=running") {
				once.Do(func() { close(started) })
			}
		}
		d.cmd.Wait()
	}()
	l.t.Cleanup(func() {
		d.stop()
		if l.t.Failed() {
			l.t.Logf("daemon log:\n%s", d.log())
		}
	})
	select {
	case <-started:
	case <-d.done:
		l.t.Fatalf("daemon exited at start:\n%s", d.log())
	case <-time.After(10 * time.Second):
		l.t.Fatalf("daemon did not start within 10s:\n%s", d.log())
	}
	return d
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (d *daemon) stop() error {
	if d.cmd.Process == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon ignored SIGTERM for 10s")
	}
	if st := d.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("daemon exited: %v", st)
	}
	return nil
}

// waitLog waits up to 5 s for a log line containing every part.
func (d *daemon) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(d.log(), "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q within 5s:\n%s", parts, d.log())
	return ""
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

type listed struct {
	Bans []struct {
		Source      string `json:"source"`
		LeftSeconds int64  `json:"left_seconds"`
		BanSeconds  int64  `json:"ban_seconds"`
		Origin      string `json:"origin"`
	} `json:"bans"`
	Counters *struct {
		Packets4 uint64 `json:"packets4"`
		Packets6 uint64 `json:"packets6"`
	} `json:"counters"`
}

func (l *lab) list() listed {
	l.t.Helper()
	out := l.pair.Victim.Run(l.t, bin, "list", "--json", "--config", l.cfg)
	var ls listed
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		l.t.Fatalf("list --json: %v: %s", err, out)
	}
	return ls
}

func (ls listed) has(source string) bool {
	for _, b := range ls.Bans {
		if b.Source == source {
			return true
		}
	}
	return false
}

// connect tries the victim's service from src and reports the state.
func (l *lab) connect(src, dst netip.Addr) scanner.State {
	l.t.Helper()
	return l.connectPort(src, dst, servicePort)
}

// connectScan probes closed ports of dst from src.
func (l *lab) connectScan(src, dst netip.Addr, ports ...uint16) {
	l.t.Helper()
	err := l.pair.Attacker.Do(func() error {
		_, err := scanner.ConnectScan(context.Background(), src, dst, ports, 500*time.Millisecond)
		return err
	})
	if err != nil {
		l.t.Fatalf("scan from %s: %v", src, err)
	}
}

func ports(lo, hi uint16) []uint16 {
	var p []uint16
	for i := int(lo); i <= int(hi); i++ { // an int: a uint16 never passes 65535
		p = append(p, uint16(i))
	}
	return p
}

func TestTCPConnectScanIsBanned(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st != scanner.Open {
		t.Fatalf("service before the scan: %v, want open", st)
	}
	l.connectScan(p.AttackerIP4, p.VictimIP4, ports(20, 29)...)
	d.waitLog(t, "msg=decision", "action=ban", "source="+p.AttackerIP4.String()+"/32", "rule=tcp-portscan")
	if !l.list().has(p.AttackerIP4.String() + "/32") {
		t.Fatalf("ban not in list:\n%+v", l.list())
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st == scanner.Open {
		t.Error("service still reachable from the banned scanner")
	}
	if c := l.list().Counters; c == nil || c.Packets4 == 0 {
		t.Errorf("drop counter did not move: %+v", c)
	}
	// IPv6 from the same host is another key: not banned.
	if st := l.connect(p.AttackerIP6, p.VictimIP6); st != scanner.Open {
		t.Errorf("IPv6 service from an unbanned key: %v, want open", st)
	}
}

func TestUDPProbesAreBanned(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	err := p.Attacker.Do(func() error {
		return scanner.UDPProbe(context.Background(), p.AttackerIP4, p.VictimIP4, []uint16{53, 69, 123, 161, 500, 1900})
	})
	if err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, "action=ban", "source="+p.AttackerIP4.String()+"/32", "rule=udp-portscan")
}

func TestStealthProbesAreBanned(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	srcs := []netip.Addr{netip.MustParseAddr("198.51.100.21"), netip.MustParseAddr("198.51.100.22"), netip.MustParseAddr("198.51.100.23")}
	p.AddAttackerAddrs(t, srcs...)
	for i, flags := range []uint8{scanner.FIN, scanner.NULL, scanner.XMAS} {
		src := srcs[i]
		if err := p.Attacker.Do(func() error {
			return scanner.RawProbe(context.Background(), src, p.VictimIP4, 31337, flags)
		}); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t, "action=ban", "source="+src.String()+"/32", "rule=stealth-scan")
	}
}

func TestIPv6RotatingAddressesBanTheSlash64(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	var srcs []netip.Addr
	for i := 1; i <= 6; i++ {
		srcs = append(srcs, netip.MustParseAddr(fmt.Sprintf("2001:db8:bad:1::%x", 0x10+i)))
	}
	other := netip.MustParseAddr("2001:db8:bad:1:ffff::99")
	outside := netip.MustParseAddr("2001:db8:bad:2::99")
	p.AddAttackerAddrs(t, append(srcs, other, outside)...)
	for i, src := range srcs[:5] {
		l.connectScan(src, p.VictimIP6, uint16(100+i))
	}
	d.waitLog(t, "action=ban", "source=2001:db8:bad:1::/64", "rule=tcp-portscan")
	if st := l.connect(other, p.VictimIP6); st == scanner.Open {
		t.Error("another address of the banned /64 still reaches the service")
	}
	if st := l.connect(outside, p.VictimIP6); st != scanner.Open {
		t.Errorf("an address outside the /64: %v, want open", st)
	}
}

func TestBanExpiresAndServiceComesBack(t *testing.T) {
	l := newLab(t, "2s")
	d := l.startDaemon()
	p := l.pair
	if _, _, ban := l.scanAndBan(d); ban != "2s" {
		t.Fatalf("ban for %s, want 2s", ban)
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st == scanner.Open {
		t.Fatal("reachable while banned")
	}
	deadline := time.Now().Add(6 * time.Second)
	for l.connect(p.AttackerIP4, p.VictimIP4) != scanner.Open {
		if time.Now().After(deadline) {
			t.Fatalf("still unreachable 6s after a 2s ban; list: %+v", l.list())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l.list().has(p.AttackerIP4.String() + "/32") {
		t.Error("expired ban still listed")
	}
}

func TestBelowThresholdAndIgnoredAreNeverBanned(t *testing.T) {
	ignored := netip.MustParseAddr("198.51.100.50")
	l := newLab(t, "1h", ignored.String())
	d := l.startDaemon()
	p := l.pair
	p.AddAttackerAddrs(t, ignored)
	// Four distinct ports: one under the threshold.
	l.connectScan(p.AttackerIP4, p.VictimIP4, 20, 21, 22, 23)
	// The ignore-listed source scans far past the threshold.
	l.connectScan(ignored, p.VictimIP4, ports(20, 40)...)
	d.waitLog(t, "action=ignored", "source="+ignored.String()+"/32")
	// Give a wrong ban every chance to land before looking.
	time.Sleep(300 * time.Millisecond)
	if ls := l.list(); len(ls.Bans) != 0 {
		t.Fatalf("bans: %+v, want none", ls.Bans)
	}
	for _, src := range []netip.Addr{p.AttackerIP4, ignored} {
		if st := l.connect(src, p.VictimIP4); st != scanner.Open {
			t.Errorf("service from %s: %v, want open", src, st)
		}
	}
	if strings.Contains(d.log(), "action=ban") {
		t.Errorf("a ban was decided:\n%s", d.log())
	}
}

func TestListAndUnblock(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	key, _, _ := l.scanAndBan(d)
	ls := l.list()
	if !ls.has(key) || ls.Bans[0].LeftSeconds < 3590 || ls.Bans[0].BanSeconds != 3600 {
		t.Fatalf("list: %+v", ls)
	}
	text := p.Victim.Run(t, bin, "list", "--config", l.cfg)
	if !strings.Contains(text, key) || !strings.Contains(text, "1 active bans") {
		t.Errorf("list text:\n%s", text)
	}
	out := p.Victim.Run(t, bin, "unblock", "--config", l.cfg, p.AttackerIP4.String())
	if !strings.Contains(out, "unblocked "+key) {
		t.Fatalf("unblock: %s", out)
	}
	d.waitLog(t, "msg=pardoned", "source="+key)
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st != scanner.Open {
		t.Errorf("service after unblock: %v, want open", st)
	}
	if l.list().has(key) {
		t.Error("still listed after unblock")
	}
	// Unblocking what is not banned says so and fails.
	cmd := p.Victim.Command(context.Background(), bin, "unblock", "--config", l.cfg, "192.0.2.77")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not banned") {
		t.Errorf("unblock of an unbanned address: %v %s", err, out)
	}
}

func TestRestartKeepsBans(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	key, _, _ := l.scanAndBan(d)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if !l.list().has(key) {
		t.Fatal("ban gone when the daemon stopped")
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st == scanner.Open {
		t.Fatal("reachable while the daemon is stopped")
	}
	d2 := l.startDaemon()
	d2.waitLog(t, `msg="bans in the kernel"`, "when=start", "kept=1", "restored=0")
	if !l.list().has(key) {
		t.Fatal("ban gone after a restart")
	}
}

func TestSecondInstanceFailsClearly(t *testing.T) {
	l := newLab(t, "1h")
	l.startDaemon()
	cmd := l.pair.Victim.Command(context.Background(), bin, "run", "--config", l.cfg)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("a second daemon on the same group started")
	}
	if !strings.Contains(string(out), "held by another running sentry-nflog") {
		t.Errorf("second instance: %s", out)
	}
}

// TestNoNetworkSocket reads the daemon's open files from /proc: every
// socket it holds must be a netlink socket, none TCP, UDP, raw or packet.
func TestNoNetworkSocket(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	// Let it work first, so sockets opened lazily exist.
	l.scanAndBan(d)
	pid := d.cmd.Process.Pid
	inodes := socketInodes(t, pid)
	if len(inodes) == 0 {
		t.Fatal("no socket at all: the reading is wrong")
	}
	netlink := procInodes(t, fmt.Sprintf("/proc/%d/net/netlink", pid), 9)
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6"} {
		for ino := range procInodes(t, fmt.Sprintf("/proc/%d/net/%s", pid, table), 9) {
			if inodes[ino] {
				t.Errorf("daemon holds a %s socket (inode %s)", table, ino)
			}
		}
	}
	for ino := range procInodes(t, fmt.Sprintf("/proc/%d/net/packet", pid), 8) {
		if inodes[ino] {
			t.Errorf("daemon holds a packet socket (inode %s)", ino)
		}
	}
	for ino := range inodes {
		if !netlink[ino] {
			t.Errorf("socket inode %s is not a netlink socket", ino)
		}
	}
	t.Logf("daemon pid %d holds %d sockets, all netlink", pid, len(inodes))
}

func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	return out
}

// procInodes returns the inode column (0-based index col) of a /proc/net
// table.
func procInodes(t *testing.T, path string, col int) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	out := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) <= col {
			continue
		}
		out[f[col]] = true
	}
	return out
}

// withGatewayAndResolver gives the victim a default route through the
// attacker and a nameserver of its own: ip netns exec bind-mounts
// /etc/netns/NAME/resolv.conf over /etc/resolv.conf for what it runs.
// Both are gone when the test ends (/etc/netns too, if the test made it).
func withGatewayAndResolver(t *testing.T, p *netnstest.Pair, resolver netip.Addr) {
	t.Helper()
	etc := filepath.Join("/etc/netns", p.Victim.Name)
	_, statErr := os.Stat("/etc/netns")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(etc)
		if os.IsNotExist(statErr) {
			os.Remove("/etc/netns")
		}
	})
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+resolver.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Victim.Run(t, "ip", "route", "add", "default", "via", p.AttackerIP4.String())
}

// TestForgedScanFromGatewayOrResolverIsNeverBanned: a scan that seems to
// come from the victim's default gateway or its nameserver (forged, or a
// compromised box next door) must never cut the victim off. The daemon
// resolves both from the victim's routes and resolv.conf.
func TestForgedScanFromGatewayOrResolverIsNeverBanned(t *testing.T) {
	requireTools(t)
	p := netnstest.NewPair(t)
	resolver := netip.MustParseAddr("198.51.100.53")
	withGatewayAndResolver(t, p, resolver)
	p.AddAttackerAddrs(t, resolver)

	l := newLabOn(t, p, "1h")
	d := l.startDaemon()
	d.waitLog(t, "never banned", "word=gateways", p.AttackerIP4.String())
	d.waitLog(t, "never banned", "word=resolvers", resolver.String())
	for _, src := range []netip.Addr{p.AttackerIP4, resolver} {
		r := l.synScan(src, p.VictimIP4, ports(1, 200))
		if n := len(r.Closed) + len(r.Open); n != 200 {
			t.Errorf("scan from %s: %d of 200 ports answered: struck in the kernel", src, n)
		}
		if err := p.Attacker.Do(func() error {
			return scanner.RawProbe(context.Background(), src, p.VictimIP4, 31337, scanner.FIN)
		}); err != nil {
			t.Fatal(err)
		}
		d.waitLog(t, "action=ignored", "source="+src.String()+"/32")
	}
	if ls := l.list(); len(ls.Bans) != 0 {
		t.Fatalf("bans: %+v, want none", ls.Bans)
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st != scanner.Open {
		t.Errorf("the gateway lost the service: %v", st)
	}
}
