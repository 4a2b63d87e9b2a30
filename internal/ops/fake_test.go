package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/fleet"
)

// fakeTable is a table in memory: bans by key, and what was asked of it.
type fakeTable struct {
	bans     []actions.BanEntry
	counters actions.Counters
	sets     []actions.StrikeSet
	// listErr and banErr are returned by List and BanManual when set.
	listErr, banErr error
	inserted        map[netip.Prefix]time.Duration
	forgot          []netip.Prefix
	closed          bool
}

func (f *fakeTable) List() ([]actions.BanEntry, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	return append([]actions.BanEntry(nil), f.bans...), nil
}
func (f *fakeTable) Counters() (actions.Counters, error) {
	if f.listErr != nil {
		return actions.Counters{}, f.listErr
	}
	return f.counters, nil
}
func (f *fakeTable) StrikeSets() ([]actions.StrikeSet, error) { return f.sets, nil }
func (f *fakeTable) BanManual(key netip.Prefix, timeout time.Duration) error {
	if f.banErr != nil {
		return f.banErr
	}
	if f.inserted == nil {
		f.inserted = map[netip.Prefix]time.Duration{}
	}
	f.inserted[key] = timeout
	return nil
}
func (f *fakeTable) Unblock(key netip.Prefix) ([]netip.Prefix, error) {
	var removed []netip.Prefix
	kept := f.bans[:0]
	for _, b := range f.bans {
		if b.Key.Overlaps(key) && b.Origin != actions.OriginManual {
			removed = append(removed, b.Key)
			continue
		}
		kept = append(kept, b)
	}
	f.bans = kept
	if len(removed) == 0 {
		return nil, actions.ErrNotBanned
	}
	return removed, nil
}
func (f *fakeTable) Forget(key netip.Prefix) error { f.forgot = append(f.forgot, key); return nil }
func (f *fakeTable) Close() error                  { f.closed = true; return nil }

// fakeFleet is a fleet's stream in memory.
type fakeFleet struct {
	active    []fleet.Message
	published map[netip.Prefix]time.Duration
}

func (f *fakeFleet) Active(context.Context) ([]fleet.Message, error) { return f.active, nil }
func (f *fakeFleet) PublishPardon(_ context.Context, key netip.Prefix, _ time.Time, keep time.Duration) error {
	if f.published == nil {
		f.published = map[netip.Prefix]time.Duration{}
	}
	f.published[key] = keep
	return nil
}
func (f *fakeFleet) Close() error { return nil }

// testHost is a host with fixed addresses, gateways and resolvers.
type testHost struct{}

func (testHost) Self() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}, nil
}
func (testHost) Gateways() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, nil
}
func (testHost) Resolvers() ([]netip.Prefix, error)     { return nil, nil }
func (testHost) Listening() ([]uint16, []uint16, error) { return nil, nil, nil }

// testConfig loads a config with its state_dir in a temporary directory.
func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`state_dir: %s
ignore: [127.0.0.0/8, self, gateways]
rules:
  - {name: tcp-portscan, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
%s`, filepath.Join(t.TempDir(), "state"), extra)
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testCommand returns a command on t, with table and fleet, and its
// streams.
func testCommand(name string, table *fakeTable, fl *fakeFleet) (*Command, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	c := &Command{Name: name, Out: &out, Err: &errb, Host: testHost{},
		OpenTable: func(*config.Config) (Table, error) {
			if table == nil {
				return nil, errors.New("nftables: open netlink connection: operation not permitted")
			}
			return table, nil
		},
		DialFleet: func(*config.Config) (Fleet, error) { return fl, nil },
	}
	return c, &out, &errb
}

