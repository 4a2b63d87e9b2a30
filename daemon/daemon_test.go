package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/rules"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestStartAppliesTheDesiredTable(t *testing.T) {
	r := newRig(t, tripwireRules, "first_strike: {enabled: true}\n")
	// First strike reads the NFLOG group it logs strikes to.
	r.cfg.Inputs.NFLOG = nil
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	spec := r.table.lastSpec()
	if spec.Table != "sentry" || spec.IPv4Prefix != 32 || spec.IPv6Prefix != 64 || !spec.ManageChain {
		t.Errorf("spec %+v", spec)
	}
	wantAllow := []netip.Prefix{pfx("127.0.0.0/8"), pfx("192.0.2.10/32"), pfx("192.0.2.1/32"), pfx("192.0.2.53/32")}
	if !slices.Equal(spec.Allow, wantAllow) {
		t.Errorf("allow %v, want %v", spec.Allow, wantAllow)
	}
	if !slices.Equal(spec.Listen.TCP, testHost.tcp) {
		t.Errorf("listening ports %v, want %v: they go in with the chains that read them", spec.Listen.TCP, testHost.tcp)
	}
	if spec.FirstStrike != nil {
		t.Errorf("first strike without an NFLOG group to log strikes to: %+v", spec.FirstStrike)
	}
	if !d.whole() {
		t.Error("applied table is not the desired one")
	}
}

func TestFirstStrikeRefusedTheRestStillApplies(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	r.cfg.Inputs.NFLOG = []config.NFLOGInput{{Group: 7}}
	refuse := true
	r.table.applyErr = func(s actions.TableSpec) error {
		if s.FirstStrike != nil && refuse {
			return errors.New("kernel refuses first strike")
		}
		return nil
	}
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.table.lastSpec(); got.FirstStrike != nil || !got.ManageChain {
		t.Fatalf("applied %+v, want the ban chains without first strike", got)
	}
	if d.whole() {
		t.Fatal("the degraded table counts as whole")
	}
	// Not retried before reapplyEvery...
	d.checkTamper(context.Background(), false)
	if n := len(r.table.applied); n != 1 {
		t.Fatalf("%d applies, want 1 before reapplyEvery", n)
	}
	// ...and after it, the whole spec goes in.
	refuse = false
	d.lastApply = time.Now().Add(-reapplyEvery)
	d.checkTamper(context.Background(), false)
	if got := r.table.lastSpec(); got.FirstStrike == nil {
		t.Fatal("first strike never retried")
	}
	if !d.whole() {
		t.Error("not whole after the retry")
	}
	if !strings.Contains(r.logs.String(), "first strike unavailable") {
		t.Errorf("the failure was not logged:\n%s", r.logs.String())
	}
}

