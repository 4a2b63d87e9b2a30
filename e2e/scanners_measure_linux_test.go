//go:build linux && measure

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// TestMeasureCPUPerEvent streams probes that never cross a threshold (one
// source, one UDP port) at 5k, 13k, 50k and 200k a second, with the
// repository's sentry.yaml, and divides the daemon's CPU time by the events
// it read.
func TestMeasureCPUPerEvent(t *testing.T) {
	l := newRepoLab(t)
	d := l.startRepoDaemon()
	// What the daemon costs doing nothing (health, tamper check, listening
	// ports, first strike's counters), to tell it from the events' cost.
	time.Sleep(time.Second)
	idle0 := cpuTicks(t, d)
	time.Sleep(6 * time.Second)
	idlePerSec := float64(cpuTicks(t, d)-idle0) * 10 / 6 // ms per second
	t.Logf("MEASURE idle daemon: %.1f ms CPU per second", idlePerSec)
	for _, rate := range []int{5000, 13000, 50000, 200000, -1} {
		time.Sleep(1500 * time.Millisecond)
		cpu0, ev0 := cpuTicks(t, d), healthEvents(d)
		// SENTRY_PERF=DIR records a CPU profile of the daemon (perf) at
		// each rate, for `perf report -i DIR/perf-RATE.data`.
		var perf *exec.Cmd
		if dir := os.Getenv("SENTRY_PERF"); dir != "" {
			perf = exec.Command("perf", "record", "-F", "4999", "-g", "-p", strconv.Itoa(d.cmd.Process.Pid),
				"-o", fmt.Sprintf("%s/perf-%d.data", dir, rate), "--", "sleep", "3")
			perf.Start()
		}
		start := time.Now()
		var sent int
		var elapsed time.Duration
		if rate > 0 {
			sent, elapsed = flood(t, l, rate, 3*time.Second)
		} else {
			// As fast as hping3 sends (the Go sender tops out near 75k/s),
			// one flow: one source, one port.
			testkit.Need(t, "hping3")
			before := logCounter(t, l)
			l.pair.Attacker.Command(t.Context(), "timeout", "-s", "INT", "3", "hping3", "--udp", "-p", "9", "-s", "5000", "-k",
				"--flood", "-q", "-I", l.pair.AttackerIf, l.pair.VictimIP4.String()).Run()
			elapsed = time.Since(start)
			sent = int(logCounter(t, l) - before)
		}
		if perf != nil {
			perf.Wait()
		}
		time.Sleep(2200 * time.Millisecond) // the backlog read, two health lines
		cpu, ev := cpuTicks(t, d)-cpu0, healthEvents(d)-ev0
		window := time.Since(start).Seconds()
		perEvent, net := time.Duration(0), time.Duration(0)
		if ev > 0 {
			perEvent = time.Duration(float64(cpu) * 10 * float64(time.Millisecond) / float64(ev))
			net = time.Duration((float64(cpu)*10 - idlePerSec*window) * float64(time.Millisecond) / float64(ev))
		}
		h := lastHealth(d)
		t.Logf("MEASURE %6d probes/s: sent %d in %s (%.0f/s), read %d events, daemon CPU %d ms over %.1fs: %s per event, %s net of the idle cost (overruns %s, bans %s)",
			rate, sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), ev, cpu*10, window,
			perEvent.Round(100*time.Nanosecond), net.Round(100*time.Nanosecond), h["overruns"], h["decisions_ban"])
		if ev == 0 {
			t.Errorf("%d probes/s: the daemon read no event, so no cost per event was measured", rate)
		}
	}
}

// cpuTicks is the daemon's user and system time in clock ticks (1/100 s).
func cpuTicks(t *testing.T, d *daemon) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime 14 and stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// TestMeasureSlowScan: nmap -T1 (15s between probes) maps ports far slower
// than any 60s window; the slow-scan rule (15 distinct ports within an
// hour) bans it. It takes about four minutes.
func TestMeasureSlowScan(t *testing.T) {
	testkit.Need(t, "nmap")
	l := newRepoLab(t)
	d := l.startRepoDaemon()
	p := l.pair
	done := make(chan string, 1)
	go func() { done <- l.nmap(p.AttackerIP4, p.VictimIP4, "-sS", "-T1", "--max-retries", "0", "-p", "1-20") }()
	key := p.AttackerIP4.String() + "/32"
	deadline := time.After(6 * time.Minute)
	for !strings.Contains(d.log(), "source="+key+" rule=slow-scan") {
		select {
		case out := <-done:
			t.Fatalf("nmap -T1 ended unbanned, learned %d:\n%s", l.learned(p.AttackerIP4), out)
		case <-deadline:
			t.Fatal("no ban within 6 minutes")
		case <-time.After(time.Second):
		}
	}
	t.Logf("MEASURE nmap -sS -T1: banned by slow-scan, learned %d answers", l.learned(p.AttackerIP4))
}