func TestList(t *testing.T) {
	cfg := testConfig(t, "")
	now := time.Now()
	if _, err := daemon.AddBlocks(cfg.StateDir, []daemon.Block{
		{Key: netip.MustParsePrefix("198.51.100.0/30"), Until: now.Add(time.Hour), Reason: "hosting range", Force: true},
		// Taken into the daemon's /24 around it, which outlives it.
		{Key: netip.MustParsePrefix("203.0.113.64/26"), Until: now.Add(20*time.Minute + 30*time.Second), Reason: "lab", Force: true},
		// Ended.
		{Key: netip.MustParsePrefix("203.0.113.128/26"), Until: now.Add(-time.Minute), Force: true},
	}, now.Add(-39*time.Minute-30*time.Second)); err != nil {
		t.Fatal(err)
	}
	table := &fakeTable{
		bans: []actions.BanEntry{
			{Key: netip.MustParsePrefix("203.0.113.7/32"), Timeout: time.Hour, Expires: 59*time.Minute + 30*time.Second + 400*time.Millisecond, Origin: actions.OriginDaemon},
			{Key: netip.MustParsePrefix("2001:db8:bad:1::/64"), Timeout: 24 * time.Hour, Expires: 20 * time.Hour, Origin: "fleet:web2"},
			{Key: netip.MustParsePrefix("198.51.100.2/32"), Timeout: 2 * time.Hour, Expires: time.Hour, Origin: actions.OriginBlock},
			{Key: netip.MustParsePrefix("203.0.113.9/32"), Timeout: time.Minute, Expires: 50 * time.Second, Origin: actions.OriginKernel},
			{Key: netip.MustParsePrefix("192.0.2.99/32"), Origin: actions.OriginManual},
			{Key: netip.MustParsePrefix("203.0.113.0/24"), Timeout: time.Hour, Expires: 59 * time.Minute, Origin: actions.OriginDaemon},
		},
		counters: actions.Counters{Packets4: 12, Bytes4: 480, Packets6: 3, Bytes6: 180},
		sets:     []actions.StrikeSet{{Name: "strike4", Elements: 65536, Size: 65536, FullDrops: 7}, {Name: "strike6", Size: 65536}},
	}
	c, out, errb := testCommand("list", table, nil)
	if err := c.List(cfg, false); err != nil || errb.Len() != 0 {
		t.Fatalf("%v: %s", err, errb)
	}
	golden(t, "list.txt", out.String())
	if !table.closed {
		t.Error("table left open")
	}
	c, out, _ = testCommand("list", table, nil)
	if err := c.List(cfg, true); err != nil {
		t.Fatal(err)
	}
	golden(t, "list.json", out.String())

	// No table yet: nothing is banned, and the command says why.
	c, out, errb = testCommand("list", &fakeTable{listErr: fmt.Errorf("nftables: list: %w", syscall.ENOENT)}, nil)
	if err := c.List(cfg, false); err != nil || errb.String() != "list: table inet sentry does not exist: the daemon has not run here, nothing is banned\n" || out.String() != "0 active bans in inet sentry\n" {
		t.Errorf("no table: %v, stdout %q, stderr %q", err, out, errb)
	}
	// A table that cannot be opened fails.
	c, _, errb = testCommand("list", nil, nil)
	if err := c.List(cfg, false); !errors.Is(err, ErrFailed) || errb.String() != "list: nftables: open netlink connection: operation not permitted\n" {
		t.Errorf("unopened table: %v, %q", err, errb)
	}
}

