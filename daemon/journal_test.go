package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func journalEntry(i int) JournalEntry {
	return JournalEntry{Time: time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Action: "ban", Origin: "daemon", Source: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 32),
		Rule: "tcp-portscan", BanSeconds: 3600, Hits: 5, Distinct: 5, Ports: []uint16{22, 23, 80, 443, 8080}, Proto: "TCP", Offence: 1}
}

// readAll returns the journal's entries, failing on a skipped line.
func readAll(t *testing.T, dir string) []JournalEntry {
	t.Helper()
	var out []JournalEntry
	skipped, err := ReadJournal(dir, func(e *JournalEntry) error { out = append(out, *e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 0 {
		t.Errorf("%d lines skipped", skipped)
	}
	return out
}

func seconds(es []JournalEntry) []int {
	var out []int
	for _, e := range es {
		out = append(out, int(e.Time.Sub(journalEntry(0).Time)/time.Second))
	}
	return out
}

// The journal never holds more than its bound in the current file, nor
// more than twice it in all: past it, the file becomes JournalOld (the one
// before is dropped) and what is read is the newest entries, in order,
// without a gap.
func TestJournalRotatesAtItsBound(t *testing.T) {
	dir := t.TempDir()
	const max = 4 << 10
	j, err := openJournal(dir, max, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		e := journalEntry(i)
		j.add(&e)
		if i%7 == 0 {
			j.flush()
		}
		for _, name := range []string{JournalFile, JournalOld} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Size() > max {
				t.Fatalf("after %d entries %s holds %d bytes, over its bound %d", i+1, name, fi.Size(), max)
			}
		}
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	got := seconds(readAll(t, dir))
	if len(got) == 0 || got[len(got)-1] != n-1 {
		t.Fatalf("read %v, want the newest entries ending with %d", got, n-1)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("a gap or disorder between %d and %d in %v", got[i-1], got[i], got)
		}
	}
	line := len(mustJSON(t, journalEntry(n-1))) + 1
	if len(got) < max/line { // at least the current file's worth
		t.Errorf("only %d entries kept of %d at ~%d bytes each under a %d-byte bound", len(got), n, line, max)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files in state_dir: %v, want %s and %s", entries, JournalFile, JournalOld)
	}
}

func mustJSON(t *testing.T, e JournalEntry) string {
	t.Helper()
	dir := t.TempDir()
	j, err := openJournal(dir, JournalMax, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	j.add(&e)
	j.close()
	data, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	return strings.TrimSuffix(string(data), "\n")
}

// A daemon killed (kill -9) loses what it had not written, at most the
// last second, and nothing before: a line the kill cut short is cut off
// when the journal is opened again, and what follows reads whole.
func TestJournalAfterACrash(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	j, err := openJournal(dir, JournalMax, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e := journalEntry(i)
		j.add(&e)
	}
	j.flush() // the second's tick
	e := journalEntry(3)
	j.add(&e) // buffered when the process dies: lost
	// The crash: no close, and a write cut in the middle of a line.
	f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	whole := mustJSON(t, journalEntry(4))
	f.WriteString(whole[:len(whole)/2])
	f.Close()
	if _, err := ReadJournal(dir, func(*JournalEntry) error { return nil }); err != nil {
		t.Fatalf("a reader during the crash: %v", err)
	}

	j2, err := openJournal(dir, JournalMax, log)
	if err != nil {
		t.Fatal(err)
	}
	e = journalEntry(5)
	j2.add(&e)
	j2.close()
	if got, want := seconds(readAll(t, dir)), []int{0, 1, 2, 5}; !slices.Equal(got, want) {
		t.Errorf("after the crash: %v, want %v (3 was buffered, 4 cut short)", got, want)
	}
}

func TestSealTail(t *testing.T) {
	long := strings.Repeat("x", 70<<10)
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"whole", "a\nb\n", "a\nb\n"},
		{"cut", "a\nb\nhal", "a\nb\n"},
		{"only a cut line", "hal", ""},
		{"a cut line too long to be ours", "a\n" + long, "a\n" + long + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j")
			os.WriteFile(path, []byte(tc.in), 0o640)
			f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			size, err := sealTail(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.want || size != int64(len(tc.want)) {
				t.Errorf("sealed to %d bytes (size %d), want %d", len(got), size, len(tc.want))
			}
		})
	}
}

// A write that fails drops what was buffered instead of keeping it: a
// full disk cannot make the journal grow the daemon's memory.
func TestJournalWriteFailureIsBounded(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	j, err := openJournal(dir, JournalMax, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	j.f.Close() // every write now fails
	for i := range 3 * flushAt / 100 {
		e := journalEntry(i)
		j.add(&e)
		if len(j.buf) > flushAt+1024 {
			t.Fatalf("buffer at %d bytes after a failed write", len(j.buf))
		}
	}
	j.flush()
	if n := strings.Count(logs.String(), "cannot write"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
	if j.dropped == 0 {
		t.Error("nothing counted as dropped")
	}
}

// The daemon's decisions reach the journal through the door, in order,
// with their evidence and the log's own times.
func TestJournalHoldsTheDecisions(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	_, stop := r.start(false)
	at := time.Date(2026, 11, 24, 15, 58, 10, 0, time.UTC)
	r.appendLines(line(at, "203.0.113.7", 23, "FIN"),
		line(at.Add(time.Second), "198.51.100.9", 1, "SYN"), line(at.Add(2*time.Second), "198.51.100.9", 2, "SYN"),
		line(at.Add(3*time.Second), "198.51.100.9", 3, "SYN"),
		line(at.Add(4*time.Second), "127.0.0.1", 9, "FIN"))
	r.waitBans(2)
	r.waitLog("source=127.0.0.1/32")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r.cfg.StateDir)
	var lines []string
	for _, e := range got {
		lines = append(lines, fmt.Sprintf("%s %s %s %s rule=%s ban=%d ports=%v hits=%d offence=%d", e.Time.Format(time.RFC3339), e.Action, e.Origin, e.Source, e.Rule, e.BanSeconds, e.Ports, e.Hits, e.Offence))
	}
	want := []string{
		"2026-11-24T15:58:10Z ban daemon 203.0.113.7/32 rule=fin ban=600 ports=[23] hits=1 offence=1", // single-packet evidence: a 10 min first ban
		"2026-11-24T15:58:13Z ban daemon 198.51.100.9/32 rule=syn ban=3600 ports=[1 2 3] hits=3 offence=1",
		"2026-11-24T15:58:14Z ignored daemon 127.0.0.1/32 rule=fin ban=0 ports=[9] hits=1 offence=1",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("journal:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
