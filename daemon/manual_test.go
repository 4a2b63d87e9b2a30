package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
)

// BanManual makes the fake table a manualTable, as *actions.Table is.
func (f *fakeTable) BanManual(key netip.Prefix, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.banned = append(f.banned, key)
	f.bans[key] = actions.BanEntry{Key: key, Timeout: timeout, Expires: timeout, Origin: actions.OriginBlock}
	return nil
}

// Pardon is Unblock leaving the manual bans, as *actions.Table's.
func (f *fakeTable) Pardon(key netip.Prefix) ([]netip.Prefix, error) {
	return f.unblock(key, true)
}

func (f *fakeTable) entry(key netip.Prefix) (actions.BanEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.bans[key]
	return e, ok
}

func TestBlockFile(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	got, err := AddBlocks(dir, []Block{
		{Key: pfx("203.0.113.7/32"), Until: now.Add(time.Hour), Reason: "ssh"},
		{Key: pfx("2001:db8::/48"), Until: now.Add(2 * time.Hour), Force: true},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[1].At.After(got[0].At) || !got[0].At.Equal(now) {
		t.Fatalf("recorded %+v: want At now, then increasing", got)
	}
	// Again, with a clock that went back: At still increases. A key
	// recorded already keeps the later end and its reason.
	again, err := AddBlocks(dir, []Block{{Key: pfx("203.0.113.7/32"), Until: now.Add(30 * time.Minute)}}, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].At.After(got[1].At) || !again[0].Until.Equal(now.Add(time.Hour)) || again[0].Reason != "ssh" {
		t.Errorf("re-block recorded %+v", again[0])
	}
	all, err := ReadBlocks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Key != pfx("2001:db8::/48") || all[1].Key != pfx("203.0.113.7/32") {
		t.Errorf("file holds %+v: want one line per key, in the order of At", all)
	}

	// An address inside a manual ban's prefix lifts that ban.
	removed, err := RemoveBlocks(dir, pfx("2001:db8:0:5::1/128"), now)
	if err != nil || len(removed) != 1 || removed[0].Key != pfx("2001:db8::/48") {
		t.Fatalf("RemoveBlocks = %+v, %v", removed, err)
	}
	// Bans ended are dropped at the next rewrite and never returned.
	if removed, err := RemoveBlocks(dir, pfx("203.0.113.7/32"), now.Add(2*time.Hour)); err != nil || len(removed) != 0 {
		t.Errorf("RemoveBlocks of an ended ban = %+v, %v", removed, err)
	}
	if all, _ := ReadBlocks(dir); len(all) != 0 {
		t.Errorf("left %+v", all)
	}
}

func TestBlockFileCap(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var bs []Block
	for i := range MaxBlocks {
		bs = append(bs, Block{Key: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Until: now.Add(time.Hour)})
	}
	if _, err := AddBlocks(dir, bs, now); err != nil {
		t.Fatal(err)
	}
	_, err := AddBlocks(dir, []Block{{Key: pfx("203.0.113.7/32"), Until: now.Add(time.Hour)}}, now)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d", MaxBlocks)) {
		t.Fatalf("one past the cap: %v", err)
	}
	if all, _ := ReadBlocks(dir); len(all) != MaxBlocks {
		t.Errorf("%d recorded after a refusal, want %d", len(all), MaxBlocks)
	}
}

// Commands that record at once take turns: none loses another's ban.
func TestBlockFileConcurrentCommands(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := AddBlocks(dir, []Block{{Key: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32), Until: now.Add(time.Hour)}}, now); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	all, err := ReadBlocks(dir)
	if err != nil || len(all) != 16 {
		t.Fatalf("%d recorded, want 16 (%v)", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if !all[i].At.After(all[i-1].At) {
			t.Errorf("At not increasing: %v then %v", all[i-1].At, all[i].At)
		}
	}
}

// A manual ban recorded while the daemon was down (or the table gone, as
// after a reboot) is put into the sets at start with its remaining time,
// as a manual ban, never as an offence; one that covers the gateway is
// refused; each is noted in the journal once, across restarts.
func TestManualBansAreRestoredNotOffences(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	now := time.Now()
	stateDir := r.cfg.StateDir
	if _, err := AddBlocks(stateDir, []Block{
		{Key: pfx("203.0.113.7/32"), Until: now.Add(time.Hour), Reason: "ssh brute force"},
		{Key: pfx("198.51.100.0/30"), Until: now.Add(time.Hour), Force: true},
		{Key: pfx("192.0.2.0/24"), Until: now.Add(time.Hour), Force: true}, // covers the gateway
		{Key: pfx("2001:db8:bad::/48"), Until: now.Add(time.Hour)},         // too wide, not forced
	}, now); err != nil {
		t.Fatal(err)
	}
	d, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	got := r.table.bannedKeys()
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	want := []netip.Prefix{pfx("198.51.100.0/32"), pfx("198.51.100.1/32"), pfx("198.51.100.2/32"), pfx("198.51.100.3/32"), pfx("203.0.113.7/32")}
	if !slices.Equal(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	if e, _ := r.table.entry(pfx("203.0.113.7/32")); e.Origin != actions.OriginBlock || e.Timeout < 59*time.Minute || e.Timeout > time.Hour {
		t.Errorf("restored as %+v, want a manual ban with about an hour left", e)
	}
	if n := len(d.engine.Offences()); n != 0 {
		t.Errorf("%d offences: a manual ban is none", n)
	}
	if !strings.Contains(r.logs.String(), "refused=2") || !strings.Contains(r.logs.String(), "covers 192.0.2.10, an address of this host") {
		t.Errorf("refusals not logged:\n%s", r.logs.String())
	}
	d.maybeSave(true)
	d.Close()

	// A restart notes nothing twice.
	d2, err := New(r.cfg, r.deps(false))
	if err != nil {
		t.Fatal(err)
	}
	d2.Close()
	var noted []string
	for _, e := range readAll(t, stateDir) {
		if e.Action == ActionBlock {
			noted = append(noted, e.Source.String()+" "+e.Origin+" "+e.Reason)
		}
	}
	if want := []string{"203.0.113.7/32 manual ssh brute force", "198.51.100.0/30 manual ", "192.0.2.0/24 manual ", "2001:db8:bad::/48 manual "}; !slices.Equal(noted, want) {
		t.Errorf("journal notes %q, want %q", noted, want)
	}
	if st, _ := state.Load(stateDir); st.BlocksSeen.IsZero() {
		t.Error("BlocksSeen not saved")
	}
}

// The running daemon takes note of a block within a second or two, and
// puts the ban back when the sets are flushed, like its own.
func TestRunningDaemonKeepsManualBans(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	d, stop := r.start(false)
	key := pfx("203.0.113.7/32")
	if _, err := AddBlocks(r.cfg.StateDir, []Block{{Key: key, Until: time.Now().Add(time.Hour), Reason: "seen in the web log"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r.waitLog(`msg="manual ban" source=203.0.113.7/32`, `reason="seen in the web log"`)
	r.table.flushSets()
	d.checkTamper(context.Background(), true)
	if e, ok := r.table.entry(key); !ok || e.Origin != actions.OriginBlock {
		t.Errorf("after a flush of the sets: %+v (present %v), want the manual ban back", e, ok)
	}
	// unblock removes the record: a flush then leaves it out.
	if _, err := RemoveBlocks(r.cfg.StateDir, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		d.onLoop(context.Background(), func() { n = len(d.blocks) })
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon still holds the manual ban 5 s after it was removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.table.flushSets()
	d.checkTamper(context.Background(), true)
	if r.table.has(key) {
		t.Error("a removed manual ban was put back")
	}
	stop()
}

// A fleet's pardon lifts every ban of its key here but a manual ban of
// this host's operator, which stays in the kernel all along.
func TestFleetPardonKeepsManualBans(t *testing.T) {
	r, _, deps := newFleetRig(t, 0, 100)
	key := pfx("203.0.113.7/32")
	now := time.Now()
	if _, err := AddBlocks(r.cfg.StateDir, []Block{{Key: key, Until: now.Add(time.Hour)}}, now); err != nil {
		t.Fatal(err)
	}
	d, err := New(r.cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !r.table.has(key) {
		t.Fatal("manual ban not in the table at start")
	}
	other := pfx("203.0.113.8/32")
	r.table.Ban(other, time.Hour)
	d.applyRemotes(fleet.Message{Kind: fleet.KindPardon, Key: pfx("203.0.113.0/24"), Origin: "a", Decided: now, Until: now.Add(time.Hour), Stored: now}, nil)
	if e, ok := r.table.entry(key); !ok || e.Origin != actions.OriginBlock {
		t.Errorf("after a fleet pardon: %+v (present %v), want the manual ban kept", e, ok)
	}
	r.table.mu.Lock()
	lifted := slices.Clone(r.table.lifted)
	r.table.mu.Unlock()
	if !slices.Equal(lifted, []netip.Prefix{other}) {
		t.Errorf("the fleet pardon lifted %v, want only %s (the manual ban never out of the kernel)", lifted, other)
	}
}

// The blocks file's reader sees a rewrite (a rename over it), a removal,
// and nothing when nothing changed.
func TestBlockReader(t *testing.T) {
	dir := t.TempDir()
	r := blockReader{path: filepath.Join(dir, BlockFile)}
	if _, changed, err := r.read(); changed || err != nil {
		t.Fatalf("missing file: changed %v, %v", changed, err)
	}
	now := time.Now()
	AddBlocks(dir, []Block{{Key: pfx("203.0.113.7/32"), Until: now.Add(time.Hour)}}, now)
	if bs, changed, err := r.read(); !changed || err != nil || len(bs) != 1 {
		t.Fatalf("after a block: %v %v %v", bs, changed, err)
	}
	if _, changed, _ := r.read(); changed {
		t.Error("changed without a change")
	}
	AddBlocks(dir, []Block{{Key: pfx("203.0.113.8/32"), Until: now.Add(time.Hour)}}, now)
	if bs, changed, _ := r.read(); !changed || len(bs) != 2 {
		t.Errorf("after a second block: %v %v", bs, changed)
	}
	os.Remove(filepath.Join(dir, BlockFile))
	if bs, changed, _ := r.read(); !changed || len(bs) != 0 {
		t.Errorf("after a removal: %v %v", bs, changed)
	}
	os.WriteFile(filepath.Join(dir, BlockFile), []byte("{not json\n"), 0o640)
	if _, changed, err := r.read(); changed || err == nil {
		t.Errorf("a corrupt file: changed %v, err %v; want an error and the old list kept", changed, err)
	}
}

// FuzzParseBlocks: whatever the blocks file holds (it is root's, but may
// be edited by hand or cut by a full disk), parsing never panics, and what
// it accepts writes back to the same bans.
func FuzzParseBlocks(f *testing.F) {
	f.Add([]byte(`{"key":"203.0.113.7/32","at":"2026-11-24T15:00:00Z","until":"2026-11-24T16:00:00Z","reason":"ssh"}` + "\n"))
	f.Add([]byte(`{"key":"2001:db8::/48","at":"2026-11-24T15:00:00Z","until":"2026-11-24T16:00:00Z","force":true}` + "\n\n"))
	f.Add([]byte("{not json\n"))
	f.Add([]byte(`{"key":"","until":"2026-11-24T16:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		bs, err := parseBlocks(data)
		if err != nil {
			return
		}
		dir := t.TempDir()
		if err := writeBlocks(dir, bs); err != nil {
			t.Fatal(err)
		}
		again, err := ReadBlocks(dir)
		if err != nil {
			t.Fatalf("written back, unreadable: %v", err)
		}
		if len(again) != len(bs) {
			t.Fatalf("%d bans written, %d read back", len(bs), len(again))
		}
		for i := range bs {
			if again[i].Key != bs[i].Key || !again[i].Until.Equal(bs[i].Until) || again[i].Reason != bs[i].Reason {
				t.Fatalf("ban %d: %+v read back as %+v", i, bs[i], again[i])
			}
		}
	})
}
