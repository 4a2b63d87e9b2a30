package state

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if s, err := Load(dir); err != nil || len(s.Offences) != 0 {
		t.Fatalf("missing state: %+v %v", s, err)
	}
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	want := &State{
		Saved: now,
		Offences: []rules.Offence{
			{Key: netip.MustParsePrefix("203.0.113.7/32"), Count: 2, LastBan: now, BannedUntil: now.Add(2 * time.Hour)},
			{Key: netip.MustParsePrefix("2001:db8:bad:1::/64"), Count: 1, LastBan: now.Add(-time.Hour), PardonedAt: now},
		},
		Files:      []Position{{Path: "/var/log/kern.log", Dev: 2049, Inode: 1234, Offset: 98765}},
		BlocksSeen: now.Add(-time.Minute),
	}
	if err := Save(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in state_dir, want only %s", len(entries), FileName)
	}
}

func TestCorruptStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o640)
	s, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "moved to") {
		t.Fatalf("err = %v, want it to say where the file went", err)
	}
	if s == nil || len(s.Offences) != 0 {
		t.Errorf("state = %+v, want empty", s)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, FileName+".bad-*"))
	if len(matches) != 1 {
		t.Errorf("bad file kept: %v", matches)
	}
	// A newer format is refused the same way, never misread.
	os.WriteFile(filepath.Join(dir, FileName), []byte(`{"version": 99}`), 0o640)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("newer format: %v", err)
	}
}

// Positions saved after a state.json apply to it alone: a later Save
// makes them stale, and they never mix with another save's offences.
func TestPositionsGoWithTheirGeneration(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	st := &State{Saved: now, Generation: 7, Files: []Position{{Path: "/var/log/kern.log", Dev: 1, Inode: 2, Offset: 100, Sum: 0xdeadbeef, SumLen: 80, Size: 150}}}
	if err := Save(dir, st); err != nil {
		t.Fatal(err)
	}
	newer := []Position{{Path: "/var/log/kern.log", Dev: 1, Inode: 2, Offset: 400, Sum: 1, SumLen: 90, Size: 400}}
	if err := SavePositions(dir, 7, newer); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || !reflect.DeepEqual(got.Files, newer) {
		t.Fatalf("files %+v (%v), want the newer positions %+v", got.Files, err, newer)
	}
	// A save of the next generation (say with a new offence) written
	// before its positions: its own positions win.
	st.Generation = 8
	st.Offences = []rules.Offence{{Key: netip.MustParsePrefix("203.0.113.7/32"), Count: 1, LastBan: now, BannedUntil: now.Add(time.Hour)}}
	st.Files[0].Offset = 300
	if err := Save(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err = Load(dir)
	if err != nil || got.Files[0].Offset != 300 || len(got.Offences) != 1 {
		t.Fatalf("state %+v (%v): stale positions applied to a newer state", got, err)
	}
}

// Positions saved before any state.json are read back.
func TestPositionsWithoutState(t *testing.T) {
	dir := t.TempDir()
	files := []Position{{Path: "/var/log/kern.log", Dev: 1, Inode: 2, Offset: 100, Lines: 3, Events: 1}}
	if err := SavePositions(dir, 0, files); err != nil {
		t.Fatal(err)
	}
	st, err := Load(dir)
	if err != nil || !reflect.DeepEqual(st.Files, files) {
		t.Errorf("Load = %+v, %v; want the positions", st, err)
	}
}

// Format 1 files (one JSON document) are still read, whole or bounded.
func TestLoadReadsFormat1(t *testing.T) {
	dir := t.TempDir()
	want := benchState(1000)
	want.Files = []Position{{Path: "/var/log/kern.log", Dev: 3, Inode: 4, Offset: 5}}
	want.PardonOffset = 42
	writeV1(t, dir, want)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("format 1 read back differently: %d offences, files %+v, pardon %d", len(got.Offences), got.Files, got.PardonOffset)
	}
	// The next save is format 2 and reads back the same.
	if err := Save(dir, got); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.HasPrefix(string(data), `{"version":2,`) {
		t.Errorf("saved as %.40q", data)
	}
	again, err := Load(dir)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("format 2 round trip differs (%v)", err)
	}
}

// A bounded load keeps every active ban and the most recent of the rest.
func TestLoadBoundedKeepsActiveAndRecent(t *testing.T) {
	for _, format := range []int{1, 2} {
		t.Run(fmt.Sprint("format ", format), func(t *testing.T) {
			dir := t.TempDir()
			st := benchState(1000) // every 10th active; LastBan one second older each
			if format == 1 {
				writeV1(t, dir, st)
			} else if err := Save(dir, st); err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
			got, err := LoadBounded(dir, 300, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Offences) != 300 {
				t.Fatalf("%d offences kept, want 300", len(got.Offences))
			}
			keep := map[netip.Prefix]bool{}
			for _, o := range got.Offences {
				keep[o.Key] = true
			}
			// 100 active ones, and the 200 most recent others: indexes
			// 0-222 but the active ones among them.
			for i, o := range st.Offences {
				active := o.BannedUntil.After(now)
				recent := i < 223
				if keep[o.Key] != (active || recent) {
					t.Errorf("offence %d (active %v): kept %v", i, active, keep[o.Key])
				}
			}
		})
	}
}

// A format 2 file cut short is unreadable, never half read.
func TestCutShortStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, benchState(10)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(lines[:5], "")), 0o640)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("err = %v, want the file reported cut short", err)
	}
}
