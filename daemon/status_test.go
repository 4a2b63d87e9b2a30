package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
)

func TestRates(t *testing.T) {
	var r rates
	t0 := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	if e, d := r.perMinute(); e != 0 || d != 0 {
		t.Errorf("no samples: %v %v", e, d)
	}
	r.add(t0, 0, 0)
	r.add(t0.Add(30*time.Second), 600, 3)
	if e, d := r.perMinute(); e != 1200 || d != 6 {
		t.Errorf("after 30 s: %v events/min, %v decisions/min; want 1200 and 6", e, d)
	}
	// A steady 100 events a second for five minutes: the rate is over the
	// last minute only.
	for i := 2; i <= 60; i++ {
		r.add(t0.Add(time.Duration(i)*StatusEvery), uint64(600+(i-1)*500), 3)
	}
	if e, d := r.perMinute(); e != 6000 || d != 0 {
		t.Errorf("steady: %v events/min, %v decisions/min; want 6000 and 0", e, d)
	}
}

// The ring keeps the last warnings and errors, with their attributes
// (bounded), passes every record on, and keeps no info.
func TestRingHandler(t *testing.T) {
	var out syncBuffer
	ring := &logRing{}
	log := slog.New(&ringHandler{next: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}), ring: ring})
	log.Info("running")
	comp := log.With("component", "fleet").WithGroup("g")
	comp.Warn("refused", "why", strings.Repeat("x", 1000))
	for i := range lastErrors + 3 {
		log.Error("cannot write", "n", i)
	}
	recs := ring.records()
	if len(recs) != lastErrors {
		t.Fatalf("%d records kept, want %d", len(recs), lastErrors)
	}
	if recs[0].Attrs != "n=3" || recs[lastErrors-1].Attrs != fmt.Sprintf("n=%d", lastErrors+2) || recs[0].Level != "ERROR" {
		t.Errorf("kept %+v ... %+v, want the last ones, oldest first", recs[0], recs[lastErrors-1])
	}
	ring2 := &logRing{}
	slog.New(&ringHandler{next: slog.DiscardHandler, ring: ring2}).With("component", "fleet").WithGroup("g").Warn("refused", "why", strings.Repeat("x", 1000))
	r := ring2.records()
	if len(r) != 1 || !strings.HasPrefix(r[0].Attrs, "component=fleet g.why=xxx") || len(r[0].Attrs) > maxAttrs+3 || r[0].Level != "WARN" {
		t.Errorf("warning kept as %+v", r)
	}
	if strings.Contains(out.String(), "running") || strings.Count(out.String(), "cannot write") != lastErrors+3 {
		t.Errorf("passed on:\n%s", out.String())
	}
}

// The running daemon writes its status every few seconds; the last one,
// when it stops, says so.
func TestStatusFile(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	r.table.bans[pfx("198.51.100.1/32")] = actions.BanEntry{Key: pfx("198.51.100.1/32"), Timeout: time.Hour, Expires: time.Hour, Origin: actions.OriginManual}
	d, stop := r.start(false)
	at := time.Now()
	r.appendLines(line(at, "203.0.113.7", 23, "FIN"), "garbage line\n")
	r.waitBans(1)
	d.log.Error("a test failure", "err", errors.New("boom"))
	d.onLoop(context.Background(), d.writeStatus)
	var st *Status
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		st, err = ReadStatus(r.cfg.StateDir)
		if err == nil && st.Events == 1 && len(st.LastErrors) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status with the event within 5 s: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
		d.onLoop(context.Background(), d.writeStatus)
	}
	if st.PID != os.Getpid() || st.Stopped || st.IntervalSeconds != 5 || st.Table != "inet sentry" || st.FirstStrike != "off" {
		t.Errorf("status %+v", st)
	}
	if len(st.Inputs) != 1 || !st.Inputs[0].Ready || st.Inputs[0].Events != 1 || st.Inputs[0].Name != "file:"+r.log {
		t.Errorf("inputs %+v", st.Inputs)
	}
	if st.Decisions["ban"] != 1 || st.Bans.Active["manual"] != 1 {
		t.Errorf("decisions %v, bans %+v", st.Decisions, st.Bans)
	}
	if last := st.LastErrors[len(st.LastErrors)-1]; last.Message != "a test failure" || last.Attrs != "err=boom" {
		t.Errorf("last errors %+v", st.LastErrors)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(r.cfg.StateDir)
	if err != nil || !st.Stopped {
		t.Fatalf("after stop: %+v %v", st, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(r.cfg.StateDir, StatusFile+".tmp-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}
