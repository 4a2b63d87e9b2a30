package sources

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fileTestLog is a logger whose lines a test can look for.
type fileTestLog struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func newFileTestLog(t *testing.T) *fileTestLog { return &fileTestLog{t: t} }

func (l *fileTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (l *fileTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *fileTestLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// count returns how many log lines contain s.
func (l *fileTestLog) count(s string) int { return strings.Count(l.String(), s) }

// waitFor waits up to fileTestWait for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(fileTestWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFileSourceFIFOAtPathNeverBlocks: a FIFO at the followed path (at
// start, and in place of the file while following it) is never opened for
// reading: the source says once that it waits for a regular file, counts
// it, stops at once when asked, and follows the regular file that comes
// back. A writer waiting to open the FIFO stays waiting (nobody reads it).
func TestFileSourceFIFOAtPathNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kern.log")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	lg := newFileTestLog(t)
	r := fileTestStart(t, FileConfig{Path: path, Logger: lg.logger()})
	select {
	case <-r.src.Ready():
	case <-time.After(fileTestWait):
		t.Fatal("not ready while waiting for a regular file")
	}
	waitFor(t, "the FIFO to be reported", func() bool { return lg.count("not a regular file") == 1 })
	time.Sleep(600 * time.Millisecond) // several looks: still one report
	if n := lg.count("not a regular file"); n != 1 {
		t.Errorf("reported %d times, want once per change", n)
	}
	if st := r.src.Stats(); st.Unusable != 1 {
		t.Errorf("Unusable = %d, want 1", st.Unusable)
	}
	// The FIFO gives way to a regular file: read from its start.
	os.Remove(path)
	fileTestAppend(t, path, fileTestLines(1, 3))
	r.expect(1, 3)

	// Rotated away and replaced by a FIFO while followed.
	os.Rename(path, path+".1")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second FIFO to be reported", func() bool { return lg.count("not a regular file") == 2 })
	if st := r.src.Stats(); st.Unusable != 2 {
		t.Errorf("Unusable = %d, want 2", st.Unusable)
	}
	// A writer opening the FIFO blocks until a reader comes: none does.
	opened := make(chan struct{})
	go func() {
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			close(opened)
			f.Close()
		}
	}()
	select {
	case <-opened:
		t.Error("the source opened the FIFO")
	case <-time.After(500 * time.Millisecond):
	}
	r.stop() // fails unless Run returns: bounded, not timed
	// Release the writer.
	if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		<-opened
		f.Close()
	}
}

// TestFileSourceDirectoryAtPath: a directory at the path is waited out
// visibly, at start and while following, never read as a file.
func TestFileSourceDirectoryAtPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kern.log")
	os.Mkdir(path, 0o755)
	lg := newFileTestLog(t)
	r := fileTestStart(t, FileConfig{Path: path, Logger: lg.logger()})
	waitFor(t, "the directory to be reported", func() bool { return lg.count(`is="a directory"`) == 1 })
	os.Remove(path)
	fileTestAppend(t, path, fileTestLines(1, 2))
	r.expect(1, 2)
	os.Rename(path, path+".1")
	os.Mkdir(path, 0o755)
	waitFor(t, "the second directory to be reported", func() bool { return lg.count(`is="a directory"`) == 2 })
	if st := r.src.Stats(); st.Unusable != 2 || st.Rotations != 0 {
		t.Errorf("Stats = %+v", st)
	}
	os.Remove(path)
	fileTestAppend(t, path, fileTestLines(3, 4))
	r.expect(1, 4)
	if st := r.src.Stats(); st.Rotations != 1 {
		t.Errorf("Stats = %+v, want the regular file after the directory counted as a rotation", st)
	}
}

// TestFileSourceLongLineBoundedMemory: a line far longer than MaxLineLen,
// without a newline for a long time, is skipped with bounded memory and
// counted as too long; the lines after it are read.
func TestFileSourceLongLineBoundedMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	fileTestAppend(t, path, "")
	r := fileTestStart(t, FileConfig{Path: path})
	fileTestAppend(t, path, fileTestLines(1, 1))
	r.expect(1, 1)

	const long = 64 << 20 // the 512 MB, scaled for a test
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("A"), 1<<20)
	for range long >> 20 {
		f.Write(chunk)
	}
	time.Sleep(300 * time.Millisecond) // read while the line has no end
	f.WriteString("\n" + fileTestLines(2, 3))
	f.Close()
	r.expect(1, 3)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("allocated %d MiB reading a %d MiB line, want at most 16", grew>>20, long>>20)
	}
	st := r.src.Stats()
	if st.TooLong != 1 || st.SkippedBytes < long {
		t.Errorf("Stats = %+v, want one line too long, %d bytes skipped", st, long+1)
	}
	fileTestCheckPos(t, r.src, path)
}

// fileTestStopped runs a source on path from pos until it has seen ports
// from..to, then stops it and returns its position: a daemon stopped after
// deciding them.
func fileTestStopped(t *testing.T, path string, pos *FilePosition, from, to int) FilePosition {
	t.Helper()
	r := fileTestStart(t, FileConfig{Path: path, Start: pos})
	fileTestAppend(t, path, fileTestLines(from, to))
	r.expect(from, to)
	r.stop()
	return r.src.Position()
}

func gzipFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	if err := os.WriteFile(to, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(from)
}

