//go:build linux && measure

package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
)

// soakFor is the soak's length: -soak on the test's command line, or
// SENTRY_SOAK (a Go duration), 10 minutes by default.
var soakFor = flag.Duration("soak", soakDefault(), "length of TestMeasureSoak")

func soakDefault() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SENTRY_SOAK")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Minute
}

// TestMeasureSoak is mixed load with every fault at once: a followed file
// written at 20k lines/s and rotated (once in three while the daemon is
// down, then compressed), NFLOG scans from new sources every second,
// SIGHUPs, kill -9 and restart, and firewall reloads (`flush ruleset`). At
// the end it counts every line written against the lines and events the
// saved state accounts for (exactly once: none lost, none twice), and every
// ban decided against the saved offences and the kernel's sets.
//
//	go test -tags measure -run TestMeasureSoak -v -timeout 30m ./e2e -args -soak 10m
func TestMeasureSoak(t *testing.T) {
	l := newLab(t, "2m")
	stateDir := filepath.Join(l.dir, "state")
	logPath := filepath.Join(l.dir, "kern.log")
	os.WriteFile(logPath, nil, 0o640)
	l.rewriteConfig(configYAML(stateDir, "2m") +
		fmt.Sprintf("inputs: {nflog: [{group: 7}], files: [%s]}\nbans: {max_new_per_minute: 0}\n", logPath))
	p := l.pair
	reload := filepath.Join(l.dir, "reload.nft")
	os.WriteFile(reload, []byte("flush ruleset\n"+l.hostRuleset()), 0o644)
	var scanners []netip.Addr
	for i := range 4000 {
		scanners = append(scanners, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 5, byte(i >> 8), byte(i), 15: 1}))
	}
	p.AddAttackerAddrs(t, scanners...)

	var (
		mu     sync.Mutex
		runs   []*daemon
		killed []time.Time // when each run was killed; zero for the last
	)
	current := func() *daemon { mu.Lock(); defer mu.Unlock(); return runs[len(runs)-1] }
	start := func() {
		d := l.startDaemon()
		mu.Lock()
		runs = append(runs, d)
		killed = append(killed, time.Time{})
		mu.Unlock()
	}
	start()
	w := newSoakWriter(t, logPath)
	w.run(20000)
	began := time.Now()
	end := began.Add(*soakFor)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	every := func(period time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					f()
				}
			}
		}()
	}
	// NFLOG: a new scanner every second, five closed ports.
	scans := 0
	every(time.Second, func() {
		if scans >= len(scanners) {
			return
		}
		src := scanners[scans]
		scans++
		p.Attacker.Do(func() error {
			scannerConnect(src, p.VictimIP6, []uint16{20, 21, 22, 23, 24})
			return nil
		})
	})
	var counts struct {
		sync.Mutex
		sighups, reloads, rotations, downRotations, kills int
	}
	every(7*time.Second, func() {
		mu.Lock()
		d := runs[len(runs)-1]
		mu.Unlock()
		if d.cmd.Process.Signal(syscall.SIGHUP) == nil {
			counts.Lock()
			counts.sighups++
			counts.Unlock()
		}
	})
	every(50*time.Second, func() {
		p.Victim.Command(context.Background(), "nft", "-f", reload).Run()
		counts.Lock()
		counts.reloads++
		counts.Unlock()
	})
	every(45*time.Second, func() {
		w.rotate(false)
		counts.Lock()
		counts.rotations++
		counts.Unlock()
	})
	// kill -9 every minute; every third time the file is rotated and
	// compressed while the daemon is down.
	kill := 0
	for time.Now().Add(time.Minute).Before(end) {
		time.Sleep(time.Minute)
		d := current()
		mu.Lock()
		killed[len(killed)-1] = time.Now()
		mu.Unlock()
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
		kill++
		if kill%3 == 0 {
			w.rotate(true)
			counts.Lock()
			counts.downRotations++
			counts.Unlock()
		}
		time.Sleep(time.Second)
		start()
	}
	time.Sleep(time.Until(end))
	close(stop)
	wg.Wait()
	written := w.stop()
	duration := time.Since(began)

	// Let the last daemon catch up, then stop it cleanly.
	d := current()
	deadline := time.Now().Add(2 * time.Minute)
	var pos state.Position
	for {
		pos, _ = savedPosition(t, stateDir)
		if pos.Lines >= written || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	h := lastHealth(d)
	peak := procStatus(d.cmd.Process.Pid, "VmHWM")
	time.Sleep(verifyWait) // a verification of the sets after the last reload
	if err := d.stop(); err != nil {
		t.Error(err)
	}
	st, err := state.Load(stateDir)
	if err != nil || len(st.Files) != 1 {
		t.Fatalf("final state: %v %+v", err, st)
	}
	pos = st.Files[0]

	// Bans: every one decided (in any run's log) is in the saved state,
	// but for decisions from NFLOG (which cannot be read again) made within
	// the second before a kill -9 whose kernel ban was gone too (a flush):
	// the state is saved within a second of a ban. Every ban the state
	// holds active is in the kernel.
	decided := map[string]time.Time{} // key: when decided
	lastSecond := map[string]bool{}   // decided within 1.5 s before its run was killed
	reBan := regexp.MustCompile(`time=(\S+) level=INFO msg=decision action=ban source=(\S+)`)
	for i, r := range runs {
		for _, m := range reBan.FindAllStringSubmatch(r.log(), -1) {
			at, _ := time.Parse(time.RFC3339Nano, m[1])
			decided[m[2]] = at
			if !killed[i].IsZero() && killed[i].Sub(at) < 1500*time.Millisecond {
				lastSecond[m[2]] = true
			}
		}
	}
	if len(decided) == 0 {
		t.Error("no ban decided in the whole soak: the checks below would hold for nothing")
	}
	saved := map[string]bool{}
	now := time.Now()
	var active []string
	for _, o := range st.Offences {
		saved[o.Key.String()] = true
		if o.BannedUntil.After(now.Add(2 * time.Second)) {
			active = append(active, o.Key.String())
		}
	}
	var notSaved, lostAtKill []string
	for k := range decided {
		switch {
		case saved[k]:
		case lastSecond[k] && strings.HasPrefix(k, "2001:db8:5:"):
			lostAtKill = append(lostAtKill, k)
		default:
			notSaved = append(notSaved, k)
		}
	}
	ls, _ := l.tryList()
	var notInKernel []string
	for _, k := range active {
		if !ls.has(k) {
			notInKernel = append(notInKernel, k)
		}
	}
	counts.Lock()
	defer counts.Unlock()
	t.Logf("soak %s: %d restarts (kill -9), %d SIGHUPs, %d firewall reloads (flush ruleset), %d rotations running + %d while down (compressed), %d NFLOG scans",
		duration.Round(time.Second), kill, counts.sighups, counts.reloads, counts.rotations, counts.downRotations, scans)
	t.Logf("file: %d lines written (each a firewall record); saved state accounts for %d lines and %d events: %d lost, %d twice",
		written, pos.Lines, pos.Events, max(int64(written)-int64(pos.Lines), 0), max(int64(pos.Lines)-int64(written), 0))
	t.Logf("bans: %d keys decided, %d not in the saved state (and %d NFLOG decisions of the last second before a kill -9, gone from the kernel too: %v); %d active at the end, %d in the kernel, %d missing from it",
		len(decided), len(notSaved), len(lostAtKill), lostAtKill, len(active), len(active)-len(notInKernel), len(notInKernel))
	t.Logf("last run: reaction p50 %s p99 %s, ban errors %s, malformed %s, peak RSS %s", h["reaction_p50"], h["reaction_p99"], h["ban_errors"], h["malformed"], peak)
	if pos.Lines != written || pos.Events != written {
		t.Errorf("lines written %d, accounted %d lines and %d events", written, pos.Lines, pos.Events)
	}
	if len(notSaved) > 0 {
		t.Errorf("decided but not in the saved state: %v", firstN(notSaved, 20))
	}
	if len(notInKernel) > 0 {
		t.Errorf("active but not in the kernel: %v", firstN(notInKernel, 20))
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// procStatus returns a field of /proc/PID/status ("VmHWM").
func procStatus(pid int, field string) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}

// soakWriter is a logWriter whose every 200th line is a FIN probe from a
// source of its own (a ban), the others SYNs that cross no threshold.
type soakWriter struct{ *logWriter }

func newSoakWriter(t *testing.T, path string) soakWriter {
	w := soakWriter{newLogWriter(t, path)}
	w.line = func(i uint64) string {
		if i%200 == 199 {
			// 100.64.0.0/10: a source of its own for each ban.
			n := i / 200
			src := netip.AddrFrom4([4]byte{100, 64 | byte(n>>16&0x3f), byte(n >> 8), byte(n)})
			return strings.Replace(fileLine(src, 31337), " SYN ", " FIN ", 1)
		}
		return fileLine(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1000+int(i%5000))
	}
	return w
}

// scannerConnect is a connect scan of ports from src, each attempt given
// 500 ms.
func scannerConnect(src, dst netip.Addr, ports []uint16) {
	scanner.ConnectScan(context.Background(), src, dst, ports, 500*time.Millisecond)
}
