package sources

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// fileTestWait bounds every wait for events. Most arrive within
// milliseconds; a tail restarted by the stuck check takes about 1.5 s.
const fileTestWait = 10 * time.Second

// fileTestLine is a kern.log firewall line whose destination port tells
// the lines apart.
func fileTestLine(port int) string {
	return fmt.Sprintf("Nov 24 15:58:19 host kernel: [12345.678901] SENTRY IN=eth0 OUT= "+
		"MAC=52:54:00:12:34:56:00:1b:21:3a:4c:5e:08:00 SRC=203.0.113.7 DST=192.0.2.1 LEN=44 "+
		"TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n", port)
}

// fileTestLines joins the lines of ports from..to.
func fileTestLines(from, to int) string {
	var b strings.Builder
	for p := from; p <= to; p++ {
		b.WriteString(fileTestLine(p))
		if p%3 == 0 {
			// Other kernel and daemon lines in between, as in a real log.
			b.WriteString("Nov 24 15:58:19 host kernel: [12345.700000] e1000e: eth0 NIC Link is Up\n")
			b.WriteString("Nov 24 15:58:20 host sshd[2211]: Accepted publickey for admin\n")
		}
	}
	return b.String()
}

func fileTestAppend(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// fileTestRun is a running FileSource and the ports of its events.
type fileTestRun struct {
	t      *testing.T
	src    *FileSource
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	ports map[int]int
	cond  chan struct{} // receives after each event
}

// fileTestStart runs a source for cfg and waits until it has opened the
// file, unless the file does not exist.
func fileTestStart(t *testing.T, cfg FileConfig) *fileTestRun {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(fileTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &fileTestRun{
		t:      t,
		src:    NewFileSource(cfg),
		cancel: cancel,
		done:   make(chan error, 1),
		ports:  make(map[int]int),
		cond:   make(chan struct{}, 1),
	}
	out := make(chan Item)
	go func() { r.done <- r.src.Run(ctx, out) }()
	go func() {
		for {
			select {
			case it := <-out:
				// Decided: the position may move past it.
				it.Mark.Commit()
				r.mu.Lock()
				r.ports[int(it.Event.DstPort)]++
				r.mu.Unlock()
				select {
				case r.cond <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { r.stop() })
	if fi, err := os.Stat(cfg.Path); err == nil && fi.Mode().IsRegular() {
		deadline := time.Now().Add(fileTestWait)
		for r.src.Position().Inode == 0 {
			if time.Now().After(deadline) {
				t.Fatal("source did not open the file")
			}
			time.Sleep(time.Millisecond)
		}
	}
	return r
}

// stop cancels Run and checks that it returns nil promptly.
func (r *fileTestRun) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatal("Run did not return within 5 s of cancellation")
	}
}

// expect waits until every port in from..to has been seen, then checks
// after a short quiet time that each was seen once and no other was.
func (r *fileTestRun) expect(from, to int, others ...int) {
	r.t.Helper()
	want := map[int]int{}
	for p := from; p <= to; p++ {
		want[p] = 1
	}
	for _, p := range others {
		want[p] = 1
	}
	deadline := time.After(fileTestWait)
	for {
		r.mu.Lock()
		missing := 0
		for p := range want {
			if r.ports[p] == 0 {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-r.cond:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("timed out: saw ports %v, want %v", r.seen(), fileTestKeys(want))
		}
	}
	time.Sleep(200 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, n := range r.ports {
		if want[p] != n {
			r.t.Errorf("port %d seen %d times, want %d", p, n, want[p])
		}
	}
}

func (r *fileTestRun) seen() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []int
	for p, n := range r.ports {
		for range n {
			ps = append(ps, p)
		}
	}
	sort.Ints(ps)
	return ps
}

func fileTestKeys(m map[int]int) []int {
	var ps []int
	for p := range m {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}

// fileTestWriter sends the source's log to the test log.
type fileTestWriter struct{ t *testing.T }

func (w fileTestWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func fileTestSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// fileTestCheckPos checks that Position is the end of the file at path.
func fileTestCheckPos(t *testing.T, src *FileSource, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	pos := src.Position()
	id := fileIDOf(fi)
	if pos.Path != path || pos.Dev != id.dev || pos.Inode != id.ino || pos.Offset != fi.Size() {
		t.Errorf("Position = %+v, want %s dev %d inode %d offset %d", pos, path, id.dev, id.ino, fi.Size())
	}
}

// TestFileSourceAppend: the first run starts at the end (existing lines
// are history), appended lines are each seen once, a partial line waits for
// its newline, and Position ends after the last line.
func TestFileSourceAppend(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			fileTestAppend(t, path, fileTestLines(1, 9))
			r := fileTestStart(t, FileConfig{Path: path, Poll: poll})
			for p := 10; p <= 29; p++ {
				fileTestAppend(t, path, fileTestLine(p))
			}
			r.expect(10, 29)

			line := fileTestLine(30)
			fileTestAppend(t, path, line[:100])
			time.Sleep(700 * time.Millisecond)
			if got := r.seen(); len(got) != 20 {
				t.Fatalf("a partial line gave an event: %v", got)
			}
			fileTestAppend(t, path, line[100:])
			r.expect(10, 30)
			fileTestCheckPos(t, r.src, path)

			st := r.src.Stats()
			if st.Events != 21 || st.Outcomes[parsers.Parsed] != 21 || st.Rotations != 0 || st.Truncations != 0 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

// TestFileSourceRenameRotation: logrotate "create" renames the file and
// creates a new one, while the writer still appends to the renamed file
// until it is told to reopen. Lines written just before the rename and to
// the renamed file are still seen, then the new file from its start.
func TestFileSourceRenameRotation(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			r := fileTestStart(t, FileConfig{Path: path, Poll: poll})
			w.WriteString(fileTestLines(1, 5))
			r.expect(1, 5)

			w.WriteString(fileTestLines(6, 8)) // not yet read when renamed
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			w.WriteString(fileTestLines(9, 10)) // the writer has not reopened yet
			fileTestAppend(t, path, "")         // logrotate creates the new file
			time.Sleep(100 * time.Millisecond)
			w.WriteString(fileTestLines(11, 11))
			w.Close() // the writer reopens
			fileTestAppend(t, path, fileTestLines(12, 15))
			r.expect(1, 15)
			fileTestCheckPos(t, r.src, path)
			if st := r.src.Stats(); st.Rotations != 1 || st.Truncations != 0 {
				t.Errorf("Stats = %+v, want 1 rotation", st)
			}

			// A second rotation.
			os.Rename(path, path+".1")
			fileTestAppend(t, path, fileTestLines(16, 17))
			r.expect(1, 17)
			if st := r.src.Stats(); st.Rotations != 2 {
				t.Errorf("Stats = %+v, want 2 rotations", st)
			}
		})
	}
}

// TestFileSourceCopyTruncate: logrotate "copytruncate" copies the file and
// truncates it in place; the writer appends at the new end.
func TestFileSourceCopyTruncate(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			r := fileTestStart(t, FileConfig{Path: path, Poll: poll})
			w.WriteString(fileTestLines(1, 9))
			r.expect(1, 9)

			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".1", data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			w.WriteString(fileTestLines(10, 11))
			r.expect(1, 11)
			fileTestCheckPos(t, r.src, path)
			if st := r.src.Stats(); st.Truncations != 1 || st.Rotations != 0 {
				t.Errorf("Stats = %+v, want 1 truncation", st)
			}
		})
	}
}

// TestFileSourceRewrittenToTheSameSize: a file truncated and written again
// to the size it had, between two looks, is read from its start: its last
// line read is no longer where it was. (When the source looks in between,
// the file is shorter than what was read; either way it is a truncation.)
func TestFileSourceRewrittenToTheSameSize(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			r := fileTestStart(t, FileConfig{Path: path, Poll: poll})
			old, rewritten := fileTestLines(11, 19), fileTestLines(21, 29)
			if len(old) != len(rewritten) {
				t.Fatalf("the two texts are %d and %d bytes", len(old), len(rewritten))
			}
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString(old)
			w.Close()
			r.expect(11, 19)
			if err := os.WriteFile(path, []byte(rewritten), 0o644); err != nil {
				t.Fatal(err)
			}
			r.expect(11, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29)
			if st := r.src.Stats(); st.Truncations != 1 {
				t.Errorf("Stats = %+v, want 1 truncation", st)
			}
		})
	}
}

