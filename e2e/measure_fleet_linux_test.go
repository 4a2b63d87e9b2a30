//go:build linux && measure

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The fleet's measurements run the real nats-server on the loopback
// address of this machine (nothing leaves it) and the hosts in this
// process, one fleet.Link each, every receiver inserting into a table of
// its own in a network namespace: the path of a remote ban from the
// origin's decision (Publisher.Act) to the element in a receiver's set.

func loopbackPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func measureLink(t *testing.T, name string, urls []string) *fleet.Link {
	t.Helper()
	l, err := fleet.Dial(fleet.Config{Servers: urls, Name: name, Log: slog.New(slog.NewTextHandler(t.Output(), nil)).With("link", name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// measureReceiver receives with its own link and inserts into its own
// table, recording each ban's delay from the origin's decision to the
// element in the set, and when it arrived.
type measureReceiver struct {
	mu      sync.Mutex
	delays  []time.Duration
	arrived []time.Time
	keys    map[netip.Prefix]bool
	caught  time.Time // when the message with nothing pending came
}

func startReceiver(t *testing.T, name string, urls []string, ns *netnstest.NS) *measureReceiver {
	t.Helper()
	spec := actions.TableSpec{Table: "m" + name, ManageChain: true}
	tab, err := actions.OpenTable(spec, ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Apply(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	l := measureLink(t, name, urls)
	r := &measureReceiver{keys: map[netip.Prefix]bool{}}
	ch := make(chan fleet.Message, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Receive(ctx, ch); close(done) }()
	go func() {
		for m := range ch {
			if os.Getenv("FLEET_NO_INSERT") != "" {
				// Receiving alone, to tell its cost from the kernel's.
			} else if err := tab.BanFrom(m.Key, time.Until(m.Until), m.Origin); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			now := time.Now()
			r.mu.Lock()
			r.delays = append(r.delays, now.Sub(m.Decided))
			r.arrived = append(r.arrived, now)
			r.keys[m.Key] = true
			if m.Pending == 0 && r.caught.IsZero() {
				r.caught = now
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; close(ch) })
	return r
}

func (r *measureReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

func waitCount(t *testing.T, rs []*measureReceiver, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, r := range rs {
		for r.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("a receiver has %d of %d bans after %v", r.count(), n, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func key4(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
}

// key6 returns the i-th distinct /64 in 2001:db8::/32.
func key6(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
}

// TestMeasureFleetPropagation: origin ban -> element in each receiver's
// set, with 3 and with 50 receivers (their connections in this process).
func TestMeasureFleetPropagation(t *testing.T) {
	netnstest.Require(t)
	for _, n := range []int{3, 50} {
		t.Run(fmt.Sprintf("%d receivers", n), func(t *testing.T) {
			addr := loopbackPort(t)
			startNatsAt(t, "m0", nil, addr, "")
			urls := []string{"nats://" + addr.String()}
			ns := netnstest.NewLAN(t, 1).Hosts[0].NS
			var rs []*measureReceiver
			for i := range n {
				rs = append(rs, startReceiver(t, fmt.Sprintf("r%d", i), urls, ns))
			}
			origin := measureLink(t, "origin", urls)
			pub := origin.Publisher()
			defer pub.Close()
			// Warm up: the stream exists and every consumer runs.
			pub.Act(&rules.Decision{Action: rules.Ban, Key: key4(0), Source: key4(0).Addr(), Rule: "warm", Ban: time.Hour})
			waitCount(t, rs, 1, 30*time.Second)
			for _, r := range rs {
				r.mu.Lock()
				r.delays = nil
				r.mu.Unlock()
			}
			const bans = 300
			for i := 1; i <= bans; i++ {
				k := key4(i)
				pub.Act(&rules.Decision{Action: rules.Ban, Key: k, Source: k.Addr(), Rule: "m", Ban: time.Hour})
				time.Sleep(10 * time.Millisecond)
			}
			waitCount(t, rs, bans+1, time.Minute)
			var all []time.Duration
			for _, r := range rs {
				all = append(all, r.delays...)
			}
			t.Logf("MEASURE propagation, %d receivers, %d bans each (origin's decision -> element in the receiver's set): p50 %v, p99 %v, max %v",
				n, bans, percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1))
		})
	}
}

// serverRSS is the resident memory of a process, from /proc.
func serverRSS(t *testing.T, pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "?"
}

// TestMeasureFleetLoad: a fresh host loads 100,000 active bans; the
// server's memory with them.
func TestMeasureFleetLoad(t *testing.T) {
	netnstest.Require(t)
	addr := loopbackPort(t)
	srv := startNatsAt(t, "m0", nil, addr, "")
	urls := []string{"nats://" + addr.String()}
	origin := measureLink(t, "origin", urls)
	pub := origin.Publisher()
	pub.Act(&rules.Decision{Action: rules.Ban, Key: key4(0), Source: key4(0).Addr(), Rule: "m", Ban: time.Hour})
	pub.Close()
	t.Logf("MEASURE server RSS with the empty stream: %s", serverRSS(t, srv.pid()))
	nc, err := nats.Connect(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	const total = 100000
	start := time.Now()
	publishBans(t, js, 1, total) // the origin's link published the first
	t.Logf("MEASURE published %d bans in %v", total, time.Since(start).Round(time.Millisecond))
	t.Logf("MEASURE server RSS with %d active bans: %s", total, serverRSS(t, srv.pid()))
	ns := netnstest.NewLAN(t, 1).Hosts[0].NS
	start = time.Now()
	r := startReceiver(t, "fresh", urls, ns)
	waitCount(t, []*measureReceiver{r}, total, 5*time.Minute)
	r.mu.Lock()
	caught := r.caught.Sub(start)
	r.mu.Unlock()
	t.Logf("MEASURE a fresh host loaded %d active bans into its set in %v (the last delivered after %v)",
		total, time.Since(start).Round(time.Millisecond), caught.Round(time.Millisecond))
}

// publishBans publishes an hour's ban of key4(i) from "origin" for each i
// in [from, to), as a daemon would, and waits (two minutes at most) until
// the server has stored them all.
func publishBans(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	publishKeys(t, js, from, to, key4)
}

// publishKeys is publishBans of key(i).
func publishKeys(t *testing.T, js jetstream.JetStream, from, to int, key func(int) netip.Prefix) {
	t.Helper()
	now := time.Now()
	for i := from; i < to; i++ {
		k := key(i)
		m := fleet.Message{Kind: fleet.KindBan, Origin: "origin", Key: k, Address: k.Addr(), Rule: "tcp-portscan", Ban: time.Hour,
			Decided: now, Until: now.Add(time.Hour), Offence: 1, Ports: []uint16{20, 21, 22, 23, 24}, Hits: 5}
		data, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(fleet.Subject("sentry_bans", "origin", k), data, jetstream.WithMsgTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		t.Fatalf("publishing %d bans did not finish within 2 minutes", to-from)
	}
}

// TestMeasureFleetFailover: the gap a receiver sees when the server is
// killed (SIGKILL) and restarted at once, and when the stream leader of a
// three-server cluster is killed; a ban is published every 20 ms
// throughout, and none may be lost.
func TestMeasureFleetFailover(t *testing.T) {
	netnstest.Require(t)
	run := func(t *testing.T, urls []string, kill func()) {
		ns := netnstest.NewLAN(t, 1).Hosts[0].NS
		r := startReceiver(t, "r", urls, ns)
		origin := measureLink(t, "origin", urls)
		pub := origin.Publisher()
		defer pub.Close()
		// Warm up: the stream exists and the receiver runs.
		pub.Act(&rules.Decision{Action: rules.Ban, Key: key4(0), Source: key4(0).Addr(), Rule: "m", Ban: time.Hour})
		waitCount(t, []*measureReceiver{r}, 1, time.Minute)
		const bans = 750 // 15 s
		var killedAt time.Time
		for i := 1; i < bans; i++ {
			if i == 250 {
				killedAt = time.Now()
				kill()
			}
			k := key4(i)
			pub.Act(&rules.Decision{Action: rules.Ban, Key: k, Source: k.Addr(), Rule: "m", Ban: time.Hour})
			time.Sleep(20 * time.Millisecond)
		}
		waitCount(t, []*measureReceiver{r}, bans, time.Minute)
		r.mu.Lock()
		defer r.mu.Unlock()
		var gap time.Duration
		var resumed time.Time
		for i := 1; i < len(r.arrived); i++ {
			gap = max(gap, r.arrived[i].Sub(r.arrived[i-1]))
			if resumed.IsZero() && r.arrived[i].After(killedAt) && r.arrived[i].Sub(r.arrived[i-1]) > 200*time.Millisecond {
				resumed = r.arrived[i]
			}
		}
		t.Logf("MEASURE longest gap between two bans at the receiver: %v; first ban after the kill %v after it; %d of %d received; delay p50 %v p99 %v max %v",
			gap.Round(time.Millisecond), resumed.Sub(killedAt).Round(time.Millisecond), len(r.keys), bans,
			percentile(r.delays, 0.5), percentile(r.delays, 0.99), percentile(r.delays, 1).Round(time.Millisecond))
	}
	t.Run("one server killed and restarted", func(t *testing.T) {
		addr := loopbackPort(t)
		srv := startNatsAt(t, "m0", nil, addr, "")
		run(t, []string{"nats://" + addr.String()}, func() { srv.restart() })
	})
	t.Run("cluster leader killed", func(t *testing.T) {
		var clients, routes []netip.AddrPort
		for range 3 {
			clients = append(clients, loopbackPort(t))
			routes = append(routes, loopbackPort(t))
		}
		var rs []string
		for _, r := range routes {
			rs = append(rs, "nats-route://"+r.String())
		}
		var srvs []*natsProc
		var urls []string
		for i := range 3 {
			conf := fmt.Sprintf("cluster: {name: m, listen: %q, routes: [%s]}\n", routes[i], strings.Join(rs, ", "))
			srvs = append(srvs, startNatsAt(t, fmt.Sprintf("m%d", i), nil, clients[i], conf))
			urls = append(urls, "nats://"+clients[i].String())
		}
		nc, err := nats.Connect(strings.Join(urls, ","))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		run(t, urls, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := js.Stream(ctx, fleet.DefaultBucket)
			if err != nil {
				t.Fatal(err)
			}
			info := s.CachedInfo()
			for _, p := range srvs {
				if p.name == info.Cluster.Leader {
					t.Logf("killing the stream leader %s (replicas %d)", p.name, info.Config.Replicas)
					p.kill()
				}
			}
		})
	})
}

// TestMeasureFleetLoadDaemon: `sentry-nflog run` on a fresh host loads
// 100,000 active bans through all of its checks into its set: IPv4
// addresses, and IPv6 /64s, whose interval set the kernel walks at every
// commit.
func TestMeasureFleetLoadDaemon(t *testing.T) {
	requireFleetTools(t)
	for _, c := range []struct {
		name string
		key  func(int) netip.Prefix
	}{{"ipv4", key4}, {"ipv6-64", key6}} {
		t.Run(c.name, func(t *testing.T) {
			lan := netnstest.NewLAN(t, 3)
			srv := startNats(t, "s0", lan.Hosts[0], "")
			urls := []string{srv.url()}
			_, js := natsClient(t, lan.Hosts[2].NS, urls)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "sentry_bans", Subjects: []string{"sentry_bans.>"},
				MaxMsgsPerSubject: 1, AllowMsgTTL: true, Storage: jetstream.FileStorage}); err != nil {
				t.Fatal(err)
			}
			const total = 100000
			publishKeys(t, js, 0, total, c.key)
			t.Logf("MEASURE server RSS with %d active bans (after publishing them): %s", total, serverRSS(t, srv.pid()))
			h := newFleetHost(t, "fresh", lan.Hosts[1], lan.Hosts[2], urls, "  max_remote_per_minute: 0\n  max_remote_active: 200000\n")
			start := time.Now()
			h.start()
			waitLogFor(t, h.d, 5*time.Minute, `msg="fleet: caught up"`, fmt.Sprintf("applied=%d", total))
			t.Logf("MEASURE the daemon on a fresh host: started and loaded %d active %s bans (every check, into its set) in %v",
				total, c.name, time.Since(start).Round(time.Millisecond))
			line := h.d.waitLog(t, `msg="fleet: caught up"`)
			t.Logf("MEASURE %s", line[strings.Index(line, "applied="):])
		})
	}
}