// TestFileSourceRotationsWhileStopped: lines written while the source was
// stopped are read once each, whatever logrotate did meanwhile: the file
// compressed (kern.log.1.gz), rotated twice (kern.log.2.gz, kern.log.1),
// or copied and truncated. When the file is gone, the loss is said and
// counted.
func TestFileSourceRotationsWhileStopped(t *testing.T) {
	for _, c := range []struct {
		name   string
		rotate func(t *testing.T, path string) // after ports 4-1003 went to the file
		want   [2]int                          // ports read by the next run, besides 2000-2009
		lost   bool
	}{
		{"compressed", func(t *testing.T, path string) {
			os.Rename(path, path+".1")
			gzipFile(t, path+".1", path+".1.gz")
		}, [2]int{4, 1003}, false},
		{"rotated twice, delaycompress", func(t *testing.T, path string) {
			os.Rename(path, path+".1")
			fileTestAppend(t, path, fileTestLines(1004, 1500))
			gzipFile(t, path+".1", path+".2.gz")
			os.Rename(path, path+".1")
		}, [2]int{4, 1500}, false},
		{"rotated twice, plain", func(t *testing.T, path string) {
			os.Rename(path, path+".1")
			fileTestAppend(t, path, fileTestLines(1004, 1500))
			os.Rename(path+".1", path+".2")
			os.Rename(path, path+".1")
		}, [2]int{4, 1500}, false},
		{"copytruncate", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			os.WriteFile(path+".1", data, 0o644)
			os.Truncate(path, 0)
		}, [2]int{4, 1003}, false},
		{"gone", func(t *testing.T, path string) {
			os.Rename(path, path+".old")
		}, [2]int{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kern.log")
			fileTestAppend(t, path, "")
			pos := fileTestStopped(t, path, nil, 1, 3)
			fileTestAppend(t, path, fileTestLines(4, 1003)) // while stopped
			c.rotate(t, path)
			fileTestAppend(t, path, fileTestLines(2000, 2009))
			lg := newFileTestLog(t)
			r := fileTestStart(t, FileConfig{Path: path, Start: &pos, Logger: lg.logger()})
			if c.want == [2]int{} {
				r.expect(2000, 2009)
			} else {
				var others []int
				for p := 2000; p <= 2009; p++ {
					others = append(others, p)
				}
				r.expect(c.want[0], c.want[1], others...)
			}
			st := r.src.Stats()
			if c.lost != (st.Lost == 1) || c.lost != strings.Contains(lg.String(), "lines lost") {
				t.Errorf("lost: Stats %+v; log:\n%s", st, lg.String())
			}
			fileTestCheckPos(t, r.src, path)
			// Every line accounted for once, across both runs.
			lines, events := fileTestCount(1, 3)+fileTestCount(2000, 2009), uint64(3+10)
			if c.want != [2]int{} {
				lines += fileTestCount(c.want[0], c.want[1])
				events += uint64(c.want[1] - c.want[0] + 1)
			}
			if p := r.src.Position(); p.Lines != lines || p.Events != events {
				t.Errorf("position accounts for %d lines and %d events, want %d and %d", p.Lines, p.Events, lines, events)
			}
			// Stopped again at once: nothing is read twice.
			r.stop()
			p2 := r.src.Position()
			r2 := fileTestStart(t, FileConfig{Path: path, Start: &p2})
			fileTestAppend(t, path, fileTestLines(3000, 3000))
			r2.expect(3000, 3000)
		})
	}
}

// fileTestCount is the number of lines fileTestLines(from, to) writes.
func fileTestCount(from, to int) uint64 {
	return uint64(strings.Count(fileTestLines(from, to), "\n"))
}

// TestFileSourcePositionFollowsDecisions: the position never moves past
// an event that was not committed, so a position saved at any moment
// resumes exactly after the decided events: nothing is read twice (kill
// -9 after a save) and nothing skipped.
func TestFileSourcePositionFollowsDecisions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	fileTestAppend(t, path, "")
	src := NewFileSource(FileConfig{Path: path})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Item, 100)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	<-src.Ready()
	waitFor(t, "the file to be opened", func() bool { return src.Position().Inode != 0 })
	fileTestAppend(t, path, fileTestLines(1, 30)) // 30 events, 20 other lines
	var items []Item
	for len(items) < 30 {
		items = append(items, <-out)
	}
	time.Sleep(100 * time.Millisecond)
	if p := src.Position(); p.Offset != 0 {
		t.Fatalf("position %d before any event was decided", p.Offset)
	}
	for _, it := range items[:12] {
		it.Mark.Commit()
	}
	saved := src.Position() // a save now, then kill -9
	cancel()
	<-done
	var seen []int
	for _, it := range items[:12] {
		seen = append(seen, int(it.Event.DstPort))
	}
	// The next run resumes after the twelfth event.
	r := fileTestStart(t, FileConfig{Path: path, Start: &saved})
	r.expect(13, 30)
	if fmt.Sprint(seen) != fmt.Sprint([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) {
		t.Errorf("first run decided %v", seen)
	}
	// Every event decided: the position moves past the trailing lines
	// that gave none, and accounts for each line once.
	fileTestCheckPos(t, r.src, path)
	if p := r.src.Position(); p.Lines != fileTestCount(1, 30) || p.Events != 30 {
		t.Errorf("position accounts for %d lines, %d events; want %d, 30", p.Lines, p.Events, fileTestCount(1, 30))
	}
}
