package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// fleetTable is the fake table with BanFrom.
type fleetTable struct{ *fakeTable }

func (f fleetTable) BanFrom(key netip.Prefix, timeout time.Duration, origin string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.banned = append(f.banned, key)
	f.bans[key] = actions.BanEntry{Key: key, Timeout: timeout, Expires: timeout, Origin: actions.OriginFleet + origin}
	return nil
}

func (f fleetTable) BanFromMany(bans []actions.RemoteBan) []error {
	f.mu.Lock()
	f.fromManyCalls = append(f.fromManyCalls, len(bans))
	f.mu.Unlock()
	errs := make([]error, len(bans))
	for i, b := range bans {
		if f.refuse[b.Key] {
			errs[i] = fmt.Errorf("nftables: add %s: refused", b.Key)
			continue
		}
		errs[i] = f.BanFrom(b.Key, b.Timeout, b.Origin)
	}
	return errs
}

// fakeFleet hands the daemon what a test sends on in.
type fakeFleet struct {
	in       chan fleet.Message
	pub      *fleet.Publisher
	returned chan struct{}
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{in: make(chan fleet.Message, 16), returned: make(chan struct{})}
}

func (f *fakeFleet) Publisher() *fleet.Publisher { return f.pub }
func (f *fakeFleet) Stats() fleet.Stats          { return fleet.Stats{Connected: true} }
func (f *fakeFleet) Receive(ctx context.Context, out chan<- fleet.Message) error {
	defer close(f.returned)
	for {
		select {
		case m := <-f.in:
			select {
			case out <- m:
			case <-ctx.Done():
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

const fleetSection = `fleet:
  servers: [nats://127.0.0.1:4222]
  name: b
  accept_from: [a, c]
  max_remote_per_minute: %d
  max_remote_ban: 1h
  max_remote_active: %d
`

func newFleetRig(t *testing.T, perMinute, active int) (*rig, *fakeFleet, Deps) {
	t.Helper()
	r := newRig(t, tripwireRules, fmt.Sprintf(fleetSection, perMinute, active))
	ff := newFakeFleet()
	deps := r.deps(false)
	deps.Table = fleetTable{r.table}
	deps.Fleet = ff
	return r, ff, deps
}

// newFleetDaemon is a daemon over newFleetRig's deps, closed when the test
// ends.
func newFleetDaemon(t *testing.T, perMinute, active int) (*rig, *Daemon) {
	t.Helper()
	r, _, deps := newFleetRig(t, perMinute, active)
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return r, d
}

func remoteBanMsg(origin, key string, decided time.Time, left time.Duration) fleet.Message {
	return fleet.Message{Kind: fleet.KindBan, Origin: origin, Key: pfx(key), Rule: "tcp-portscan", Ban: 2 * time.Hour,
		Decided: decided, Until: time.Now().Add(left), Stored: decided}
}

func TestRemoteBanChecks(t *testing.T) {
	r, d := newFleetDaemon(t, 3, 100)
	now := time.Now()
	for _, c := range []struct {
		name   string
		m      fleet.Message
		reason string // "" applied
	}{
		{"the host's gateway", remoteBanMsg("a", "192.0.2.1/32", now, time.Hour), refIgnored},
		{"a /24 around the host itself", remoteBanMsg("a", "192.0.2.0/24", now, time.Hour), refIgnored},
		{"an origin not accepted", remoteBanMsg("x", "203.0.113.1/32", now, time.Hour), refAcceptFrom},
		{"a /23 where bans are /32 and aggregates /24", remoteBanMsg("a", "198.51.100.0/23", now, time.Hour), refTooWide},
		{"everything", remoteBanMsg("a", "::/0", now, time.Hour), refTooWide},
		{"a /40 where bans are /64 and aggregates /48", remoteBanMsg("a", "2001:db8:1::/40", now, time.Hour), refTooWide},
		{"a /28 between the key and the aggregate", remoteBanMsg("a", "198.51.100.16/28", now, time.Hour), refTooWide},
		{"already over", remoteBanMsg("a", "203.0.113.2/32", now, 500*time.Millisecond), refExpired},
		{"a plain ban", remoteBanMsg("a", "203.0.113.3/32", now, 2*time.Hour), ""},
		{"an IPv6 address inside a /64", remoteBanMsg("c", "2001:db8:1:2::5/128", now, time.Hour), ""},
		{"the valve's last", remoteBanMsg("c", "2001:db8:1:3::/64", now, time.Hour), ""},
		{"beyond the valve", remoteBanMsg("c", "2001:db8:1:4::/64", now.Add(30*time.Second), time.Hour), refValve},
		{"a minute later", remoteBanMsg("c", "2001:db8:1:5::/64", now.Add(61*time.Second), time.Hour), ""},
		// The aggregates' wider prefixes, which this host bans at the
		// same lengths.
		{"an aggregate's /24", remoteBanMsg("a", "198.51.100.0/24", now.Add(130*time.Second), time.Hour), ""},
		{"an aggregate's /48", remoteBanMsg("c", "2001:db8:2::/48", now.Add(131*time.Second), time.Hour), ""},
	} {
		before := len(r.table.bannedKeys())
		refusedBefore := d.fleet.refused[c.reason]
		d.applyRemotes(c.m, nil)
		applied := len(r.table.bannedKeys()) > before
		if c.reason == "" && !applied {
			t.Errorf("%s: not applied; refused %v", c.name, d.fleet.refused)
		}
		if c.reason != "" && (applied || d.fleet.refused[c.reason] != refusedBefore+1) {
			t.Errorf("%s: applied %t, refused %v, want refused as %s", c.name, applied, d.fleet.refused, c.reason)
		}
	}
	// max_remote_ban caps the 2h ban to 1h; the origin is on the element.
	b := r.table.bans[pfx("203.0.113.3/32")]
	if b.Timeout != time.Hour || b.Origin != "fleet:a" {
		t.Errorf("203.0.113.3: %+v, want 1h from fleet:a", b)
	}
	// The same ban again is held already: no insert, no valve.
	n := len(r.table.bannedKeys())
	again := remoteBanMsg("a", "203.0.113.3/32", now.Add(2*time.Minute), 2*time.Hour)
	d.applyRemotes(again, nil)
	if len(r.table.bannedKeys()) != n {
		t.Error("a ban held already was inserted again")
	}
	// Remote bans are never local offences.
	if offs := d.engine.Offences(); len(offs) != 0 {
		t.Errorf("remote bans became offences: %+v", offs)
	}
	if d.fleet.applied != 6 || len(d.fleet.remote) != 6 {
		t.Errorf("applied %d, held %d: want 6 and 6", d.fleet.applied, len(d.fleet.remote))
	}
	logs := r.logs.String()
	if !strings.Contains(logs, `msg="fleet: refused a remote ban" reason=ignored source=192.0.2.1/32 origin=a`) {
		t.Errorf("no refusal line for the gateway:\n%s", logs)
	}
	if n := strings.Count(logs, "reason=too_wide"); n != 1 {
		t.Errorf("%d lines for too_wide refusals, want 1 (one a minute per reason):\n%s", n, logs)
	}
}

func TestRemoteBanCap(t *testing.T) {
	_, d := newFleetDaemon(t, 0, 2)
	now := time.Now()
	for i := range 3 {
		m := remoteBanMsg("a", fmt.Sprintf("203.0.113.%d/32", i+1), now, time.Hour)
		d.applyRemotes(m, nil)
	}
	if d.fleet.applied != 2 || d.fleet.refused[refCap] != 1 {
		t.Errorf("applied %d, refused %v: want 2 applied and 1 over the cap", d.fleet.applied, d.fleet.refused)
	}
	// Ended bans make room.
	for k, b := range d.fleet.remote {
		b.until = now.Add(-time.Second)
		d.fleet.remote[k] = b
	}
	m := remoteBanMsg("a", "203.0.113.9/32", now, time.Hour)
	d.applyRemotes(m, nil)
	if d.fleet.applied != 3 {
		t.Errorf("a ban refused though the held ones had ended: %v", d.fleet.refused)
	}
}

// TestRemotePardon: a pardon lifts the key here, whoever banned it, and
// a remote ban decided before it is refused, one decided after applied.
func TestRemotePardon(t *testing.T) {
	r, d := newFleetDaemon(t, 0, 100)
	t0 := time.Now().Add(-time.Minute)
	m := remoteBanMsg("a", "203.0.113.5/32", t0, time.Hour)
	d.applyRemotes(m, nil)
	p := fleet.Message{Kind: fleet.KindPardon, Origin: "c", Key: pfx("203.0.113.5/32"), Decided: t0.Add(time.Second), Until: time.Now().Add(time.Hour), Stored: t0}
	d.applyRemotes(p, nil)
	if _, ok := r.table.bans[pfx("203.0.113.5/32")]; ok {
		t.Error("the pardoned key is still banned")
	}
	if len(r.table.forgot) == 0 || r.table.forgot[len(r.table.forgot)-1] != pfx("203.0.113.5/32") {
		t.Errorf("first strike's counters not forgotten: %v", r.table.forgot)
	}
	if len(d.fleet.remote) != 0 {
		t.Errorf("remote bans held: %v", d.fleet.remote)
	}
	old := remoteBanMsg("b2", "203.0.113.5/32", t0, time.Hour)
	old.Origin = "a"
	d.applyRemotes(old, nil)
	if d.fleet.refused[refPardoned] != 1 {
		t.Errorf("a ban decided before the pardon: refused %v", d.fleet.refused)
	}
	newer := remoteBanMsg("a", "203.0.113.5/32", t0.Add(time.Minute), time.Hour)
	d.applyRemotes(newer, nil)
	if _, ok := r.table.bans[pfx("203.0.113.5/32")]; !ok {
		t.Error("a ban decided after the pardon was not applied")
	}
	if !strings.Contains(r.logs.String(), `msg="fleet: pardoned" source=203.0.113.5/32 origin=c`) {
		t.Errorf("no pardon line:\n%s", r.logs.String())
	}
}

// TestRemoteBansKnownAfterRestart: the remote bans in the kernel when the
// daemon starts are held (counted for the cap, not inserted again), and
// are not learned as offences.
func TestRemoteBansKnownAfterRestart(t *testing.T) {
	r, _, deps := newFleetRig(t, 0, 100)
	r.table.bans[pfx("203.0.113.7/32")] = actions.BanEntry{Key: pfx("203.0.113.7/32"), Timeout: time.Hour, Expires: 50 * time.Minute, Origin: "fleet:a"}
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, ok := d.fleet.remote[pfx("203.0.113.7/32")]; !ok || b.origin != "a" || time.Until(b.until) < 49*time.Minute {
		t.Errorf("remote bans held: %+v", d.fleet.remote)
	}
	if offs := d.engine.Offences(); len(offs) != 0 {
		t.Errorf("a remote ban in the kernel became an offence: %+v", offs)
	}
	m := remoteBanMsg("a", "203.0.113.7/32", time.Now(), 40*time.Minute)
	d.applyRemotes(m, nil)
	if n := len(r.table.bannedKeys()); n != 0 {
		t.Errorf("%d inserts for a ban held already", n)
	}
}

// TestTamperRestoresRemoteBans: after the table was flushed behind the
// daemon's back, the remote bans it held go back with their remaining
// time, as its own do.
func TestTamperRestoresRemoteBans(t *testing.T) {
	r, d := newFleetDaemon(t, 0, 100)
	m := remoteBanMsg("a", "203.0.113.9/32", time.Now(), 30*time.Minute)
	d.applyRemotes(m, nil)
	r.table.flush()
	d.checkTamper(context.Background(), false)
	b, ok := r.table.bans[pfx("203.0.113.9/32")]
	if !ok || b.Origin != "fleet:a" || b.Timeout > 30*time.Minute || b.Timeout < 29*time.Minute {
		t.Errorf("after tampering: %+v (present %t), want fleet:a with about 30m", b, ok)
	}
	// A set flushed with the table left whole is found by the periodic
	// comparison of the sets with the bans held.
	r.table.mu.Lock()
	delete(r.table.bans, pfx("203.0.113.9/32"))
	r.table.mu.Unlock()
	d.checkTamper(context.Background(), true)
	if b, ok := r.table.bans[pfx("203.0.113.9/32")]; !ok || b.Origin != "fleet:a" {
		t.Errorf("after the set was flushed: %+v (present %t), want fleet:a back", b, ok)
	}
}

// TestRunReceivesRemoteBans: the receiver is a source of Run's, stopped
// with the inputs.
func TestRunReceivesRemoteBans(t *testing.T) {
	r, ff, deps := newFleetRig(t, 0, 100)
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.waitLog("msg=running")
	ff.in <- remoteBanMsg("a", "203.0.113.8/32", time.Now(), time.Hour)
	r.waitBans(1)
	r.waitLog(`msg="fleet: applied a remote ban" source=203.0.113.8/32 origin=a rule=tcp-portscan ban=1h`)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-ff.returned:
	default:
		t.Error("Run returned while the fleet receiver still ran")
	}
}

// TestOwnBansGoThroughThePublisher: the daemon's ban decisions reach the
// publisher (here without a server, so they are dropped at the stop).
func TestOwnBansGoThroughThePublisher(t *testing.T) {
	r, ff, deps := newFleetRig(t, 0, 100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	link, err := fleet.Dial(fleet.Config{Servers: []string{url}, Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	ff.pub = link.Publisher()
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.waitLog("msg=running")
	now := time.Now()
	r.appendLines(line(now, "203.0.113.50", 31337, "FIN"), line(now, "192.0.2.1", 31337, "FIN"))
	r.waitBans(1)
	r.waitLog("action=ignored")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := link.Stats(); s.PublishDropped != 1 || s.Published != 0 {
		t.Errorf("publisher stats %+v: want the one ban (not the ignored decision) queued, then dropped at the stop", s)
	}
}

func TestFleetWithoutLinkIsAnError(t *testing.T) {
	r, _, deps := newFleetRig(t, 0, 100)
	deps.Fleet = nil
	if _, err := New(r.cfg, deps); err == nil {
		t.Error("New accepted a fleet section without a link")
	}
}

func TestPinFleet(t *testing.T) {
	load := func(extra string) *config.Config {
		return testConfig(t, t.TempDir(), tripwireRules, extra)
	}
	running := load(fmt.Sprintf(fleetSection, 10, 100))
	next := load(strings.Replace(fmt.Sprintf(fleetSection, 20, 100), "name: b", "name: renamed", 1))
	changed := pinFleet(next, running)
	if len(changed) != 1 || next.Fleet.Name != "b" || next.Fleet.MaxRemotePerMinute != 20 {
		t.Errorf("changed %v, fleet %+v: want the name kept and the valve taken", changed, next.Fleet)
	}
	same := load(fmt.Sprintf(fleetSection, 30, 5))
	if changed := pinFleet(same, running); len(changed) != 0 || same.Fleet.MaxRemoteActive != 5 {
		t.Errorf("limits only: changed %v", changed)
	}
	off := load("")
	if changed := pinFleet(off, running); len(changed) != 1 || off.Fleet == nil {
		t.Errorf("fleet removed by a reload: changed %v, fleet %+v: want it kept until a restart", changed, off.Fleet)
	}
}

// A flood of refused remote bans costs no allocation once its reason's
// line is written: the line's words are put together only for the line.
func TestRefusedRemoteBansDoNotAllocate(t *testing.T) {
	r, d := newFleetDaemon(t, 3, 100)
	now := time.Now()
	for _, m := range []fleet.Message{
		remoteBanMsg("a", "192.0.2.1/32", now, time.Hour),    // ignored
		remoteBanMsg("a", "198.51.100.0/23", now, time.Hour), // too wide
		remoteBanMsg("x", "203.0.113.1/32", now, time.Hour),  // accept_from
	} {
		d.applyRemotes(m, nil) // the line
		if n := testing.AllocsPerRun(100, func() { d.applyRemotes(m, nil) }); n != 0 {
			t.Errorf("%s: %v allocations a refused message", m.Key, n)
		}
	}
	if !strings.Contains(r.logs.String(), "why=\"a /23 where bans here are /32\"") {
		t.Errorf("the too_wide line does not say why:\n%s", r.logs.String())
	}
}

// TestActiveBanMessages: what a start publishes again is, of each key the
// engine holds banned, the journal's last ban of it by this host, as it
// was published, if it came after the key's last pardon and has more
// than a second left.
func TestActiveBanMessages(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	pfx := netip.MustParsePrefix
	ban := func(at time.Duration, key string, secs int64) JournalEntry {
		return JournalEntry{Time: now.Add(at), Action: "ban", Origin: actions.OriginDaemon, Source: pfx(key), Rule: "tcp-portscan",
			BanSeconds: secs, Hits: 5, Ports: []uint16{20, 21, 22, 23, 24}, Offence: 1}
	}
	escalated := ban(-10*time.Minute, "203.0.113.1/32", 7200)
	escalated.Offence = 2
	wide := ban(-5*time.Minute, "198.51.100.0/24", 3600)
	wide.Address = netip.MustParseAddr("198.51.100.7")
	remote := ban(-time.Minute, "203.0.113.4/32", 3600)
	remote.Origin = actions.OriginFleet + "a"
	throttled := ban(-time.Minute, "203.0.113.6/32", 30)
	throttled.Action = "throttled"
	block := ban(-time.Minute, "203.0.113.7/32", 3600)
	block.Action, block.Origin = ActionBlock, OriginManual
	entries := []JournalEntry{
		ban(-time.Hour+30*time.Second, "203.0.113.1/32", 3600), // escalated since
		ban(-20*time.Minute, "203.0.113.2/32", 3600),           // pardoned since
		escalated,
		wide,
		ban(-time.Minute, "203.0.113.3/32", 3600), // not held
		remote,
		ban(-time.Hour+time.Second, "203.0.113.5/32", 3600), // one second left
		throttled,
		block,
	}
	var text []byte
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		text = append(append(text, b...), '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, JournalFile), text, 0o600); err != nil {
		t.Fatal(err)
	}
	var active []rules.Offence
	for _, k := range []string{"203.0.113.1/32", "203.0.113.2/32", "198.51.100.0/24", "203.0.113.4/32", "203.0.113.5/32", "203.0.113.6/32", "203.0.113.7/32"} {
		o := rules.Offence{Key: pfx(k), Count: 1, BannedUntil: now.Add(time.Hour)}
		if k == "203.0.113.2/32" {
			o.PardonedAt = now.Add(-15 * time.Minute)
		}
		active = append(active, o)
	}
	ms, err := activeBanMessages(dir, "b", active, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s %s %s decided %v until %v offence %d ports %v hits %d rule %s",
			m.Kind, m.Origin, m.Key, m.Decided.Sub(now), m.Until.Sub(now), m.Offence, m.Ports, m.Hits, m.Rule))
		if m.Key == pfx("198.51.100.0/24") && m.Address != wide.Address || m.Key != pfx("198.51.100.0/24") && m.Address != m.Key.Addr() {
			t.Errorf("%s: address %v", m.Key, m.Address)
		}
	}
	want := []string{
		"ban b 203.0.113.1/32 decided -10m0s until 1h50m0s offence 2 ports [20 21 22 23 24] hits 5 rule tcp-portscan",
		"ban b 198.51.100.0/24 decided -5m0s until 55m0s offence 1 ports [20 21 22 23 24] hits 5 rule tcp-portscan",
	}
	if !slices.Equal(got, want) {
		t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRemoteBacklogInsertedTogether: the bans of a backlog go into the
// sets together, those before a pardon before it (so that it lifts them);
// a ban the kernel refuses is refused, and is not held; a key twice is
// held at its longer ban; the backlog ends with one line.
func TestRemoteBacklogInsertedTogether(t *testing.T) {
	r, _, deps := newFleetRig(t, 0, 100)
	r.table.refuse = map[netip.Prefix]bool{pfx("203.0.113.50/32"): true}
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now()
	var msgs []fleet.Message
	for i := 1; i <= 40; i++ {
		msgs = append(msgs, remoteBanMsg("a", fmt.Sprintf("203.0.113.%d/32", i), now, 30*time.Minute))
		if i == 10 {
			msgs = append(msgs, fleet.Message{Kind: fleet.KindPardon, Origin: "c", Key: pfx("203.0.113.5/32"),
				Decided: now.Add(time.Second), Until: now.Add(time.Hour), Stored: now})
		}
	}
	msgs = append(msgs, remoteBanMsg("a", "203.0.113.50/32", now, 30*time.Minute), remoteBanMsg("c", "203.0.113.7/32", now, 50*time.Minute))
	for i := range msgs {
		msgs[i].Pending = uint64(len(msgs) - 1 - i)
	}
	in := make(chan fleet.Message, len(msgs))
	for _, m := range msgs[1:] {
		in <- m
	}
	d.applyRemotes(msgs[0], in)

	// Ten bans before the pardon, then the 31 after it and the longer
	// ban of 203.0.113.7 (its first ban in the same call: it takes the
	// slow path in the kernel).
	if !slices.Equal(r.table.fromManyCalls, []int{10, 32}) {
		t.Errorf("BanFromMany calls of %v bans, want [10 32]", r.table.fromManyCalls)
	}
	if _, ok := r.table.bans[pfx("203.0.113.5/32")]; ok || !slices.Contains(r.table.lifted, pfx("203.0.113.5/32")) {
		t.Errorf("the pardon did not lift the ban inserted before it: lifted %v", r.table.lifted)
	}
	f := d.fleet
	if _, ok := f.remote[pfx("203.0.113.5/32")]; ok {
		t.Error("a pardoned ban is held")
	}
	if _, ok := f.remote[pfx("203.0.113.50/32")]; ok || f.refused[refError] != 1 {
		t.Errorf("the refused insert: held %v, refused %v", ok, f.refused)
	}
	if b := f.remote[pfx("203.0.113.7/32")]; b.origin != "c" || time.Until(b.until) < 49*time.Minute {
		t.Errorf("203.0.113.7 held as %+v, want its longer ban from c", b)
	}
	if f.applied != 41 || len(f.remote) != 39 {
		t.Errorf("applied %d, held %d: want 41 (40 and the longer one) and 39 (without the pardoned one)", f.applied, len(f.remote))
	}
	logs := r.logs.String()
	if !strings.Contains(logs, `msg="fleet: caught up" applied=41 refused=1`) || strings.Contains(logs, `msg="fleet: applied a remote ban"`) {
		t.Errorf("want one line for the backlog, and none per ban:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="fleet: cannot insert remote bans" source=203.0.113.50/32`) {
		t.Errorf("no line for the refused insert:\n%s", logs)
	}
}

// TestRemoteBurstInsertedTogether: live bans (each the last the server
// had) waiting together for the loop go into the sets together, each
// logged as applied.
func TestRemoteBurstInsertedTogether(t *testing.T) {
	r, _, deps := newFleetRig(t, 0, 100)
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := make(chan fleet.Message, 4)
	for i := 2; i <= 5; i++ {
		in <- remoteBanMsg("a", fmt.Sprintf("203.0.113.%d/32", i), time.Now(), 30*time.Minute)
	}
	d.applyRemotes(remoteBanMsg("a", "203.0.113.1/32", time.Now(), 30*time.Minute), in)
	if !slices.Equal(r.table.fromManyCalls, []int{5}) || len(r.table.bannedKeys()) != 5 {
		t.Errorf("BanFromMany calls of %v bans, %d keys banned: want one call of 5", r.table.fromManyCalls, len(r.table.bannedKeys()))
	}
	if n := strings.Count(r.logs.String(), `msg="fleet: applied a remote ban"`); n != 5 || strings.Contains(r.logs.String(), "caught up") {
		t.Errorf("%d lines for the bans applied, want 5 and no backlog line:\n%s", n, r.logs.String())
	}
}
