package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPardonFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r := &pardonReader{path: filepath.Join(dir, PardonFile)}
	if ps, err := r.read(); err != nil || len(ps) != 0 {
		t.Fatalf("no file: %v %v", ps, err)
	}
	at := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	key := netip.MustParsePrefix("203.0.113.7/32")
	if err := AppendPardon(dir, key, at); err != nil {
		t.Fatal(err)
	}
	ps, err := r.read()
	if err != nil || len(ps) != 1 || ps[0].key != key || !ps[0].at.Equal(at) {
		t.Fatalf("read = %+v, %v", ps, err)
	}
	// Read once: the next read has nothing new.
	if ps, _ := r.read(); len(ps) != 0 {
		t.Errorf("pardon read twice: %+v", ps)
	}
	// A line being written is left for the next read.
	f, _ := os.OpenFile(r.path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(at.Format(time.RFC3339Nano) + " 2001:db8::/64")
	if ps, _ := r.read(); len(ps) != 0 {
		t.Errorf("partial line read: %+v", ps)
	}
	f.WriteString("\nnot a pardon\n")
	f.Close()
	if ps, _ := r.read(); len(ps) != 1 || ps[0].key != netip.MustParsePrefix("2001:db8::/64") {
		t.Errorf("after the line ended: %+v", ps)
	}
	// A replaced (shorter) file is read from its start.
	os.WriteFile(r.path, []byte(at.Format(time.RFC3339Nano)+" 192.0.2.1/32\n"), 0o640)
	if ps, _ := r.read(); len(ps) != 1 || ps[0].key != netip.MustParsePrefix("192.0.2.1/32") {
		t.Errorf("after truncation: %+v", ps)
	}
}
