//go:build linux

package sources

import (
	"log/slog"
	"testing"
	"time"
)

// A kernel stamp that agrees with the monotonic clock is kept; one a wall
// clock step put an hour off is replaced, counted, and logged once.
func TestNFLOGClockStampsAroundASteppedWallClock(t *testing.T) {
	rec := &nflogTestRecorder{}
	src := NewNFLOGSource(NFLOGConfig{Logger: slog.New(rec)})
	c := newNFLOGClock()
	now := time.Now()
	if got := c.stamp(now, true, src); !got.Equal(now) {
		t.Errorf("an agreeing stamp was changed: %v, want %v", got, now)
	}
	for i := 0; i < 3; i++ {
		back := time.Now().Add(-time.Hour)
		if got := c.stamp(back, true, src); got.Sub(back) < 59*time.Minute {
			t.Errorf("a stamp an hour back was kept: %v", got)
		}
	}
	if n := src.Stats().ClockSteps; n != 3 {
		t.Errorf("ClockSteps = %d, want 3", n)
	}
	if rec.count() != 1 {
		t.Errorf("%d warnings, want 1", rec.count())
	}
	if got := c.stamp(time.Time{}, false, src); time.Since(got) > time.Second {
		t.Errorf("no stamp: %v, want now", got)
	}
}
