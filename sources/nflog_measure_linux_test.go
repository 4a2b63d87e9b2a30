//go:build linux && measure

package sources

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// TestNFLOGMeasure measures what the NFLOGConfig defaults were chosen by:
// the reaction delay of single probes and the loss under a UDP flood, for
// several kernel batching settings. It is built only with the measure tag
// (as root) and prints tables; it asserts nothing.
//
//	go test -tags measure ./sources -run NFLOGMeasure -v -timeout 20m
func TestNFLOGMeasure(t *testing.T) {
	nflogTestRequireRoot(t)

	type setting struct {
		name       string
		qthresh    uint32 // 0: kernel default (100)
		timeout    time.Duration
		ruleQ      uint16 // rule-side queue-threshold, 0: none
		readBuffer int
		adaptive   bool
	}
	const mib8 = 8 << 20
	delays := []setting{
		{"default (adaptive, qthresh 1 when calm)", 1, 0, 0, mib8, true},
		{"qthresh 1", 1, 0, 0, mib8, false},
		{"kernel defaults (100 pkts / 1 s)", 0, 0, 0, mib8, false},
		{"timeout 10ms (qthresh 100)", 0, 10 * time.Millisecond, 0, mib8, false},
		{"qthresh 32 + timeout 10ms", 32, 10 * time.Millisecond, 32, mib8, false},
	}
	t.Log("reaction delay (consumer receive time - kernel timestamp), single TCP SYN probes 30 ms apart:")
	t.Logf("%-40s %5s %9s %9s %9s %9s", "setting", "n", "min", "p50", "p99", "max")
	for _, st := range delays {
		n := newNFLOGTestNet(t)
		n.InstallLogRule(t, nflogTestGroup, st.ruleQ)
		src := NewNFLOGSource(NFLOGConfig{Group: nflogTestGroup, NetNS: n.VictimFd, FlushTimeout: st.timeout, ReadBuffer: st.readBuffer, FixedBatching: !st.adaptive})
		src.cfg.QueueThreshold = st.qthresh
		out, stop := nflogTestStart(t, n, src, 1024)
		const probes = 40
		var ds []time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			timeout := time.After(probes*30*time.Millisecond + 3*time.Second)
			for len(ds) < probes {
				select {
				case it := <-out:
					ev := it.Event
					if ev.Proto == parsers.ProtoTCP && ev.DstPort >= 10000 && ev.Flags == parsers.SYN {
						ds = append(ds, time.Since(ev.Time))
					}
				case <-timeout:
					return
				}
			}
		}()
		err := n.InAttacker(func() error {
			for i := range probes {
				// A raw-ish single SYN: connect with a short timeout; the RST
				// ends it at once. Distinct ports avoid retransmissions.
				nflogTestSYN(nflogTestVictim4, 10000+i)
				time.Sleep(30 * time.Millisecond)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		<-done
		stop()
		slices.Sort(ds)
		if len(ds) == 0 {
			t.Errorf("%-40s no events: nothing measured", st.name)
			continue
		}
		q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
		t.Logf("%-40s %5d %9v %9v %9v %9v", st.name, len(ds), ds[0].Round(time.Microsecond), q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond))
	}

	if os.Getenv("SENTRY_MEASURE_ONLY_ADAPTIVE") == "1" {
		delays = nil
	}
	floods := []setting{
		{"default: adaptive 1/32 + 8 MiB", 1, 0, 0, mib8, true},
		{"qthresh 1 + 8 MiB", 1, 0, 0, mib8, false},
		{"qthresh 32 (rule+cfg) + 10ms + 8 MiB", 32, 10 * time.Millisecond, 32, mib8, false},
		{"kernel defaults + 8 MiB", 0, 0, 0, mib8, false},
	}
	rates := []int{50_000, 100_000, 150_000, 200_000, 300_000, 0} // 0: as fast as possible
	t.Log("UDP flood, 32-byte payloads to a closed port, about 3 s per rate (loss = rule counter - events):")
	t.Logf("%-40s %8s %9s %9s %9s %9s %7s %9s %8s", "setting", "target/s", "sent/s", "counted", "events", "lost", "loss%", "overruns", "events/s")
	for _, st := range floods {
		n := newNFLOGTestNet(t)
		n.InstallLogRule(t, nflogTestGroup, st.ruleQ)
		if os.Getenv("SENTRY_MEASURE_ONLY_ADAPTIVE") == "1" && !st.adaptive {
			continue
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		src := NewNFLOGSource(NFLOGConfig{Group: nflogTestGroup, NetNS: n.VictimFd, FlushTimeout: st.timeout, ReadBuffer: st.readBuffer, FixedBatching: !st.adaptive, Logger: log})
		src.cfg.QueueThreshold = st.qthresh
		out, stop := nflogTestStart(t, n, src, 4096)
		var events atomic.Uint64
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for {
				select {
				case it := <-out:
					ev := it.Event
					if ev.DstPort == 7777 {
						events.Add(1)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		for _, rate := range rates {
			before, ev0, ov0 := n.RuleCounter(t), events.Load(), src.Stats().Overruns
			var sent int
			var elapsed time.Duration
			var firstEv, lastEv time.Time
			err := n.InAttacker(func() error {
				var err error
				sent, elapsed, err = nflogFlood(rate, 3*time.Second, 2_000_000)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// Wait until events stop arriving (bounded).
			firstEv = time.Now().Add(-elapsed)
			prev, still := events.Load(), 0
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && still < 10; {
				time.Sleep(50 * time.Millisecond)
				if cur := events.Load(); cur == prev {
					still++
				} else {
					prev, still, lastEv = cur, 0, time.Now()
				}
			}
			if lastEv.IsZero() {
				lastEv = time.Now()
			}
			counted := n.RuleCounter(t) - before
			got := events.Load() - ev0
			if got == 0 {
				t.Errorf("%s at %d/s: no event read, nothing measured", st.name, rate)
			}
			lost := int64(counted) - int64(got)
			target := "max"
			if rate > 0 {
				target = fmt.Sprint(rate)
			}
			t.Logf("%-40s %8s %9.0f %9d %9d %9d %6.2f%% %9d %8.0f", st.name, target,
				float64(sent)/elapsed.Seconds(), counted, got, lost, 100*float64(lost)/float64(max(counted, 1)),
				src.Stats().Overruns-ov0, float64(got)/lastEv.Sub(firstEv).Seconds())
		}
		cancel()
		stop()
	}
}

// nflogFlood sends 32-byte UDP datagrams to the victim's closed port 7777
// from an unconnected socket at rate per second (0: as fast as it can) for d or until count are sent.
func nflogFlood(rate int, d time.Duration, count int) (int, time.Duration, error) {
	// Unconnected, so ICMP port unreachables do not fail later sends.
	c, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		return 0, 0, err
	}
	dst := &net.UDPAddr{IP: net.ParseIP(nflogTestVictim4), Port: 7777}
	defer c.Close()
	b := make([]byte, 32)
	start := time.Now()
	end := start.Add(d)
	sent := 0
	const burst = 64
	for sent < count {
		for range burst {
			if _, err := c.WriteTo(b, dst); err != nil {
				return sent, time.Since(start), err
			}
		}
		sent += burst
		now := time.Now()
		if now.After(end) {
			break
		}
		if rate > 0 {
			if due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second))); due.After(now) {
				time.Sleep(due.Sub(now))
			}
		}
	}
	return sent, time.Since(start), nil
}