func TestBlock(t *testing.T) {
	cfg := testConfig(t, "")
	table := &fakeTable{}
	c, out, errb := testCommand("block", table, nil)
	req := BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}, {Key: netip.MustParsePrefix("198.51.100.0/30"), Line: 3}},
		File: "list.txt", For: "2h", Reason: "scanners", Force: true}
	if err := c.Block(cfg, req); err != nil || errb.Len() != 0 {
		t.Fatalf("%v: %s", err, errb)
	}
	if len(table.inserted) != 5 || table.inserted[netip.MustParsePrefix("198.51.100.3/32")] < time.Hour {
		t.Errorf("inserted %v, want the address and the /30's four keys, for 2h", table.inserted)
	}
	for _, want := range []string{"203.0.113.7: blocked 203.0.113.7/32 for 2h, until ", "198.51.100.0/30: blocked 198.51.100.0/30 (as 4 bans of /32) for 2h, until "} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	bs, err := daemon.ReadBlocks(cfg.StateDir)
	if err != nil || len(bs) != 2 || bs[1].Key != netip.MustParsePrefix("198.51.100.0/30") || !bs[1].Force || bs[1].Reason != "scanners" || bs[0].Force {
		t.Errorf("recorded %+v (%v)", bs, err)
	}

	for _, tc := range []struct {
		name    string
		table   *fakeTable
		req     BlockRequest
		want    error
		stderr  string
		records int // manual bans recorded after it, from a fresh state_dir
	}{
		{"refused on a line of the list", &fakeTable{}, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("192.0.2.1/32"), Line: 2}}, File: "l.txt"},
			ErrFailed, "block: refused: l.txt line 2: 192.0.2.1/32: is 192.0.2.1, this host's gateway (ignore: gateways): never banned\nblock: 1 of 1 refused: nothing banned\n", 0},
		{"--for capped", &fakeTable{}, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}}, For: "400d"},
			nil, "block: --for 400d is longer than bans.max_ban: banning for 30d\n", 1},
		{"--for too short", &fakeTable{}, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}}, For: "10ms"},
			ErrUsage, "block: --for: 10ms: want 1s or more\n", 0},
		{"no table yet", &fakeTable{banErr: fmt.Errorf("nftables: %w", syscall.ENOENT)}, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}}},
			nil, "does not exist (the daemon has not run since boot): recorded in ", 1},
		{"kernel refuses", &fakeTable{banErr: errors.New("nftables: flush: no buffer space available")}, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}}},
			ErrFailed, "block: 203.0.113.7/32: nftables: flush: no buffer space available (recorded: the daemon retries within 10 s)\n", 1},
		{"table not opened", nil, BlockRequest{Targets: []Target{{Key: netip.MustParsePrefix("203.0.113.7/32")}}},
			ErrFailed, "block: nftables: open netlink connection: operation not permitted\nblock: recorded in ", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "bans: {max_ban: 30d}\n")
			c, _, errb := testCommand("block", tc.table, nil)
			err := c.Block(cfg, tc.req)
			if err != tc.want || !bytes.Contains(errb.Bytes(), []byte(tc.stderr)) {
				t.Errorf("%v, stderr:\n%s\nwant %v and %q", err, errb, tc.want, tc.stderr)
			}
			if bs, _ := daemon.ReadBlocks(cfg.StateDir); len(bs) != tc.records {
				t.Errorf("%d manual bans recorded, want %d", len(bs), tc.records)
			}
		})
	}
}

func TestUnblock(t *testing.T) {
	cfg := testConfig(t, "")
	now := time.Now()
	if _, err := daemon.AddBlocks(cfg.StateDir, []daemon.Block{{Key: netip.MustParsePrefix("198.51.100.0/30"), Until: now.Add(time.Hour), Force: true}}, now); err != nil {
		t.Fatal(err)
	}
	table := &fakeTable{bans: []actions.BanEntry{
		{Key: netip.MustParsePrefix("203.0.113.7/32"), Origin: actions.OriginDaemon},
		{Key: netip.MustParsePrefix("198.51.100.0/32"), Origin: actions.OriginBlock},
		{Key: netip.MustParsePrefix("198.51.100.1/32"), Origin: actions.OriginBlock},
	}}
	c, out, errb := testCommand("unblock", table, nil)
	keys := []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("192.0.2.200/32")}
	err := c.Unblock(context.Background(), cfg, keys, false)
	if !errors.Is(err, ErrFailed) || errb.Len() != 0 {
		t.Errorf("a key banned nowhere: %v, stderr %s", err, errb)
	}
	want := "203.0.113.7/32: unblocked 203.0.113.7/32\n" +
		"198.51.100.1/32: manual ban 198.51.100.0/30 lifted\n" +
		"192.0.2.200/32: not banned\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if len(table.bans) != 0 || len(table.forgot) != 3 {
		t.Errorf("left %v in the table, forgot %v", table.bans, table.forgot)
	}
	if bs, _ := daemon.ReadBlocks(cfg.StateDir); len(bs) != 0 {
		t.Errorf("manual ban still recorded: %v", bs)
	}
	if data, err := os.ReadFile(filepath.Join(cfg.StateDir, daemon.PardonFile)); err != nil || bytes.Count(data, []byte("\n")) != 3 {
		t.Errorf("pardons: %q (%v), want one a key", data, err)
	}

	// --fleet: a key banned nowhere here is no failure, and the pardon
	// stays in the stream as long as the fleet's longest ban of it.
	fl := &fakeFleet{active: []fleet.Message{{Kind: fleet.KindBan, Key: netip.MustParsePrefix("192.0.2.200/32"), Until: now.Add(5 * time.Hour)}}}
	cfg.Fleet = &config.Fleet{Name: "web-1"}
	c, out, errb = testCommand("unblock", &fakeTable{}, fl)
	if err := c.Unblock(context.Background(), cfg, keys[2:], true); err != nil {
		t.Errorf("--fleet: %v, %s", err, errb)
	}
	if keep := fl.published[keys[2]]; keep < 4*time.Hour || keep > 5*time.Hour {
		t.Errorf("pardon kept %v, want the ban's 5h", keep)
	}
	if want := "192.0.2.200/32: not banned\n192.0.2.200/32: pardon published to the fleet as web-1\n"; out.String() != want {
		t.Errorf("--fleet stdout %q, want %q...", out, want)
	}
	// --fleet without a fleet section is a usage error: nothing is done.
	cfg.Fleet = nil
	c, _, errb = testCommand("unblock", &fakeTable{}, fl)
	if err := c.Unblock(context.Background(), cfg, keys[2:], true); !errors.Is(err, ErrUsage) || !bytes.Contains(errb.Bytes(), []byte("has no fleet section")) {
		t.Errorf("--fleet without fleet: %v, %s", err, errb)
	}
}