func TestBansAndDryRunGoThroughTheirOwnDoor(t *testing.T) {
	now := time.Now()
	for _, dry := range []bool{false, true} {
		t.Run(map[bool]string{false: "enforce", true: "dry-run"}[dry], func(t *testing.T) {
			r := newRig(t, tripwireRules, "")
			_, stop := r.start(dry)
			r.appendLines(line(now, "203.0.113.7", 23, "FIN"), line(now, "198.51.100.9", 80, "SYN"))
			if !dry {
				if got := r.waitBans(1); got[0] != pfx("203.0.113.7/32") {
					t.Errorf("banned %v", got)
				}
			} else {
				r.waitLog("msg=decision", "source=203.0.113.7/32")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if dry {
				if n := len(r.table.bannedKeys()); n != 0 {
					t.Errorf("dry run banned %d", n)
				}
				if !strings.Contains(r.out.String(), "ban 203.0.113.7/32 for 10m rule=fin") {
					t.Errorf("dry-run report: %q", r.out.String())
				}
				if _, err := os.Stat(filepath.Join(r.dir, "state", state.FileName)); !os.IsNotExist(err) {
					t.Errorf("dry run saved state: %v", err)
				}
			} else if r.out.String() != "" {
				t.Errorf("enforcing daemon wrote a report: %q", r.out.String())
			}
		})
	}
}

// A clean stop decides every event already read before it saves the file
// position: zero loss even when the engine is behind.
func TestStopDecidesWhatWasRead(t *testing.T) {
	r := newRig(t, tripwireRules, "bans: {max_new_per_minute: 0, single_packet: {max_new_per_minute: 0}}\n")
	release := make(chan struct{})
	first := make(chan struct{}, 1)
	r.table.banHook = func(netip.Prefix) {
		select {
		case first <- struct{}{}:
			<-release // hold the loop on the first ban
		default:
		}
	}
	_, stop := r.start(false)
	const n = 6000 // more than the event queue holds
	now := time.Now()
	var lines []string
	for i := range n {
		lines = append(lines, line(now, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), 23, "FIN"))
	}
	r.appendLines(lines...)
	<-first
	// Let the queue fill behind the held ban, then stop while behind.
	time.Sleep(200 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	banned := len(r.table.bannedKeys())
	st, err := state.Load(filepath.Join(r.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(r.log)
	if len(st.Files) != 1 {
		t.Fatalf("positions %+v", st.Files)
	}
	// Every line up to the saved position was decided; the position may
	// stop short of the end (the rest is read at the next start), never
	// past a line not decided.
	off := st.Files[0].Offset
	decidedBytes := int64(0)
	for _, l := range lines[:banned] {
		decidedBytes += int64(len(l))
	}
	if off != decidedBytes {
		t.Errorf("saved offset %d, but the %d decided lines end at %d (file size %d)", off, banned, decidedBytes, fi.Size())
	}
	if banned < eventQueue {
		t.Errorf("only %d bans: the queued events were dropped at stop", banned)
	}
}

// An input that fails after it started is restarted while the others go
// on; one that fails before it is ready stops the daemon with its error.
func TestInputFailureIsRestarted(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	broken := newInput(&fakeSource{name: "broken", err: errors.New("permission denied")}, func() metrics.Input { return metrics.Input{} })
	d.inputs = append(d.inputs, broken)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.waitLog("msg=running", `msg="input failed; restarting it" input=broken`)
	now := time.Now()
	r.appendLines(line(now, "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if broken.stats().Failures == 0 {
		t.Error("failure not counted")
	}

	// Before ready: fatal.
	d2, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	busy := fmt.Errorf("nflog group 7: %w", sources.ErrNFLOGGroupBusy)
	d2.inputs = []*input{newInput(&fakeSource{name: "nflog:7", err: busy}, func() metrics.Input { return metrics.Input{} })}
	if err := d2.Run(context.Background()); !errors.Is(err, sources.ErrNFLOGGroupBusy) || !strings.Contains(err.Error(), "nflog:7") {
		t.Errorf("Run = %v, want the input's error", err)
	}
}

func TestTamperReappliesAndRestoresBans(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, stop := r.start(false)
	now := time.Now()
	r.appendLines(line(now, "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	stop()
	applies := len(r.table.applied)
	r.table.flush()
	d.checkTamper(context.Background(), false)
	if len(r.table.applied) != applies+1 {
		t.Fatal("table not applied again after it went missing")
	}
	if _, ok := r.table.bans[pfx("203.0.113.7/32")]; !ok {
		t.Error("ban not restored after the flush")
	}
	if !strings.Contains(r.logs.String(), `"nftables objects were removed: recreating them" missing="table inet sentry"`) {
		t.Errorf("log:\n%s", r.logs.String())
	}
}

// Kernel bans the engine did not decide (first strike's provisional ones)
// are not learned as offences: the engine must still decide on the probes
// that follow and replace them with the rule's ban.
func TestProvisionalKernelBansAreNotOffences(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	r.table.bans[pfx("203.0.113.8/32")] = actions.BanEntry{Key: pfx("203.0.113.8/32"), Timeout: time.Minute, Expires: 50 * time.Second, Origin: actions.OriginKernel}
	r.table.bans[pfx("203.0.113.9/32")] = actions.BanEntry{Key: pfx("203.0.113.9/32"), Timeout: time.Hour, Expires: 50 * time.Minute, Origin: actions.OriginDaemon}
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	var keys []netip.Prefix
	for _, o := range d.engine.Offences() {
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []netip.Prefix{pfx("203.0.113.9/32")}) {
		t.Errorf("offences %v, want only the daemon's ban", keys)
	}
}

// Bans restored from state.json pass the checks a new ban does: the
// ignore list and the key length.
func TestRestoreChecksWhatStateSays(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	until := time.Now().Add(time.Hour)
	st := &state.State{Offences: []rules.Offence{
		{Key: pfx("::/0"), Count: 1, LastBan: time.Now(), BannedUntil: until},
		{Key: pfx("127.0.0.1/32"), Count: 1, LastBan: time.Now(), BannedUntil: until},
		{Key: pfx("192.0.2.0/24"), Count: 1, LastBan: time.Now(), BannedUntil: until},
		{Key: pfx("192.0.2.1/32"), Count: 1, LastBan: time.Now(), BannedUntil: until}, // the gateway
		{Key: pfx("203.0.113.7/32"), Count: 1, LastBan: time.Now(), BannedUntil: until},
		{Key: pfx("2001:db8:1:2::/64"), Count: 1, LastBan: time.Now(), BannedUntil: until},
		{Key: pfx("2001:db8:1:3::5/128"), Count: 1, LastBan: time.Now(), BannedUntil: until},
	}}
	if err := state.Save(filepath.Join(r.dir, "state"), st); err != nil {
		t.Fatal(err)
	}
	if _, err := New(r.cfg, r.deps(false)); err != nil {
		t.Fatal(err)
	}
	got := r.table.bannedKeys()
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	want := []netip.Prefix{pfx("203.0.113.7/32"), pfx("2001:db8:1:2::/64"), pfx("2001:db8:1:3::5/128")}
	if !slices.Equal(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	if !strings.Contains(r.logs.String(), "refused=4") {
		t.Errorf("refusals not counted:\n%s", r.logs.String())
	}
}

// A pardon applies once, to what existed before it: a key banned again
// after its pardon keeps that offence across restarts.
func TestPardonAppliesOnce(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	key := pfx("203.0.113.7/32")
	_, stop := r.start(false)
	now := time.Now()
	r.appendLines(line(now, "203.0.113.7", 23, "FIN"))
	r.waitBans(1)
	if err := AppendPardon(r.cfg.StateDir, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	r.waitLog(`msg=pardoned source=203.0.113.7/32`)
	// Banned again after the pardon: offence 1 again (the pardoned one
	// does not count).
	later := time.Now()
	r.appendLines(line(later, "203.0.113.7", 24, "FIN"))
	r.waitBans(2)
	stop()
	for restart := range 2 {
		d, err := New(r.cfg, r.deps(false))
		if err != nil {
			t.Fatal(err)
		}
		var got *rules.Offence
		for _, o := range d.engine.Offences() {
			if o.Key == key {
				got = &o
			}
		}
		if got == nil || got.Count != 1 || got.BannedUntil.Before(time.Now()) {
			t.Fatalf("restart %d: offence %+v, want the ban made after the pardon", restart, got)
		}
		d.maybeSave(true)
	}
}

func TestReloadBuildsBeforeItReplaces(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	engine := d.engine
	// Invalid: nothing changes.
	d.deps.Load = func() (*config.Config, error) { return nil, errors.New("test.yaml:3: rules[0].ban: invalid duration") }
	d.reload()
	if d.engine != engine || !strings.Contains(r.logs.String(), "reload: the config is invalid; the running one stays") {
		t.Fatalf("invalid reload changed the engine or was not logged:\n%s", r.logs.String())
	}
	// A new ignore entry only: the engine takes it in place; the table's
	// allow set follows.
	next := testConfig(t, r.dir, tripwireRules, "")
	next.Ignore.Prefixes = append(next.Ignore.Prefixes, pfx("198.51.100.0/24"))
	d.deps.Load = func() (*config.Config, error) { return next, nil }
	applies := len(r.table.applied)
	d.reload()
	if d.engine != engine {
		t.Error("an ignore-only change rebuilt the engine")
	}
	if len(r.table.applied) != applies+1 || !slices.Contains(r.table.lastSpec().Allow, pfx("198.51.100.0/24")) {
		t.Errorf("allow set not applied: %+v", r.table.lastSpec().Allow)
	}
	// The ban key lengths are pinned: the kernel's strike6 mask and the
	// engine's keys must agree until a restart.
	next2 := testConfig(t, r.dir, tripwireRules, "bans: {ipv6_prefix: 48, ipv4_prefix: 24}\n")
	d.deps.Load = func() (*config.Config, error) { return next2, nil }
	d.reload()
	if b := d.desired.Engine.Bans; b.IPv4Prefix != 32 || b.IPv6Prefix != 64 {
		t.Errorf("key lengths changed by a reload: %+v", b)
	}
	if s := r.table.lastSpec(); s.IPv4Prefix != 32 || s.IPv6Prefix != 64 {
		t.Errorf("table key lengths changed by a reload: %d %d", s.IPv4Prefix, s.IPv6Prefix)
	}
	if !strings.Contains(r.logs.String(), `section=bans.ipv4_prefix/ipv6_prefix`) {
		t.Errorf("pinned section not named:\n%s", r.logs.String())
	}
}

// TestRestoredBansGoTogether: the bans a flushed table lacks go back in
// one BanMany call, with their time left; one refused by the checks stays
// out.
func TestRestoredBansGoTogether(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	calls := len(r.table.manyCalls)
	now := time.Now()
	for _, k := range []string{"203.0.113.1/32", "203.0.113.2/32", "2001:db8:7::/64", "192.0.2.1/32"} {
		d.engine.Restore(rules.Offence{Key: pfx(k), Count: 1, LastBan: now, BannedUntil: now.Add(time.Hour)})
	}
	d.syncBans(context.Background(), "verify", false)
	got := r.table.manyCalls[calls:]
	if len(got) != 1 || len(got[0]) != 3 {
		t.Fatalf("BanMany calls %v, want one of the 3 bans (192.0.2.1, the gateway, refused)", got)
	}
	for _, b := range got[0] {
		if b.Key == pfx("192.0.2.1/32") || b.Timeout < 59*time.Minute || b.Timeout > time.Hour {
			t.Errorf("restored %+v", b)
		}
	}
	if n := len(r.table.bannedKeys()); n != 3 {
		t.Errorf("%d keys banned, want 3", n)
	}
	if !strings.Contains(r.logs.String(), `restored=3`) {
		t.Errorf("no line for the 3 bans put back:\n%s", r.logs.String())
	}
}
