package state

import (
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
		Files: []Position{{Path: "/var/log/kern.log", Dev: 2049, Inode: 1234, Offset: 98765}},
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
