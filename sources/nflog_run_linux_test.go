package sources

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// nflogTestRecorder is a slog handler that keeps the warnings logged.
type nflogTestRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *nflogTestRecorder) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn
}
func (h *nflogTestRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *nflogTestRecorder) WithGroup(string) slog.Handler      { return h }
func (h *nflogTestRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}

func (h *nflogTestRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// nflogTestWithin runs fn and fails the test if it has not returned
// within 5 s: a deadlock detector, not a speed check.
func nflogTestWithin(t *testing.T, what string, fn func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(5 * time.Second):
		t.Errorf("%s blocked while the hook waits for the consumer", what)
		return false
	}
}

// TestNFLOGRunSlowConsumer: while the hook waits for a consumer that does
// not read, an overrun is still counted, logged and answered by the
// batching switch, and shutdown takes the pending send back; after the
// shutdown, the hook sends nothing.
func TestNFLOGRunSlowConsumer(t *testing.T) {
	rec := &nflogTestRecorder{}
	src := NewNFLOGSource(NFLOGConfig{Logger: slog.New(rec)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var switched []bool
	out := make(chan Item) // nobody reads
	r := &nflogRun{
		src:      src,
		ctx:      ctx,
		out:      out,
		prefixes: newNFLOGIntern(nflogMaxPrefixes),
		ifnames:  &nflogIfNames{names: map[uint32]string{7: "eth0"}},
		clock:    newNFLOGClock(),
		adapt: &nflogAdapt{start: time.Now(), send: func(batched bool) (uint32, error) {
			mu.Lock()
			switched = append(switched, batched)
			mu.Unlock()
			return 1, nil
		}},
	}

	hooked := make(chan bool, 1)
	go func() {
		a := nflogBenchAttr()
		hooked <- r.hook(&a)
	}()
	// The hook has decoded the packet and is about to block in its send.
	for deadline := time.Now().Add(5 * time.Second); src.Stats().Received == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the hook did not run")
		}
		time.Sleep(time.Millisecond)
	}

	if nflogTestWithin(t, "the overrun", r.overrun) {
		if st := src.Stats(); st.Overruns != 1 || st.LastOverrun.IsZero() {
			t.Errorf("stats after an overrun: %+v", st)
		}
		if rec.count() != 1 {
			t.Errorf("%d overrun warnings, want 1", rec.count())
		}
		mu.Lock()
		if len(switched) != 1 || !switched[0] {
			t.Errorf("batching requests %v, want [true]", switched)
		}
		mu.Unlock()
	}
	nflogTestWithin(t, "the final overrun report", func() { r.logOverruns(true) })

	// Shutdown: the pending send gives up on ctx, stop waits for it.
	cancel()
	if !nflogTestWithin(t, "stop", r.stop) {
		return
	}
	select {
	case ret := <-hooked:
		if ret {
			t.Error("interrupted hook returned true, want false (stop reading)")
		}
	case <-time.After(5 * time.Second):
		t.Error("the hook call did not return after stop")
	}
	if st := src.Stats(); st.Events != 0 {
		t.Errorf("%d events counted as sent to a consumer that never read", st.Events)
	}

	// After stop, even a consumer ready to read gets nothing.
	r.out = make(chan Item, 1)
	a := nflogBenchAttr()
	if ret := r.hook(&a); ret || len(r.out) != 0 {
		t.Errorf("hook after stop returned %v and sent %d events", ret, len(r.out))
	}
}