// TestFileSourceLateFile: a file that does not exist yet is waited for and
// read from its start.
func TestFileSourceLateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	r := fileTestStart(t, FileConfig{Path: path})
	time.Sleep(300 * time.Millisecond)
	fileTestAppend(t, path, fileTestLines(1, 3))
	r.expect(1, 3)
	fileTestAppend(t, path, fileTestLines(4, 6))
	r.expect(1, 6)
	fileTestCheckPos(t, r.src, path)
}

// TestFileSourceRestart: stopped mid-file and restarted at its Position,
// with lines written while it was down, the source sees every line once
// across both runs. The second run also proves that a tail of the same
// path can follow after one stopped in the same process.
func TestFileSourceRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	fileTestAppend(t, path, fileTestLines(1, 2))
	r1 := fileTestStart(t, FileConfig{Path: path})
	fileTestAppend(t, path, fileTestLines(3, 7))
	r1.expect(3, 7)
	r1.stop()
	pos := r1.src.Position()
	fileTestCheckPos(t, r1.src, path)

	fileTestAppend(t, path, fileTestLines(8, 10)) // while stopped
	r2 := fileTestStart(t, FileConfig{Path: path, Start: &pos})
	r2.expect(8, 10)
	fileTestAppend(t, path, fileTestLines(11, 12))
	r2.expect(8, 12)
	fileTestCheckPos(t, r2.src, path)

	// Once more, at once, as a daemon restarting in process would.
	r2.stop()
	pos = r2.src.Position()
	r3 := fileTestStart(t, FileConfig{Path: path, Start: &pos})
	fileTestAppend(t, path, fileTestLines(13, 14))
	r3.expect(13, 14)
}

