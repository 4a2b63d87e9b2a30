package sources

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestNFLOGAdaptSwitches drives the batching switch with packet times: a
// stream (256 packets within 100 ms) asks for batches, a calm second (under
// 1000 packets) for single packets again, an overrun for batches at once.
func TestNFLOGAdaptSwitches(t *testing.T) {
	var sent []bool
	fail := false
	start := time.Unix(1000, 0)
	a := &nflogAdapt{start: start, send: func(b bool) (uint32, error) {
		if fail {
			return 0, errors.New("netlink: no buffer space")
		}
		sent = append(sent, b)
		return 1, nil
	}}
	log := slog.New(slog.DiscardHandler)
	now := start
	feed := func(n int, every time.Duration) {
		for i := 0; i < n; i++ {
			now = now.Add(every)
			a.packet(log, now)
		}
	}
	// 1000 packets/s for 3 s: calm, nothing sent.
	feed(3000, time.Millisecond)
	// 2000 packets/s: 200 in 100 ms, still calm.
	feed(1000, 500*time.Microsecond)
	if len(sent) != 0 || a.batched {
		t.Fatalf("calm traffic switched: %v", sent)
	}
	// 100k/s: within the first 256 packets, batches.
	feed(1100, 10*time.Microsecond)
	if len(sent) != 1 || !sent[0] || !a.batched {
		t.Fatalf("flood: sent %v, batched %v", sent, a.batched)
	}
	// Still a flood: no further request.
	feed(200000, 10*time.Microsecond)
	if len(sent) != 1 {
		t.Fatalf("requests during the flood: %v", sent)
	}
	// A calm second (500/s), then single packets again.
	feed(1000, 2*time.Millisecond)
	if len(sent) != 2 || sent[1] || a.batched {
		t.Fatalf("after calm: sent %v, batched %v", sent, a.batched)
	}
	// An overrun switches at once.
	a.flood(log, now)
	if len(sent) != 3 || !sent[2] {
		t.Fatalf("overrun: sent %v", sent)
	}
	// Calm again, then a flood whose request fails: the state stays
	// what the kernel has (single packets), and a later flood retries.
	feed(1000, 2*time.Millisecond)
	if a.batched || len(sent) != 4 {
		t.Fatalf("second calm: sent %v, batched %v", sent, a.batched)
	}
	fail = true
	feed(1100, 10*time.Microsecond)
	if a.batched {
		t.Error("a failed request switched the state to batches")
	}
	fail = false
	feed(1100, 10*time.Microsecond)
	if !a.batched || len(sent) != 5 {
		t.Errorf("retry after a failed request: sent %v, batched %v", sent, a.batched)
	}
}
