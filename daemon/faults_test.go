package daemon

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/rules"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

// copyState copies state_dir's files as a kill -9 at this moment would
// leave them: state.json first, then positions.json, each whole (they are
// replaced by rename).
func copyState(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{state.FileName, state.PositionsFile} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			continue
		}
		os.WriteFile(filepath.Join(to, name), data, 0o640)
	}
	return to
}

// TestSavedPositionsMatchSavedOffences: whenever the daemon dies (kill -9),
// the saved file position and the saved offences are of one moment: the
// offences are exactly those of the lines before the position, so the next
// start neither decides a line twice nor skips one. And the position is
// saved within a second of a change, not 30 s.
func TestSavedPositionsMatchSavedOffences(t *testing.T) {
	r := newRig(t, tripwireRules, "bans: {max_new_per_minute: 0, single_packet: {max_new_per_minute: 0}}\n")
	_, stop := r.start(false)
	defer stop()
	stateDir := filepath.Join(r.dir, "state")
	const n = 3000
	var lines []string
	var ends []int64 // ends[i]: offset just after line i
	off := int64(0)
	for i := range n {
		l := line(time.Now(), netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), 23, "FIN")
		lines = append(lines, l)
		off += int64(len(l))
		ends = append(ends, off)
	}
	check := func(dir string) (int, bool) {
		st, err := state.Load(dir)
		if err != nil || len(st.Files) != 1 {
			return 0, false
		}
		// The lines up to the saved offset, and only they, are offences.
		k := 0
		for k < n && ends[k] <= st.Files[0].Offset {
			k++
		}
		if k > 0 && ends[k-1] != st.Files[0].Offset {
			t.Errorf("saved offset %d is not a line end", st.Files[0].Offset)
		}
		if len(st.Offences) != k {
			t.Errorf("saved offset covers %d lines but %d offences were saved with it", k, len(st.Offences))
		}
		return k, true
	}
	// Written in bursts while snapshots are taken.
	snapshots := 0
	for i := 0; i < n; i += 100 {
		r.appendLines(lines[i : i+100]...)
		time.Sleep(40 * time.Millisecond)
		if _, ok := check(copyState(t, stateDir)); ok {
			snapshots++
		}
	}
	// Once everything is decided, it is saved within a second or so.
	r.waitBans(n)
	time.Sleep(1500 * time.Millisecond)
	k, _ := check(copyState(t, stateDir))
	if k != n {
		t.Errorf("1.5 s after the last decision, the saved position covers %d of %d lines", k, n)
	}
	if snapshots < 5 {
		t.Errorf("only %d snapshots held a position", snapshots)
	}
}