func TestListFleet(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Fleet = &config.Fleet{Name: "web-1", Bucket: "sentry_bans"}
	now := time.Now()
	fl := &fakeFleet{active: []fleet.Message{
		{Kind: fleet.KindBan, Key: netip.MustParsePrefix("203.0.113.7/32"), Origin: "web-2", Rule: "tcp-portscan", Ban: time.Hour, Until: now.Add(time.Hour), Decided: now},
		{Kind: fleet.KindPardon, Key: netip.MustParsePrefix("198.51.100.9/32"), Origin: "web-1", Until: now.Add(time.Minute), Decided: now},
	}}
	c, out, errb := testCommand("list", nil, fl)
	if err := c.ListFleet(context.Background(), cfg, false); err != nil {
		t.Fatalf("%v: %s", err, errb)
	}
	for _, want := range []string{"2 active in the fleet's stream sentry_bans\n", "203.0.113.7/32   1h         1h   web-2   tcp-portscan\n", "198.51.100.9/32  1m         -    web-1   (pardon)\n"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// TestTakenIn: which manual bans list shows inside another ban.
func TestTakenIn(t *testing.T) {
	now := time.Now()
	pfx := netip.MustParsePrefix
	block := func(key string) daemon.Block { return daemon.Block{Key: pfx(key), Until: now.Add(time.Hour)} }
	ban := func(key, origin string) actions.BanEntry {
		return actions.BanEntry{Key: pfx(key), Timeout: 2 * time.Hour, Expires: 2 * time.Hour, Origin: origin}
	}
	ended := block("203.0.113.128/26")
	ended.Until = now.Add(-time.Second)
	for _, c := range []struct {
		name  string
		block daemon.Block
		bans  []actions.BanEntry
		want  string // the ban it is shown inside, "" for not shown
	}{
		{"its own element", block("203.0.113.7/32"), []actions.BanEntry{ban("203.0.113.7/32", actions.OriginBlock), ban("203.0.113.0/24", actions.OriginDaemon)}, ""},
		{"a forced prefix banned as its keys", block("203.0.113.64/30"), []actions.BanEntry{ban("203.0.113.65/32", actions.OriginBlock), ban("203.0.113.0/24", actions.OriginDaemon)}, ""},
		{"inside the daemon's range", block("203.0.113.64/26"), []actions.BanEntry{ban("203.0.113.0/24", actions.OriginDaemon), ban("203.0.0.0/16", "fleet:a")}, "203.0.113.0/24"},
		{"inside a manual element", block("203.0.113.64/26"), []actions.BanEntry{ban("203.0.113.0/24", actions.OriginBlock)}, ""},
		{"inside an IPv6 /48", block("2001:db8:1:2::/64"), []actions.BanEntry{ban("2001:db8:1::/48", actions.OriginDaemon)}, "2001:db8:1::/48"},
		{"ended", ended, []actions.BanEntry{ban("203.0.113.0/24", actions.OriginDaemon)}, ""},
		{"nothing around", block("198.51.100.0/26"), []actions.BanEntry{ban("203.0.113.0/24", actions.OriginDaemon)}, ""},
	} {
		got := takenIn([]daemon.Block{c.block}, c.bans, now)
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("%s: shown inside %s", c.name, got[0].around.Key)
		case c.want != "" && (len(got) != 1 || got[0].around.Key != pfx(c.want)):
			t.Errorf("%s: %+v, want it inside %s", c.name, got, c.want)
		}
	}
}
