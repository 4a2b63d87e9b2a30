//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
)

// The fault tests: what a hostile environment does to the daemon (issue
// "nothing lost, nothing stuck"), each end to end in namespaces.

// rewriteConfig replaces the lab's config file.
func (l *lab) rewriteConfig(yaml string) {
	l.t.Helper()
	tmp := l.cfg + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Rename(tmp, l.cfg); err != nil {
		l.t.Fatal(err)
	}
}

// hostRuleset is the victim's own firewall as newLabOn loaded it.
func (l *lab) hostRuleset() string {
	l.t.Helper()
	data, err := os.ReadFile(filepath.Join(l.dir, "victim.nft"))
	if err != nil {
		l.t.Fatal(err)
	}
	return string(data)
}

// TestSecondDaemonOnTheTableTouchesNothing: a second daemon on the same
// table, with another state_dir and another NFLOG group, refuses to start
// before touching anything: the first daemon's first-strike counts go on
// (a scanner that probed 3 ports before is struck at the fifth, not at the
// fifth after the second start).
func TestSecondDaemonOnTheTableTouchesNothing(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	r := l.synScan(p.AttackerIP4, p.VictimIP4, []uint16{1, 2, 3})
	if len(r.Closed) != 3 {
		t.Fatalf("before: %d of 3 ports answered", len(r.Closed))
	}
	other := filepath.Join(l.dir, "other.yaml")
	os.WriteFile(other, []byte(configYAML(filepath.Join(l.dir, "state2"), "1h")+"inputs: {nflog: [{group: 8}]}\n"), 0o644)
	out, err := p.Victim.Command(context.Background(), bin, "run", "--config", other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "held by another running sentry-nflog") {
		t.Fatalf("second daemon on the table: %v\n%s", err, out)
	}
	r = l.synScan(p.AttackerIP4, p.VictimIP4, ports(4, 200))
	if learned := 3 + r.Resets + r.SynAcks; learned > 4+inFlight {
		t.Errorf("the scanner learned %d answers in all: the first daemon's first-strike counts were reset", learned)
	}
	banLine(t, d, p.AttackerIP4.String()+"/32")
}

// TestSIGHUPStormNeverStrikesIgnored: while reloads that change the rules
// (and so first strike) come as fast as signals can, a source on the ignore
// list scanning all along is never struck nor banned: the allow set is in
// every batch that writes striking rules.
func TestSIGHUPStormNeverStrikesIgnored(t *testing.T) {
	l := newLab(t, "1h", "198.51.100.2")
	d := l.startDaemon()
	p := l.pair
	base := configYAML(filepath.Join(l.dir, "state"), "1h", "198.51.100.2")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	signals := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := 5 + i%3
			l.rewriteConfig(strings.Replace(base, "distinct_ports: 5", fmt.Sprintf("distinct_ports: %d", n), 1))
			d.cmd.Process.Signal(syscall.SIGHUP)
			signals++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	struck := 0
	for range 10 {
		r := l.synScan(p.AttackerIP4, p.VictimIP4, ports(1, 500))
		if n := len(r.Closed) + len(r.Open); n != 500 {
			struck++
			t.Errorf("the ignore-listed source got %d of 500 answers during the storm", n)
		}
	}
	close(stop)
	wg.Wait()
	d.waitLog(t, "msg=reloaded")
	if ls := l.list(); len(ls.Bans) != 0 {
		t.Errorf("bans after the storm: %+v", ls.Bans)
	}
	if strings.Contains(d.log(), "action=ban") {
		t.Error("a ban was decided for the ignored source")
	}
	t.Logf("%d SIGHUPs, %d reloads logged, %d of 10 scans struck", signals, strings.Count(d.log(), "msg=reloaded"), struck)
}