// TestFlushedSetIsRefilled: `nft flush set inet sentry blocked4` leaves
// every object in place; the verification compares the sets with the bans
// the engine holds and puts back what is missing, with its time left.
func TestFlushedSetIsRefilled(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, stop := r.start(false)
	r.appendLines(line(time.Now(), "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	stop()
	r.table.flushSets()
	d.checkTamper(context.Background(), false)
	if r.table.has(pfx("203.0.113.7/32")) {
		t.Fatal("refilled without a verification: the test proves nothing")
	}
	d.checkTamper(context.Background(), true)
	if !r.table.has(pfx("203.0.113.7/32")) {
		t.Fatalf("ban not put back after the set was flushed; log:\n%s", r.logs.String())
	}
	// One FIN is single-packet evidence: a 10 min first ban.
	if e, _ := r.table.List(); len(e) != 1 || e[0].Timeout < 9*time.Minute {
		t.Errorf("restored %+v, want the time left of the 10m ban", e)
	}
	if !strings.Contains(r.logs.String(), "bans were missing from the kernel's sets") {
		t.Errorf("not logged:\n%s", r.logs.String())
	}
}

// TestTableRepairNeverStallsDecisions: the table's checks run beside the
// loop: while reading the kernel takes long (a set of a million elements,
// a flush storm), events are decided and banned.
func TestTableRepairNeverStallsDecisions(t *testing.T) {
	r := newRig(t, tripwireRules, "bans: {max_new_per_minute: 0, single_packet: {max_new_per_minute: 0}}\n")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var held atomic.Bool
	r.table.missingHook = func() {
		if held.CompareAndSwap(false, true) {
			entered <- struct{}{}
			<-release
		}
	}
	_, stop := r.start(false)
	defer stop()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the table check never ran")
	}
	// The check is held; decisions go on.
	r.appendLines(line(time.Now(), "203.0.113.7", 23, "FIN"), line(time.Now(), "203.0.113.8", 23, "FIN"))
	r.waitBans(2)
	close(release)
}

// TestKmsgThatEndsIsRestarted: /dev/kmsg replaced by /dev/null makes the
// kmsg input fail visibly (logged, counted) and retried, while the other
// inputs go on.
func TestKmsgThatEndsIsRestarted(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	src := sources.NewKmsgSource(sources.KmsgConfig{Path: os.DevNull})
	kmsg := newInput(src, func() metrics.Input { return metrics.Input{} })
	d.inputs = append(d.inputs, kmsg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.waitLog(`msg="input failed; restarting it" input=kmsg`, "not the kernel log device")
	r.appendLines(line(time.Now(), "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if kmsg.stats().Failures == 0 {
		t.Error("the failure was not counted")
	}
}

// TestOffenceHistoryIsBounded: limits.max_offences bounds what is loaded
// and what is kept: the oldest offences go first, active bans never.
func TestOffenceHistoryIsBounded(t *testing.T) {
	r := newRig(t, tripwireRules, "limits: {max_offences: 1024}\n")
	now := time.Now()
	st := &state.State{}
	for i := range 3000 {
		o := rules.Offence{Key: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 32), Count: 1, LastBan: now.Add(-time.Duration(i) * time.Minute)}
		if i%100 == 99 {
			o.BannedUntil = now.Add(time.Hour) // 30 active, among the oldest
		}
		st.Offences = append(st.Offences, o)
	}
	if err := state.Save(filepath.Join(r.dir, "state"), st); err != nil {
		t.Fatal(err)
	}
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	offs := d.engine.Offences()
	if len(offs) != 1024 {
		t.Fatalf("%d offences loaded, want 1024", len(offs))
	}
	active := 0
	for _, o := range offs {
		if o.BannedUntil.After(now) {
			active++
		}
	}
	if active != 30 {
		t.Errorf("%d active bans kept, want all 30", active)
	}
	// New bans push the total over: the oldest go.
	for i := range 100 {
		d.engine.Restore(rules.Offence{Key: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}), 32), Count: 1, LastBan: now})
	}
	d.bound()
	if n := len(d.engine.Offences()); n > 1024 || n < 1024-1024/16 {
		t.Errorf("%d offences after bound, want 960-1024", n)
	}
	d.maybeSave(true)
	saved, err := state.Load(filepath.Join(r.dir, "state"))
	if err != nil || len(saved.Offences) > 1024 {
		t.Errorf("saved %d offences (%v)", len(saved.Offences), err)
	}
}

// TestFIFOAtFollowedPathHoldsNothingUp: a FIFO at one followed path (at
// start) neither blocks the daemon from running, nor the other inputs, nor
// its stop.
func TestFIFOAtFollowedPathHoldsNothingUp(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	fifo := filepath.Join(r.dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	r.cfg.Inputs.Files = append([]string{fifo}, r.cfg.Inputs.Files...)
	_, stop := r.start(false) // waits for "running"
	r.waitLog(`msg="the path is not a regular file: waiting for a regular file there"`, `is="a FIFO"`)
	r.appendLines(line(time.Now(), "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAfterRotationWithABacklog: stopped, more lines than the event
// queue holds written, the file rotated by rename, started: the daemon
// reads the rest of the rotated file and decides it while getting ready,
// reports running, and stops cleanly (nothing waits for anything).
func TestRestartAfterRotationWithABacklog(t *testing.T) {
	r := newRig(t, tripwireRules, "bans: {max_new_per_minute: 0, single_packet: {max_new_per_minute: 0}}\n")
	r.appendLines("")
	_, stop := r.start(false)
	r.appendLines(line(time.Now(), "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	const n = 2 * eventQueue
	var lines []string
	for i := range n {
		lines = append(lines, line(time.Now(), netip.AddrFrom4([4]byte{10, 4, byte(i >> 8), byte(i)}).String(), 23, "FIN"))
	}
	r.appendLines(lines...)
	if err := os.Rename(r.log, r.log+".1"); err != nil {
		t.Fatal(err)
	}
	r.appendLines(line(time.Now(), "203.0.113.8", 23, "FIN"))
	_, stop = r.start(false) // waits for "running"
	r.waitBans(1 + n + 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
