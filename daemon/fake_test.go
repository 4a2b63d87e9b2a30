package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

// fakeTable is a Table in memory: it records what the daemon asks and
// holds bans by key. Its hooks let a test fail or hold up a call.
type fakeTable struct {
	mu      sync.Mutex
	applied []actions.TableSpec
	bans    map[netip.Prefix]actions.BanEntry
	banned  []netip.Prefix // every Ban, in order
	forgot  []netip.Prefix
	lifted  []netip.Prefix // every key Unblock and Pardon removed, in order
	listen  []actions.ListenPorts
	missing []string
	// manyCalls holds the bans of each BanMany call, fromManyCalls the
	// length of each BanFromMany call; BanFromMany refuses the keys in
	// refuse.
	manyCalls     [][]actions.KeyBan
	fromManyCalls []int
	refuse        map[netip.Prefix]bool
	applyErr      func(actions.TableSpec) error
	banHook       func(netip.Prefix)
	// missingHook runs at the start of Missing, outside the lock: a slow
	// kernel.
	missingHook func()
}

func newFakeTable() *fakeTable {
	return &fakeTable{bans: map[netip.Prefix]actions.BanEntry{}}
}

func (f *fakeTable) Apply(spec actions.TableSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		if err := f.applyErr(spec); err != nil {
			return err
		}
	}
	f.applied = append(f.applied, spec)
	f.missing = nil
	return nil
}

func (f *fakeTable) Missing() ([]string, error) {
	if f.missingHook != nil {
		f.missingHook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.missing), nil
}

func (f *fakeTable) Ban(key netip.Prefix, timeout time.Duration) error {
	if f.banHook != nil {
		f.banHook(key)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.banned = append(f.banned, key)
	f.bans[key] = actions.BanEntry{Key: key, Timeout: timeout, Expires: timeout, Origin: actions.OriginDaemon}
	return nil
}

func (f *fakeTable) BanMany(bans []actions.KeyBan) []error {
	f.mu.Lock()
	f.manyCalls = append(f.manyCalls, slices.Clone(bans))
	f.mu.Unlock()
	errs := make([]error, len(bans))
	for i, b := range bans {
		errs[i] = f.Ban(b.Key, b.Timeout)
	}
	return errs
}

func (f *fakeTable) Unblock(key netip.Prefix) ([]netip.Prefix, error) {
	return f.unblock(key, false)
}

func (f *fakeTable) unblock(key netip.Prefix, keepBlocks bool) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Prefix
	for k, b := range f.bans {
		if k.Overlaps(key) && !(keepBlocks && b.Origin == actions.OriginBlock) {
			delete(f.bans, k)
			out = append(out, k)
		}
	}
	f.lifted = append(f.lifted, out...)
	if len(out) == 0 {
		return nil, fmt.Errorf("fake: unblock %s: %w", key, actions.ErrNotBanned)
	}
	return out, nil
}

func (f *fakeTable) List() ([]actions.BanEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []actions.BanEntry
	for _, b := range f.bans {
		out = append(out, b)
	}
	return out, nil
}

func (f *fakeTable) Snapshot() ([]actions.BanEntry, error) { return f.List() }

func (f *fakeTable) Forget(key netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, key)
	return nil
}

func (f *fakeTable) SetListening(tcp, udp []uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listen = append(f.listen, actions.ListenPorts{TCP: tcp, UDP: udp})
	return nil
}

// flushSets empties the ban sets as `nft flush set` would: every object
// stays.
func (f *fakeTable) flushSets() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans = map[netip.Prefix]actions.BanEntry{}
}

// has reports whether key is in the fake's sets now.
func (f *fakeTable) has(key netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.bans[key]
	return ok
}

// flush empties the table as `nft flush ruleset` would.
func (f *fakeTable) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans = map[netip.Prefix]actions.BanEntry{}
	f.missing = []string{"table inet sentry"}
}

func (f *fakeTable) bannedKeys() []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.banned)
}

func (f *fakeTable) lastSpec() actions.TableSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return actions.TableSpec{}
	}
	return f.applied[len(f.applied)-1]
}

// fakeHost answers with fixed facts.
type fakeHost struct {
	self, gateways, resolvers []netip.Prefix
	tcp, udp                  []uint16
}

