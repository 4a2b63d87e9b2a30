//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// The service tests: state across kill -9 and reboots, tamper recovery,
// reload, advanced mode, followed log files, and the systemd unit.

// scanAndBan has the attacker's IPv4 address probe five closed ports (the
// tcp-portscan threshold) and waits for its ban; it returns the ban key,
// the offence number and the ban length logged.
func (l *lab) scanAndBan(d *daemon) (key string, offence int, ban string) {
	l.t.Helper()
	p := l.pair
	key = p.AttackerIP4.String() + "/32"
	l.connectScan(p.AttackerIP4, p.VictimIP4, ports(20, 24)...)
	offence, ban = banLine(l.t, d, key)
	return key, offence, ban
}

// banLine waits for the ban of key and returns its offence number and ban.
func banLine(t *testing.T, d *daemon, key string) (offence int, ban string) {
	t.Helper()
	line := d.waitLog(t, "action=ban", "source="+key)
	m := regexp.MustCompile(`offence=(\d+) ban=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no offence in %q", line)
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}

func (ls listed) left(source string) int64 {
	for _, b := range ls.Bans {
		if b.Source == source {
			return b.LeftSeconds
		}
	}
	return -1
}

func TestKill9KeepsOffenceHistory(t *testing.T) {
	l := newLab(t, "2s")
	d := l.startDaemon()
	p := l.pair
	key, n, ban := l.scanAndBan(d)
	if n != 1 || ban != "2s" {
		t.Fatalf("first ban: offence %d for %s", n, ban)
	}
	time.Sleep(1500 * time.Millisecond) // the state is saved within a second of a ban
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d2 := l.startDaemon()
	time.Sleep(2 * time.Second) // the 2s ban expires
	l.connectScan(p.AttackerIP4, p.VictimIP4, ports(30, 34)...)
	if n, ban := banLine(t, d2, key); n != 2 || ban != "4s" {
		t.Errorf("after kill -9 and restart: offence %d for %s, want offence 2 for 4s", n, ban)
	}
}

func TestTamperRecoveryRestoresBans(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	key, _, _ := l.scanAndBan(d)
	// A firewall reload wipes everything, our table included.
	p.Victim.Run(t, "nft", "flush", "ruleset")
	start := time.Now()
	d.waitLog(t, "nftables objects were removed")
	var left int64 = -1
	for time.Since(start) < 5*time.Second {
		if left = l.list().left(key); left > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	if left < 3500 || left > 3600 {
		t.Fatalf("ban not back within 5s with its remaining time: left %ds after %s", left, took)
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st == scanner.Open {
		t.Error("the banned scanner reaches the service after the recovery")
	}
	t.Logf("ban back %s after the flush, %ds left", took.Round(time.Millisecond), left)
}

func TestRebootRestoresUnexpiredBans(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	key, _, _ := l.scanAndBan(d)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// A reboot: fresh namespaces with empty sets, the same state_dir.
	l2 := newLab(t, "1h")
	l2.cfg = l.cfg
	d2 := l2.startDaemon()
	d2.waitLog(t, `msg="bans in the kernel"`, "kept=0", "restored=1")
	if left := l2.list().left(key); left < 3500 || left >= 3600 {
		t.Fatalf("restored ban: %ds left, want the time left of the 1h ban", left)
	}
	if st := l2.connect(l2.pair.AttackerIP4, l2.pair.VictimIP4); st == scanner.Open {
		t.Error("the banned scanner reaches the service after the reboot")
	}
}

func TestReloadAppliesValidAndKeepsInvalid(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	key, _, _ := l.scanAndBan(d)

	// A valid change: 3 distinct ports are enough now.
	cfg, _ := os.ReadFile(l.cfg)
	os.WriteFile(l.cfg, []byte(strings.Replace(string(cfg), "distinct_ports: 5", "distinct_ports: 3", 1)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "msg=reloaded")
	src := netip.MustParseAddr("198.51.100.31")
	p.AddAttackerAddrs(t, src)
	l.connectScan(src, p.VictimIP4, 40, 41, 42)
	banLine(t, d, src.String()+"/32")

	// An invalid file changes nothing.
	os.WriteFile(l.cfg, []byte(strings.Replace(string(cfg), "within: 60s", "within: sixty", 1)), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "reload: the config is invalid", "within")
	src2 := netip.MustParseAddr("198.51.100.32")
	p.AddAttackerAddrs(t, src2)
	l.connectScan(src2, p.VictimIP4, 40, 41, 42)
	banLine(t, d, src2.String()+"/32")
	os.WriteFile(l.cfg, cfg, 0o644) // list reads the file too
	for _, k := range []string{key, src.String() + "/32", src2.String() + "/32"} {
		if !l.list().has(k) {
			t.Errorf("ban of %s lost across reloads", k)
		}
	}
}

// events returns the daemon's event count from its last health line.
func waitEvents(t *testing.T, d *daemon, want uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if healthEvents(d) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("events = %d, want %d\n%s", healthEvents(d), want, d.log())
}

func TestAdvancedMode(t *testing.T) {
	requireTools(t)
	// No logging rule of our own: the daemon logs unused ports itself.
	l := &lab{t: t, pair: netnstest.NewPair(t), dir: t.TempDir()}
	l.cfg = filepath.Join(l.dir, "sentry.yaml")
	os.WriteFile(l.cfg, []byte(configYAML(filepath.Join(l.dir, "state"), "1h")+
		"advanced: {tcp: \"1-1023\", udp: \"1-1023\", refresh: 1s}\n"), 0o644)
	p := l.pair
	p.Victim.ListenTCP(t, 22)
	d := l.startDaemon()
	friend := netip.MustParseAddr("198.51.100.40")
	p.AddAttackerAddrs(t, friend)
	// A client of the running service is never logged.
	for i := 0; i < 3; i++ {
		if st := l.connectPort(friend, p.VictimIP4, 22); st != scanner.Open {
			t.Fatalf("port 22: %v", st)
		}
	}
	waitEvents(t, d, 0)
	// A port outside the watched range is not logged either.
	l.connectScan(friend, p.VictimIP4, 2000)
	waitEvents(t, d, 0)
	// A service started on a watched port stops its logging within a refresh.
	l.connectScan(friend, p.VictimIP4, 25)
	waitEvents(t, d, 1)
	p.Victim.ListenTCP(t, 25)
	time.Sleep(1500 * time.Millisecond)
	if st := l.connectPort(friend, p.VictimIP4, 25); st != scanner.Open {
		t.Fatalf("port 25 after the listener started: %v", st)
	}
	waitEvents(t, d, 1)
	// A scan of the range is banned; the open port found costs nothing.
	key := p.AttackerIP4.String() + "/32"
	l.connectScan(p.AttackerIP4, p.VictimIP4, ports(1, 1023)...)
	banLine(t, d, key)
	if strings.Contains(d.log(), "ports=22,") || strings.Contains(d.log(), ",22,") {
		t.Errorf("port 22, which has a listener, was logged:\n%s", d.log())
	}
}

func (l *lab) connectPort(src, dst netip.Addr, port uint16) scanner.State {
	l.t.Helper()
	var res scanner.Result
	if err := l.pair.Attacker.Do(func() error {
		var err error
		res, err = scanner.ConnectScan(context.Background(), src, dst, []uint16{port}, 700*time.Millisecond)
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	return res.Probes[0].State
}

// TestFollowedLogFile feeds the daemon through a kernel log file instead of
// NFLOG: lines appended to it ban in the victim's kernel.
func TestFollowedLogFile(t *testing.T) {
	requireTools(t)
	l := &lab{t: t, pair: netnstest.NewPair(t), dir: t.TempDir()}
	l.cfg = filepath.Join(l.dir, "sentry.yaml")
	logPath := filepath.Join(l.dir, "kern.log")
	os.WriteFile(logPath, []byte("Nov 24 00:00:00 host kernel: an old line before the daemon started\n"), 0o640)
	os.WriteFile(l.cfg, []byte(configYAML(filepath.Join(l.dir, "state"), "1h")+
		fmt.Sprintf("inputs: {nflog: [], files: [%s]}\n", logPath)), 0o644)
	d := l.startDaemon()
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	now := time.Now()
	for i := 0; i < 5; i++ {
		fmt.Fprintf(f, "%s web1 kernel: [12345.%06d] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.77 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n",
			now.Format(time.Stamp), i, 20+i)
	}
	banLine(t, d, "203.0.113.77/32")
	if !l.list().has("203.0.113.77/32") {
		t.Error("ban from a log line not in the kernel")
	}
}

// TestSystemdUnit checks the shipped unit with systemd-analyze verify.
func TestSystemdUnit(t *testing.T) {
	testkit.Need(t, "systemd-analyze")
	unit, err := os.ReadFile("../systemd/sentry-nflog.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Restart=on-failure", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYSLOG CAP_DAC_READ_SEARCH",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=sentry-nflog",
		"RestrictAddressFamilies=AF_NETLINK AF_UNIX", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sentry-nflog.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/sentry-nflog", bin)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestMetricsTextfile checks the daemon's Prometheus textfile after a ban.
func TestMetricsTextfile(t *testing.T) {
	l := newLab(t, "1h")
	prom := filepath.Join(l.dir, "sentry_nflog.prom")
	cfg, _ := os.ReadFile(l.cfg)
	os.WriteFile(l.cfg, append(cfg, []byte(fmt.Sprintf("metrics: {textfile: %s, interval: 1s}\n", prom))...), 0o644)
	d := l.startDaemon()
	l.scanAndBan(d)
	want := []string{
		`sentry_nflog_decisions_total{action="ban",rule="tcp-portscan"} 1`,
		`sentry_nflog_input_events_total{input="nflog:7"} 5`,
		`sentry_nflog_rule_events_total{rule="tcp-portscan"} 5`,
		`sentry_nflog_bans_active 1`,
		`sentry_nflog_reaction_seconds_count 1`,
	}
	deadline := time.Now().Add(5 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(prom)
		text = string(data)
		if containsAll(text, want) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("textfile after a ban lacks some of %q:\n%s", want, text)
}