// TestFlushedBanSetIsRefilled: `nft flush set inet sentry blocked4` leaves
// every object in place and empties the bans; the daemon notices (it
// compares the sets with the bans it holds) and puts them back with their
// time left, so the scanner does not learn the ports for the rest of its
// ban.
func TestFlushedBanSetIsRefilled(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	p := l.pair
	key, _, _ := l.scanAndBan(d)
	p.Victim.Run(t, "nft", "flush", "set", "inet", "sentry", "blocked4")
	if l.list().has(key) {
		t.Fatal("still listed right after the flush: the test proves nothing")
	}
	start := time.Now()
	for !l.list().has(key) {
		if time.Since(start) > verifyWait {
			t.Fatalf("ban not back %s after the set was flushed:\n%s", verifyWait, d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if left := l.list().left(key); left < 3500 {
		t.Errorf("restored with %ds left, want the time left of the 1h ban", left)
	}
	if st := l.connect(p.AttackerIP4, p.VictimIP4); st == scanner.Open {
		t.Error("the banned scanner reaches the service after the flush")
	}
	d.waitLog(t, "bans were missing from the kernel's sets")
	t.Logf("ban back %s after the flush", time.Since(start).Round(100*time.Millisecond))
}

// verifyWait bounds how long a flushed set stays empty: the verification
// period and a check.
const verifyWait = 15 * time.Second

// TestFirewallReloadStormNeitherStallsNorLosesFirstStrike: a firewall
// reloaded (`flush ruleset` and the host's rules) every 100 ms for 10 s,
// racing the daemon's rebuilds: decisions go on at their usual speed, every
// ban decided is in the kernel after the storm, and first strike is back
// whole (a new scanner learns no more than the threshold allows).
func TestFirewallReloadStormNeitherStallsNorLosesFirstStrike(t *testing.T) {
	l := newLab(t, "1h")
	l.rewriteConfig(configYAML(filepath.Join(l.dir, "state"), "1h") + "bans: {max_new_per_minute: 0}\n")
	d := l.startDaemon()
	p := l.pair
	reload := filepath.Join(l.dir, "reload.nft")
	os.WriteFile(reload, []byte("flush ruleset\n"+l.hostRuleset()), 0o644)
	var srcs []netip.Addr
	for i := 1; i <= 200; i++ {
		srcs = append(srcs, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
	}
	p.AddAttackerAddrs(t, srcs...)
	fresh := netip.MustParseAddr("192.0.2.77")
	p.AddAttackerAddrs(t, fresh)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	reloads := 0
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.Victim.Command(context.Background(), "nft", "-f", reload).Run()
				reloads++
			}
		}
	}()
	// Stealth probes from new sources all through the storm: each one a
	// decision, timed from the kernel's stamp to the ban.
	end := time.Now().Add(10 * time.Second)
	probed := 0
	for time.Now().Before(end) && probed < len(srcs) {
		src := srcs[probed]
		p.Attacker.Do(func() error {
			return scanner.RawProbe(context.Background(), src, p.VictimIP4, 31337, scanner.FIN)
		})
		probed++
		time.Sleep(50 * time.Millisecond)
	}
	// Decisions go on during the storm: the bug this guards against held
	// the loop until the storm was over. Counted in decisions (bans, and
	// past the single-packet valve throttles) by the loop's last health
	// line, a second old at most, not in time.
	sh := lastHealth(d)
	banned, _ := strconv.Atoi(sh["decisions_ban"])
	throttled, _ := strconv.Atoi(sh["throttled"])
	duringStorm := banned + throttled
	close(stop)
	wg.Wait()
	if duringStorm < probed/2 {
		t.Errorf("%d of %d probes decided while the firewall was reloaded: the loop stalled", duringStorm, probed)
	}
	time.Sleep(1500 * time.Millisecond) // a health line over the storm's bans
	h := lastHealth(d)
	if h["decisions_ban"] == "" || h["reaction_p50"] == "" {
		t.Fatalf("no health line with the storm's bans and reaction times: %v", h)
	}
	t.Logf("%d firewall reloads, %d probes, %d decided during the storm; health: bans %s, reaction p50 %s p99 %s",
		reloads, probed, duringStorm, h["decisions_ban"], h["reaction_p50"], h["reaction_p99"])
	// Every ban decided is in the kernel once the storm is over.
	decided := regexp.MustCompile(`action=ban source=(\S+)`).FindAllStringSubmatch(d.log(), -1)
	if len(decided) == 0 {
		t.Fatal("no ban decided during the storm")
	}
	deadline := time.Now().Add(verifyWait + 5*time.Second)
	for {
		ls, _ := l.tryList()
		var missing []string
		for _, m := range decided {
			if !ls.has(m[1]) {
				missing = append(missing, m[1])
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bans decided are not in the kernel after the storm: %v", len(missing), len(decided), missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// First strike whole again: a new scanner learns at most the
	// threshold.
	deadline = time.Now().Add(5 * time.Second)
	for p.Victim.Command(context.Background(), "nft", "list", "chain", "inet", "sentry", "firststrike").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("first strike not back after the storm:\n%s", d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := l.synScan(fresh, p.VictimIP4, ports(1, 1000))
	if learned := r.Resets + r.SynAcks; learned > 4+inFlight {
		t.Errorf("after the storm a new scanner learned %d answers: first strike is not whole", learned)
	}
}

// tryList is list, false while the table is missing (being rebuilt).
func (l *lab) tryList() (listed, bool) {
	out, err := l.pair.Victim.Command(context.Background(), bin, "list", "--json", "--config", l.cfg).Output()
	var ls listed
	if err != nil || json.Unmarshal(out, &ls) != nil {
		return listed{}, false
	}
	return ls, true
}

// TestManualElementsStayTheAdmins: elements an administrator added by hand
// are listed as manual and never changed by the daemon: a /64 ban inside an
// admin's /48 does not extend it, unblocking an address inside it does not
// remove it, and an element without timeout is not a provisional strike.
func TestManualElementsStayTheAdmins(t *testing.T) {
	l := newLab(t, "1h")
	// The admin's elements drop what they cover before any logging rule:
	// the evidence comes from another host's log, a followed file.
	logPath := filepath.Join(l.dir, "kern.log")
	os.WriteFile(logPath, nil, 0o640)
	l.rewriteConfig(configYAML(filepath.Join(l.dir, "state"), "1h") + fmt.Sprintf("inputs: {nflog: [{group: 7}], files: [%s]}\n", logPath))
	d := l.startDaemon()
	p := l.pair
	p.Victim.Run(t, "nft", "add", "element", "inet", "sentry", "blocked6", "{ 2001:db8:bad::/48 timeout 10m }")
	p.Victim.Run(t, "nft", "add", "element", "inet", "sentry", "blocked4", "{ 198.51.100.99 }")
	manual := func(src string) (left, ban int64, ok bool) {
		for _, b := range l.list().Bans {
			if b.Source == src && b.Origin == "manual" {
				return b.LeftSeconds, b.BanSeconds, true
			}
		}
		return 0, 0, false
	}
	if _, ban, ok := manual("198.51.100.99/32"); !ok || ban != 0 {
		t.Errorf("the permanent element: listed manual %v, ban %ds", ok, ban)
	}
	if text := p.Victim.Run(t, bin, "list", "--config", l.cfg); !strings.Contains(text, "no timeout") || strings.Contains(text, "198.51.100.99/32  0s") {
		t.Errorf("list:\n%s", text)
	}
	src := netip.MustParseAddr("2001:db8:bad:7::5")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for port := 20; port <= 24; port++ {
		f.WriteString(fileLine(src, port))
	}
	f.Close()
	banLine(t, d, "2001:db8:bad:7::/64")
	time.Sleep(500 * time.Millisecond)
	if left, _, ok := manual("2001:db8:bad::/48"); !ok || left > 600 {
		t.Errorf("the admin's 10m /48 after a 1h /64 ban inside it: manual %v, %ds left", ok, left)
	}
	// Nothing the daemon made covers the address: the /64 could not go in
	// inside the admin's /48, which stays.
	out, _ := p.Victim.Command(context.Background(), bin, "unblock", "--config", l.cfg, src.String()).CombinedOutput()
	if !strings.Contains(string(out), "not banned") {
		t.Errorf("unblock inside the admin's /48: %s", out)
	}
	if _, _, ok := manual("2001:db8:bad::/48"); !ok {
		t.Error("unblocking an address inside the admin's /48 removed it")
	}
	if strings.Contains(d.log(), "cannot restore ban") {
		t.Errorf("the daemon fought the admin's element:\n%s", d.log())
	}
}

// fileLine is a kernel log line of a SYN from src to port, logged now (an
// RFC 3339 stamp to the microsecond, as rsyslog's high-precision format
// writes it, so reaction times mean something).
func fileLine(src netip.Addr, port int) string {
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	if src.Is6() {
		return fmt.Sprintf("%s web1 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=%s DST=2001:0db8:0051:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n",
			now, src.StringExpanded(), port)
	}
	return fmt.Sprintf("%s web1 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=%s DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n",
		now, src, port)
}

// savedPosition returns the followed file's position saved in stateDir.
func savedPosition(t *testing.T, stateDir string) (state.Position, bool) {
	st, err := state.Load(stateDir)
	if err != nil || len(st.Files) != 1 {
		return state.Position{}, false
	}
	return st.Files[0], true
}

// TestKill9FollowedFileCountsEachLineOnce: a followed log written at 20k
// lines/s, the daemon killed with SIGKILL twice (once with the file rotated
// and compressed while it is down) and started again: the saved position
// accounts for every line written exactly once, none lost, none read twice.
func TestKill9FollowedFileCountsEachLineOnce(t *testing.T) {
	requireTools(t)
	l := newLab(t, "1h")
	logPath := filepath.Join(l.dir, "kern.log")
	os.WriteFile(logPath, nil, 0o640)
	l.rewriteConfig(configYAML(filepath.Join(l.dir, "state"), "1h") + fmt.Sprintf("inputs: {nflog: [], files: [%s]}\n", logPath))
	d := l.startDaemon()
	w := newLogWriter(t, logPath)
	w.run(20000)
	time.Sleep(2 * time.Second)
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	time.Sleep(500 * time.Millisecond)
	d = l.startDaemon()
	time.Sleep(2 * time.Second)
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	w.rotate(true) // while down, compressed
	time.Sleep(500 * time.Millisecond)
	d = l.startDaemon()
	// What the killed daemon had not decided is in kern.log.1.gz now.
	d.waitLog(t, "reading the rest of the rotated file", "found_by=content")
	time.Sleep(2 * time.Second)
	written := w.stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p, ok := savedPosition(t, filepath.Join(l.dir, "state")); ok && p.Lines >= written {
			break
		}
		if time.Now().After(deadline) {
			p, _ := savedPosition(t, filepath.Join(l.dir, "state"))
			pos, _ := os.ReadFile(filepath.Join(l.dir, "state", state.PositionsFile))
			t.Fatalf("saved position accounts for %d of %d lines after 20 s (positions.json %s):\n%s", p.Lines, written, pos, d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	p, _ := savedPosition(t, filepath.Join(l.dir, "state"))
	if p.Lines != written || p.Events != written {
		t.Errorf("saved position accounts for %d lines and %d events; %d lines were written, each a firewall record", p.Lines, p.Events, written)
	}
	t.Logf("%d lines written at 20k/s, two kill -9, one rotation and compression while down: %d lines and %d events accounted", written, p.Lines, p.Events)
}

// logWriter writes firewall lines to a followed file at a steady rate and
// rotates it as logrotate would (rename, new file; the writer reopens at
// once).
type logWriter struct {
	t     *testing.T
	path  string
	mu    sync.Mutex
	f     *os.File
	n     uint64
	stopc chan struct{}
	done  chan struct{}
	// line is the i-th line written: by default a SYN from a source of
	// its own (10.0.0.0/8 cycled) to one port, an event that crosses no
	// threshold.
	line func(i uint64) string
}

func newLogWriter(t *testing.T, path string) *logWriter {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	w := &logWriter{t: t, path: path, f: f, stopc: make(chan struct{}), done: make(chan struct{}),
		line: func(i uint64) string {
			return fileLine(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1000+int(i%5000))
		}}
	t.Cleanup(func() { w.stop() })
	return w
}

// run writes perSecond lines a second, in batches every 10 ms, until
// stop: each batch catches up with the rate since the start.
func (w *logWriter) run(perSecond int) {
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var b strings.Builder
		began := time.Now()
		for {
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
			b.Reset()
			w.mu.Lock()
			due := uint64(time.Since(began).Seconds() * float64(perSecond))
			for w.n < due {
				b.WriteString(w.line(w.n))
				w.n++
			}
			if _, err := w.f.WriteString(b.String()); err != nil {
				w.t.Errorf("write: %v", err)
			}
			w.mu.Unlock()
		}
	}()
}

// rotate renames the file to .1 (an older .1 to .2, an older .1.gz to
// .2.gz), reopens a new one and, with compress, compresses .1 into .1.gz.
func (w *logWriter) rotate(compress bool) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ext := range []string{"", ".gz"} {
		if _, err := os.Stat(w.path + ".1" + ext); err == nil {
			os.Rename(w.path+".1"+ext, w.path+".2"+ext)
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		w.t.Fatal(err)
	}
	w.f.Close()
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
	if compress {
		if out, err := runGzip(w.path + ".1"); err != nil {
			w.t.Fatalf("gzip: %v: %s", err, out)
		}
	}
}

// stop ends the writing and returns how many lines were written.
func (w *logWriter) stop() uint64 {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Close()
	return w.n
}

// runGzip compresses path into path.gz, removing path, as logrotate's
// compress does.
func runGzip(path string) ([]byte, error) {
	return exec.Command("gzip", "-f", path).CombinedOutput()
}