func (h fakeHost) Self() ([]netip.Prefix, error)      { return h.self, nil }
func (h fakeHost) Gateways() ([]netip.Prefix, error)  { return h.gateways, nil }
func (h fakeHost) Resolvers() ([]netip.Prefix, error) { return h.resolvers, nil }
func (h fakeHost) Listening() ([]uint16, []uint16, error) {
	return h.tcp, h.udp, nil
}

var testHost = fakeHost{
	self:      []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")},
	gateways:  []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
	resolvers: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")},
	tcp:       []uint16{22, 8080},
}

// syncBuffer is a log destination safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is a daemon reading one log file in a temporary directory, with a
// fake table and host.
type rig struct {
	t     *testing.T
	dir   string
	log   string // the followed file
	cfg   *config.Config
	table *fakeTable
	logs  *syncBuffer
	out   *syncBuffer // dry-run report
}

// testConfig follows dir/kern.log with the given rules section and keeps
// state in dir/state.
func testConfig(t *testing.T, dir, rulesYAML string, extra string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`inputs: {nflog: [], files: [%s]}
state_dir: %s
ignore: [127.0.0.0/8, self, gateways, resolvers]
rules:
%s
%s`, filepath.Join(dir, "kern.log"), filepath.Join(dir, "state"), rulesYAML, extra)
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const tripwireRules = `  - {name: fin, proto: tcp, flags: [fin], threshold: {hits: 1}, ban: 1h}
  - {name: syn, proto: tcp, flags: [syn], threshold: {distinct_ports: 3, within: 60s}, ban: 1h}`

func newRig(t *testing.T, rulesYAML, extra string) *rig {
	t.Helper()
	dir := t.TempDir()
	return &rig{t: t, dir: dir, log: filepath.Join(dir, "kern.log"), cfg: testConfig(t, dir, rulesYAML, extra),
		table: newFakeTable(), logs: &syncBuffer{}, out: &syncBuffer{}}
}

func (r *rig) deps(dryRun bool) Deps {
	d := Deps{Log: slog.New(slog.NewTextHandler(r.logs, nil)), Host: testHost, Report: r.out, HealthEvery: time.Hour}
	d.DryRun = dryRun
	if !dryRun {
		d.Table = r.table
	}
	return d
}

// start makes and runs a daemon; stop (returned) cancels it and returns
// Run's error.
func (r *rig) start(dryRun bool) (*Daemon, func() error) {
	r.t.Helper()
	d, err := New(r.cfg, r.deps(dryRun))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s of its context ending")
			}
		})
		return runErr
	}
	r.t.Cleanup(func() { stop() })
	r.waitLog("msg=running")
	return d, stop
}

// waitLog waits up to 10 s for the daemon's log to contain every part.
func (r *rig) waitLog(parts ...string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s := r.logs.String()
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(s, p)
		}
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("log never had %q:\n%s", parts, r.logs.String())
}

// line is a kernel log line of a TCP probe from src to port with flags
// ("SYN", "FIN"), logged at t.
func line(t time.Time, src string, port int, flags string) string {
	return fmt.Sprintf("%s host kernel: SENTRY IN=eth0 OUT= SRC=%s DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 %s URGP=0\n",
		t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), src, port, flags)
}

// appendLines appends to the followed file.
func (r *rig) appendLines(lines ...string) {
	r.t.Helper()
	f, err := os.OpenFile(r.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "")); err != nil {
		r.t.Fatal(err)
	}
}

// waitBans waits until the fake table has had n Ban calls.
func (r *rig) waitBans(n int) []netip.Prefix {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b := r.table.bannedKeys(); len(b) >= n {
			return b
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("%d bans, want %d; log:\n%s", len(r.table.bannedKeys()), n, r.logs.String())
	return nil
}

// fakeSource fails at every Run with err; ready is never closed (a nil
// channel is never ready).
type fakeSource struct {
	name  string
	err   error
	ready chan struct{}
}

func (f *fakeSource) Name() string { return f.name }
func (f *fakeSource) Run(context.Context, chan<- sources.Item) error {
	return f.err
}
func (f *fakeSource) Ready() <-chan struct{} { return f.ready }
