package fleet

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func dial(t *testing.T, cfg Config) *Link {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = newLogger(t.Output())
	}
	l, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// receiver runs l.Receive until the test ends and collects what it sends.
type receiver struct {
	mu   sync.Mutex
	msgs []Message
	ch   chan Message
}

func receive(t *testing.T, l *Link) *receiver {
	t.Helper()
	r := &receiver{ch: make(chan Message, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Receive(ctx, r.ch) }()
	go func() {
		for m := range r.ch {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Receive = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Receive did not return within 5s of its context's end")
		}
		close(r.ch)
	})
	return r
}

func (r *receiver) got() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// wait waits until n messages arrived and returns them.
func (r *receiver) wait(t *testing.T, n int, within time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if m := r.got(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("received %d messages within %v, want %d: %+v", len(r.got()), within, n, r.got())
	return nil
}

func banDecision(key string, ban time.Duration) *rules.Decision {
	p := netip.MustParsePrefix(key)
	d := &rules.Decision{Action: rules.Ban, Key: p, Source: p.Addr(), Rule: "tcp-portscan", Ban: ban, Offence: 1, Hits: 5, DistinctPorts: 5}
	for i, port := range []uint16{20, 21, 22, 23, 24} {
		d.Ports[i] = port
	}
	d.NPorts = 5
	return d
}

// streamState reads the stream's counters with a plain client.
func streamState(t *testing.T, url string) jetstream.StreamState {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State
}

func TestPublishReachesOtherHostsNotItself(t *testing.T) {
	srv := startServer(t, "")
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	b := dial(t, Config{Servers: []string{srv.url()}, Name: "web2"})
	ra, rb := receive(t, a), receive(t, b)
	pub := a.Publisher()
	defer pub.Close()
	before := time.Now()
	if err := pub.Act(banDecision("203.0.113.7/32", time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Not a ban: never published.
	pub.Act(&rules.Decision{Action: rules.RateLimited, Key: netip.MustParsePrefix("203.0.113.8/32")})
	m := rb.wait(t, 1, 5*time.Second)[0]
	if m.Kind != KindBan || m.Origin != "web1" || m.Key.String() != "203.0.113.7/32" || m.Rule != "tcp-portscan" ||
		m.Ban != time.Hour || m.Offence != 1 || m.Hits != 5 || len(m.Ports) != 5 || m.Ports[4] != 24 {
		t.Errorf("received %+v", m)
	}
	if m.Decided.Before(before) || m.Until.Sub(m.Decided) != time.Hour || m.Stored.IsZero() || m.Seq != 1 {
		t.Errorf("times or metadata: %+v", m)
	}
	time.Sleep(300 * time.Millisecond)
	if got := rb.got(); len(got) != 1 {
		t.Errorf("web2 received %d messages, want 1 (the rate-limited decision is not a ban): %+v", len(got), got)
	}
	if got := ra.got(); len(got) != 0 {
		t.Errorf("web1 received its own echo: %+v", got)
	}
	if s := a.Stats(); !s.Connected || s.Published != 1 || s.PublishDropped != 0 {
		t.Errorf("web1 stats %+v", s)
	}
	if s := b.Stats(); s.Received != 1 {
		t.Errorf("web2 stats %+v", s)
	}
}

// TestFreshReceiverGetsActiveBansOnly: a host that starts gets the last
// message of every (origin, key) still in force, and nothing expired.
func TestFreshReceiverGetsActiveBansOnly(t *testing.T) {
	srv := startServer(t, "")
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	pub := a.Publisher()
	defer pub.Close()
	pub.Act(banDecision("203.0.113.1/32", time.Hour))
	pub.Act(banDecision("203.0.113.1/32", 2*time.Hour)) // escalated: replaces the first
	pub.Act(banDecision("2001:db8:bad:1::/64", time.Hour))
	pub.Act(banDecision("203.0.113.2/32", 1500*time.Millisecond)) // a 2 s TTL: gone when b starts
	waitStats(t, a, func(s Stats) bool { return s.Published == 4 })
	time.Sleep(2500 * time.Millisecond)
	b := dial(t, Config{Servers: []string{srv.url()}, Name: "web2"})
	got := receive(t, b).wait(t, 2, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if len(got) != 2 || got[0].Key.String() != "203.0.113.1/32" || got[0].Ban != 2*time.Hour || got[1].Key.String() != "2001:db8:bad:1::/64" {
		t.Errorf("fresh receiver got %+v", got)
	}
	if got[0].Pending != 1 || got[1].Pending != 0 {
		t.Errorf("pending %d, %d: want 1, 0 (caught up at the last)", got[0].Pending, got[1].Pending)
	}
}

func waitStats(t *testing.T, l *Link, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := l.Stats(); ok(s) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stats never reached the wanted state: %+v", l.Stats())
	return Stats{}
}

// TestServerUnreachableAtStart: the link is made without a server, bans
// wait in the queue and are published once it comes; the TTL is the time
// left then, not at the decision.
func TestServerUnreachableAtStart(t *testing.T) {
	port := freePort(t)
	var log logBuf
	srv := &testServer{t: t, dir: t.TempDir(), port: port}
	t.Cleanup(srv.stop)
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1", Log: newLogger(&log)})
	if a.Stats().Connected {
		t.Fatal("connected to nothing")
	}
	pub := a.Publisher()
	defer pub.Close()
	decided := time.Now()
	pub.Act(banDecision("203.0.113.9/32", 10*time.Second))
	time.Sleep(2500 * time.Millisecond)
	srv.start()
	waitStats(t, a, func(s Stats) bool { return s.Published == 1 })
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, _ := js.Stream(context.Background(), DefaultBucket)
	raw, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// Decided 2.5 s+ before the server came: the TTL is the time left
	// when it was stored, rounded up.
	left := decided.Add(10 * time.Second).Sub(raw.Time)
	ttl, err := time.ParseDuration(raw.Header.Get("Nats-TTL"))
	if err != nil || ttl >= 10*time.Second || ttl < left || ttl > left+time.Second {
		t.Errorf("Nats-TTL = %q, want the time left when stored (%v) rounded up, not 10s", raw.Header.Get("Nats-TTL"), left)
	}
	if id := raw.Header.Get("Nats-Msg-Id"); !strings.HasPrefix(id, "ban.web1.203-0-113-9_32.") {
		t.Errorf("Nats-Msg-Id = %q", id)
	}
	text := log.String()
	if log.count("no server reachable yet") != 1 || log.count("fleet: connected") != 1 {
		t.Errorf("want one line for the unreachable server and one when connected:\n%s", text)
	}
	if n := log.count("cannot publish"); n > 1 {
		t.Errorf("%d lines for the failing publish, want at most 1:\n%s", n, text)
	}
}

// TestRestartLosesNothingNoDuplicates: bans stored survive a server
// restart; bans decided while it is down are published once after it, and
// a receiver resumes after the last it had, without repeats.
func TestRestartLosesNothingNoDuplicates(t *testing.T) {
	srv := startServer(t, "")
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	b := dial(t, Config{Servers: []string{srv.url()}, Name: "web2"})
	rb := receive(t, b)
	pub := a.Publisher()
	defer pub.Close()
	pub.Act(banDecision("203.0.113.1/32", time.Hour))
	rb.wait(t, 1, 5*time.Second)
	srv.stop()
	pub.Act(banDecision("203.0.113.2/32", time.Hour))
	pub.Act(banDecision("203.0.113.3/32", time.Hour))
	time.Sleep(time.Second)
	srv.start()
	got := rb.wait(t, 3, 15*time.Second)
	time.Sleep(500 * time.Millisecond)
	got = rb.got()
	var keys []string
	for _, m := range got {
		keys = append(keys, m.Key.String())
	}
	if strings.Join(keys, " ") != "203.0.113.1/32 203.0.113.2/32 203.0.113.3/32" {
		t.Errorf("received %v, want each ban once, in order", keys)
	}
	st := streamState(t, srv.url())
	if st.Msgs != 3 || st.LastSeq != 3 {
		t.Errorf("stream holds %d messages, last sequence %d: want 3 and 3 (no duplicate stored)", st.Msgs, st.LastSeq)
	}
	if s := a.Stats(); s.Published != 3 || s.PublishDropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestSameMessageIDIsStoredOnce: the retry of a publish whose ack was lost
// carries the same id, and the server keeps one copy.
func TestSameMessageIDIsStoredOnce(t *testing.T) {
	srv := startServer(t, "")
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	pub := a.Publisher()
	defer pub.Close()
	m := FromDecision("web1", banDecision("203.0.113.1/32", time.Hour), time.Now())
	pub.Enqueue(m)
	pub.Enqueue(m) // as a retry after a lost ack would
	waitStats(t, a, func(s Stats) bool { return s.Published == 2 })
	if st := streamState(t, srv.url()); st.LastSeq != 1 {
		t.Errorf("last sequence %d, want 1: the second publish was stored again", st.LastSeq)
	}
}

func TestExpiredBansAreNotPublished(t *testing.T) {
	port := freePort(t)
	srv := &testServer{t: t, dir: t.TempDir(), port: port}
	t.Cleanup(srv.stop)
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	pub := a.Publisher()
	pub.Act(banDecision("203.0.113.1/32", 1500*time.Millisecond))
	time.Sleep(time.Second)
	srv.start()
	waitStats(t, a, func(s Stats) bool { return s.Connected })
	time.Sleep(500 * time.Millisecond)
	pub.Close()
	if s := a.Stats(); s.Published != 0 || s.PublishDropped != 1 {
		t.Errorf("stats %+v, want the ban dropped as expired", s)
	}
}

// TestCloseGivesUpAfterGrace: Close returns (its goroutine gone) even
// with bans queued and no server, counting them as dropped.
func TestCloseGivesUpAfterGrace(t *testing.T) {
	srv := &testServer{t: t, port: freePort(t)}
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	pub := a.newPublisher(4)
	for i := range 6 {
		pub.Act(banDecision(netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32).String(), time.Hour))
	}
	start := time.Now()
	pub.Close()
	if d := time.Since(start); d > closeGrace+3*time.Second {
		t.Errorf("Close took %v", d)
	}
	// 4 queued (one of them in flight), 2 refused by the full queue.
	if s := a.Stats(); s.PublishDropped != 6 || s.Published != 0 {
		t.Errorf("stats %+v, want 6 dropped", s)
	}
	pub.Close() // idempotent
}

// Invalid messages, each invalid in its own way, are counted, and only the
// first is logged: whoever can publish cannot flood the log.
func TestInvalidMessagesAreLoggedOnce(t *testing.T) {
	srv := startServer(t, "")
	var log logBuf
	c := dial(t, Config{Servers: []string{srv.url()}, Name: "web3", Log: newLogger(&log)})
	receive(t, c)
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for i, data := range []string{"x", "{}", `{"v":99}`, `{"v":1,"kind":"nope"}`} {
		key := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 32)
		if _, err := js.Publish(context.Background(), Subject(DefaultBucket, "web1", key), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, c, func(s Stats) bool { return s.Invalid == 4 })
	if n := log.count("refused an invalid message"); n != 1 {
		t.Errorf("%d log lines for 4 invalid messages, want 1:\n%s", n, log.String())
	}
}

// TestCredentialsBindTheOrigin: with per-host credentials a host can
// publish only under its own origin; a message under its own subject that
// claims another origin is refused by the receivers.
func TestCredentialsBindTheOrigin(t *testing.T) {
	web1, web2, web3 := newHostUser(t, "web1"), newHostUser(t, "web2"), newHostUser(t, "web3")
	srv := startServer(t, authConf(DefaultBucket, web1, web2, web3))
	var log1 logBuf
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1", Creds: web1.seedFile, Log: newLogger(&log1)})
	c := dial(t, Config{Servers: []string{srv.url()}, Name: "web3", Creds: web3.seedFile})
	rc := receive(t, c)
	pub := a.Publisher()
	defer pub.Close()
	pub.Act(banDecision("203.0.113.1/32", time.Hour))
	rc.wait(t, 1, 5*time.Second)

	// web1's credentials under web2's name: the server refuses.
	var logX logBuf
	x := dial(t, Config{Servers: []string{srv.url()}, Name: "web2", Creds: web1.seedFile, Log: newLogger(&logX)})
	px := x.Publisher()
	px.Act(banDecision("203.0.113.66/32", time.Hour))
	// A raw client with web1's credentials: web1's subject, web2 inside.
	opt, err := nats.NkeyOptionFromSeed(web1.seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.url(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	forged := Message{Kind: KindBan, Origin: "web2", Key: netip.MustParsePrefix("203.0.113.67/32"), Ban: time.Hour, Decided: time.Now(), Until: time.Now().Add(time.Hour)}
	data, _ := forged.Encode()
	if _, err := js.Publish(context.Background(), Subject(DefaultBucket, "web1", forged.Key), data); err != nil {
		t.Fatalf("web1's own subject: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, Subject(DefaultBucket, "web2", forged.Key), data); err == nil {
		t.Error("web1's credentials published under web2's subject")
	}
	waitStats(t, c, func(s Stats) bool { return s.Invalid == 1 })
	time.Sleep(time.Second) // the impersonator's retries
	px.Close()
	for _, m := range rc.got() {
		if m.Origin != "web1" || m.Key.String() != "203.0.113.1/32" {
			t.Errorf("web3 accepted %s %s from %s", m.Kind, m.Key, m.Origin)
		}
	}
	if s := x.Stats(); s.Published != 0 {
		t.Errorf("the impersonator published: %+v", s)
	}
	if !strings.Contains(logX.String(), "Permissions Violation") {
		t.Errorf("the refusal was not logged:\n%s", logX.String())
	}
	if n := logX.count("Permissions Violation"); n > 1 {
		t.Errorf("the permissions violation logged %d times, want once:\n%s", n, logX.String())
	}
}

func TestPardonAndActive(t *testing.T) {
	srv := startServer(t, "")
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1"})
	b := dial(t, Config{Servers: []string{srv.url()}, Name: "admin"})
	rb := receive(t, b)
	pub := a.Publisher()
	defer pub.Close()
	pub.Act(banDecision("203.0.113.1/32", time.Hour))
	pub.Act(banDecision("203.0.113.2/32", 1500*time.Millisecond))
	rb.wait(t, 2, 5*time.Second)
	time.Sleep(2500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := time.Now()
	if err := b.PublishPardon(ctx, netip.MustParsePrefix("203.0.113.1/32"), at, time.Hour); err != nil {
		t.Fatal(err)
	}
	act, err := a.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != 2 || act[0].Kind != KindBan || act[0].Origin != "web1" || act[1].Kind != KindPardon || act[1].Origin != "admin" ||
		!act[1].Decided.Equal(at) || act[1].Until.Sub(at) != time.Hour {
		t.Errorf("active: %+v", act)
	}
	// The pardoner does not receive its own pardon; web1 does.
	ra := receive(t, a)
	got := ra.wait(t, 1, 5*time.Second)
	if got[0].Kind != KindPardon || got[0].Key.String() != "203.0.113.1/32" {
		t.Errorf("web1 received %+v", got)
	}
}

// TestRepublishFillsOnlyWhatTheStreamLacks: bans from before a start are
// published again only where the stream holds nothing of their (origin,
// key): the same ban stored before and a pardon stay as they are, a ban
// the stream never got is stored, an ended one is dropped, and a ban
// decided meanwhile is published too.
func TestRepublishFillsOnlyWhatTheStreamLacks(t *testing.T) {
	srv := startServer(t, "")
	var log logBuf
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1", Log: newLogger(&log)})
	first := a.Publisher()
	stored := FromDecision("web1", banDecision("203.0.113.1/32", time.Hour), time.Now().Add(-time.Minute))
	first.Enqueue(stored)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pardonedAt := time.Now()
	if err := a.PublishPardon(ctx, netip.MustParsePrefix("203.0.113.2/32"), pardonedAt, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitStats(t, a, func(s Stats) bool { return s.Published == 2 })
	first.Close()

	before := time.Now().Add(-30 * time.Second)
	again := []Message{
		FromDecision("web1", banDecision("203.0.113.1/32", time.Hour), before), // stored, under another id
		FromDecision("web1", banDecision("203.0.113.2/32", time.Hour), before), // pardoned since
		FromDecision("web1", banDecision("203.0.113.3/32", time.Hour), before), // never stored
		FromDecision("web1", banDecision("203.0.113.4/32", 20*time.Second), before),
	}
	pub := a.Publisher()
	defer pub.Close()
	loaded := make(chan struct{})
	pub.Republish(func() []Message {
		<-loaded
		return again
	})
	if err := pub.Act(banDecision("203.0.113.5/32", time.Hour)); err != nil {
		t.Fatal(err)
	}
	close(loaded)
	line := func() bool { return log.count("published again where the stream had none") == 1 }
	for deadline := time.Now().Add(10 * time.Second); !line() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !line() || log.count("published=1 already_there=2") != 1 {
		t.Fatalf("want one line for the bans published again, 1 published and 2 there:\n%s", log.String())
	}
	if s := a.Stats(); s.Published != 4 || s.PublishDropped != 1 {
		t.Errorf("stats %+v: want 4 published (2 before, the new ban, 203.0.113.3), 1 dropped (ended)", s)
	}
	act, err := a.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Message{}
	for _, m := range act {
		got[m.Key.String()] = m
	}
	if m := got["203.0.113.1/32"]; m.Kind != KindBan || !m.Decided.Equal(stored.Decided) {
		t.Errorf("203.0.113.1/32: %+v, want the ban stored first, untouched", m)
	}
	if m := got["203.0.113.2/32"]; m.Kind != KindPardon || !m.Decided.Equal(pardonedAt) {
		t.Errorf("203.0.113.2/32: %+v, want the pardon, not replaced by the older ban", m)
	}
	if m := got["203.0.113.3/32"]; m.Kind != KindBan || !m.Decided.Equal(before) || !m.Until.Equal(before.Add(time.Hour)) || m.Rule != "tcp-portscan" {
		t.Errorf("203.0.113.3/32: %+v, want the ban as decided before the start", m)
	}
	if m, ok := got["203.0.113.5/32"]; !ok || m.Kind != KindBan {
		t.Errorf("the ban decided meanwhile is not in the stream: %+v", act)
	}
	if _, ok := got["203.0.113.4/32"]; ok || len(act) != 4 {
		t.Errorf("stream holds %d messages, want 4 (the ended ban not published): %+v", len(act), act)
	}
}

// TestRepublishStopsWithClose: without a server, Close still returns
// within its grace with bans from before the start left, and says so.
func TestRepublishStopsWithClose(t *testing.T) {
	srv := &testServer{t: t, port: freePort(t)}
	var log logBuf
	a := dial(t, Config{Servers: []string{srv.url()}, Name: "web1", Log: newLogger(&log)})
	pub := a.Publisher()
	var ms []Message
	for i := range 3 {
		key := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32).String()
		ms = append(ms, FromDecision("web1", banDecision(key, time.Hour), time.Now()))
	}
	pub.Republish(func() []Message { return ms })
	time.Sleep(200 * time.Millisecond) // the first is being tried
	start := time.Now()
	pub.Close()
	if d := time.Since(start); d > closeGrace+3*time.Second {
		t.Errorf("Close took %v", d)
	}
	// One was in flight when the grace ran out, the other two not tried.
	if !strings.Contains(log.String(), "not published again before stopping; the next start tries them") || log.count("count=3") != 1 {
		t.Errorf("want the three bans left logged:\n%s", log.String())
	}
	if s := a.Stats(); s.Published != 0 {
		t.Errorf("stats %+v", s)
	}
}