// TestFileSourceReplacedWhileStopped: the file was rotated while the source
// was down. The rest of the old file, found as kern.log.1, comes first, then
// the new file from its start; without kern.log.1 only the new file.
func TestFileSourceReplacedWhileStopped(t *testing.T) {
	for _, keepOld := range []bool{true, false} {
		t.Run(fmt.Sprintf("old=%v", keepOld), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			fileTestAppend(t, path, "")
			r1 := fileTestStart(t, FileConfig{Path: path})
			fileTestAppend(t, path, fileTestLines(1, 3))
			r1.expect(1, 3)
			r1.stop()
			pos := r1.src.Position()

			fileTestAppend(t, path, fileTestLines(4, 5))
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			fileTestAppend(t, path, fileTestLines(6, 7))
			if !keepOld {
				// Removed only now, so that the new file cannot get the old
				// inode number (see the inode reuse caveat in Run).
				os.Remove(path + ".1")
			}
			r2 := fileTestStart(t, FileConfig{Path: path, Start: &pos})
			if keepOld {
				r2.expect(4, 7)
			} else {
				r2.expect(6, 7)
			}
			fileTestCheckPos(t, r2.src, path)
			if st := r2.src.Stats(); st.Rotations != 1 {
				t.Errorf("Stats = %+v, want 1 rotation", st)
			}
		})
	}
}

// TestFileSourceTruncatedWhileStopped: the same file, shorter than the
// saved offset, or not holding a line end there any more, is read from 0.
func TestFileSourceTruncatedWhileStopped(t *testing.T) {
	for _, name := range []string{"shorter", "misaligned"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			fileTestAppend(t, path, "")
			r1 := fileTestStart(t, FileConfig{Path: path})
			fileTestAppend(t, path, fileTestLines(1, 4))
			r1.expect(1, 4)
			r1.stop()
			pos := r1.src.Position()

			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			content := fileTestLines(5, 5)
			if name == "misaligned" {
				// Longer than before, but the saved offset falls inside a line.
				content = "ab\n" + fileTestLines(5, 9)
			}
			fileTestAppend(t, path, content)
			r2 := fileTestStart(t, FileConfig{Path: path, Start: &pos})
			if name == "misaligned" {
				r2.expect(5, 9)
			} else {
				r2.expect(5, 5)
			}
			if st := r2.src.Stats(); st.Truncations != 1 {
				t.Errorf("Stats = %+v, want 1 truncation", st)
			}
		})
	}
}

// BenchmarkFileSourceLine measures the whole per-line path: the chunked
// read, cutting the line, its checksum, parsing, the send and the commit of
// its mark.
func BenchmarkFileSourceLine(b *testing.B) {
	path := filepath.Join(b.TempDir(), "kern.log")
	var buf bytes.Buffer
	for i := range b.N {
		buf.WriteString(fileTestLine(i % 65536))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	id := fileIDOf(fi)
	src := NewFileSource(FileConfig{Path: path, Start: &FilePosition{Path: path, Dev: id.dev, Inode: id.ino}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Item, 1024)
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- src.Run(ctx, out) }()
	for range b.N {
		it := <-out
		it.Mark.Commit()
	}
	b.StopTimer()
	cancel()
	<-done
}
