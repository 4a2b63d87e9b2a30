package sources

// Everything FileSource does only because of how github.com/nxadm/tail
// v1.4.11 behaves is in this file, each with the behaviour it works around
// (file and function names are the library's). On an upgrade of the
// library, check each against its new code: some may become unnecessary,
// some wrong.
//
//  1. Reopenings are reported only as log lines (fileTailLogger).
//  2. The inotify tracker's accessors crash before it is started
//     (filePrimeInotify).
//  3. Stop returns before the watch is removed, and Cleanup removes it a
//     second time (fileStopTail, fileWaitUnwatched).
//  4. A line written just before the watch is set up wakes nobody
//     (fileStuckWatch, pending, errFileStuck).
//  5. A stale event makes tail reopen the file it already follows and read
//     it again from the start (fileReread).
//  6. TailFile opens the file by name, not the descriptor we opened
//     (fileTailOpened).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nxadm/tail"
	"github.com/nxadm/tail/watch"
)

const (
	// The messages tail logs after it reopened the file (tail.go,
	// waitForChanges). Line carries no sign of a reopening, and the
	// library reports it nowhere else; its Logger is called on the
	// goroutine that reads the file, just after the open and before the
	// first read, so matching the format strings tells the source of
	// reopenings in order with the lines.
	fileTailReopened          = "Successfully reopened %s"
	fileTailReopenedTruncated = "Successfully reopened truncated %s"

	// fileUnwatchWait bounds the wait for tail's watcher goroutine to drop
	// its inotify watch after Stop (see fileWaitUnwatched).
	fileUnwatchWait = 2 * time.Second

	// fileStuckInterval is how often the source checks that tail is not
	// asleep on a file that has complete lines it has not delivered (see
	// fileStuckWatch).
	fileStuckInterval = 500 * time.Millisecond
)

// errFileStuck makes Run restart the tail at once, at Position.
var errFileStuck = errors.New("tail delivers no lines while the file has complete ones")

// fileStartTail follows path from off with the configuration the source
// relies on: ReOpen and Follow for rotation, CompleteLines so that a line
// is delivered only with its newline (its offset is then a line boundary,
// safe to save), and lg as the Logger, which is how reopenings are learned.
func fileStartTail(path string, off int64, poll bool, lg *fileTailLogger) (*tail.Tail, error) {
	return tail.TailFile(path, tail.Config{
		Location:      &tail.SeekInfo{Offset: off, Whence: io.SeekStart},
		ReOpen:        true,
		MustExist:     true,
		Poll:          poll,
		Follow:        true,
		CompleteLines: true,
		Logger:        lg,
	})
}

// fileTailOpened reports whether the file tail follows (it opened path by
// name, after the source opened and checked it) is the file id: a rotation
// in between would make the source's offset apply to another file. TailFile
// cannot be handed a descriptor.
func fileTailOpened(path string, id fileID) bool {
	fi, err := os.Stat(path)
	return err == nil && fileIDOf(fi) == id
}

// fileStopTail stops t and waits until its inotify watch is gone, so that
// the next tail of the same path gets events.
//
// It does not call t.Cleanup. Cleanup is watch.RemoveWatch, and tail's
// watcher goroutine (watch/inotify.go, ChangeEvents) already calls
// RemoveWatch when the tail dies; the tracker (watch/inotify_tracker.go,
// removeWatch) decrements its per-path count without a floor, so a second
// removal leaves it at -1, and a later Watch of the path, seeing a count
// other than 0, never adds the inotify watch again: a new tail of the path
// in this process would get no events at all.
func fileStopTail(t *tail.Tail, path string, poll bool) {
	t.Stop()
	if !poll {
		fileWaitUnwatched(path)
	}
}

// fileWaitUnwatched waits until tail's watcher goroutine has removed its
// watch of path. Stop waits for the reading goroutine only; the watcher
// goroutine ChangeEvents started removes the watch when it next runs. The
// tracker keeps one event channel per path, shared by every tail of it: a
// new tail started before the old goroutine's RemoveWatch would have its
// channel closed and deleted under it, and never hear of the file again.
// watch.Events(path) is nil once the removal is done.
func fileWaitUnwatched(path string) {
	name := filepath.Clean(path)
	deadline := time.Now().Add(fileUnwatchWait)
	for watch.Events(name) != nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// filePrimeInotify starts tail's process-wide inotify tracker, so that
// fileWaitUnwatched may query it: watch.Events dereferences the shared
// tracker without starting it (only Watch, WatchCreate and the removals
// run its sync.Once), and panics if no tail has watched anything yet in
// this process. The watch is a create watch on the file's directory under
// a name no file can have (it holds a NUL byte), removed at once.
func filePrimeInotify(path string) {
	name := filepath.Join(filepath.Dir(filepath.Clean(path)), "\x00sentry-nflog")
	if watch.WatchCreate(name) == nil {
		watch.RemoveWatchCreate(name)
	}
}

// fileStuckWatch detects a tail asleep on complete lines. tail sets up its
// inotify watch (waitForChanges calls ChangeEvents) only once it has first
// read to the end of the file; a line written between that read and the
// watch raises an event nobody receives, and tail waits for the next write,
// which on a quiet firewall may come hours later. The source cannot close
// the gap inside the library, so it looks: two checks in a row
// (fileStuckInterval apart) with no activity from tail and a complete line
// past the position make follow return errFileStuck, and Run restarts the
// tail at Position, which reads the line.
type fileStuckWatch struct {
	active bool // tail delivered a line or a notice since the last check
	idle   int  // checks in a row with lines pending and no activity
}

// activity records that tail is awake.
func (w *fileStuckWatch) activity() { w.active = true }

// check runs every fileStuckInterval; pending reports whether the file has
// a complete line past the position. It reports whether tail is stuck.
func (w *fileStuckWatch) check(pending func() bool) bool {
	if w.active {
		w.active, w.idle = false, 0
		return false
	}
	if !pending() {
		w.idle = 0
		return false
	}
	w.idle++
	return w.idle >= 2
}

// pending reports whether the followed file has a complete line past the
// current offset, for fileStuckWatch. A line longer than the probe counts
// as complete.
func (s *FileSource) pending(cur *fileReader) bool {
	if cur.f == nil {
		return false
	}
	fi, err := os.Stat(s.cfg.Path)
	if err != nil || fileIDOf(fi) != cur.id || fi.Size() <= cur.off {
		return false
	}
	var b [4096]byte
	n, _ := cur.f.ReadAt(b[:min(int64(len(b)), fi.Size()-cur.off)], cur.off)
	return bytes.IndexByte(b[:n], '\n') >= 0 || n == len(b)
}

// fileReread drops the lines tail delivers a second time. When a write to
// the old file and its rename are both pending, waitForChanges selects at
// random among its Modified, Deleted and Truncated channels; a stale event
// for the renamed file can then make tail reopen the path while it still
// names the file being followed, and tail reads that file again from its
// start. The source knows the file by its inode (the notice), and skips
// lines up to the offset it had read.
type fileReread struct{ upTo int64 } // -1: nothing to skip

func newFileReread() fileReread { return fileReread{upTo: -1} }

// reopened records that tail reopened the followed file, read up to off.
func (r *fileReread) reopened(off int64) { r.upTo = max(r.upTo, off) }

// reset forgets it: the file tail reads now is another or was truncated.
func (r *fileReread) reset() { r.upTo = -1 }

// skip reports whether the line ending at off was read before; the first
// line past it ends the skipping.
func (r *fileReread) skip(off int64) bool {
	if off <= r.upTo {
		return true
	}
	r.upTo = -1
	return false
}

// fileTailLogger receives tail's log messages: reopenings become notices
// for follow, the rest goes to the source's logger at Debug.
type fileTailLogger struct {
	log     *slog.Logger
	path    string
	notices chan<- fileNotice
	done    <-chan struct{}
}

// Printf matches the reopening messages by their format strings (see
// fileTailReopened).
func (l *fileTailLogger) Printf(format string, v ...any) {
	switch format {
	case fileTailReopened, fileTailReopenedTruncated:
		// Runs on tail's goroutine just after it opened the path, before it
		// reads from it: the file opened here is the one tail reads, and
		// the notice reaches follow after every line of the previous file.
		n := fileNotice{truncated: format == fileTailReopenedTruncated}
		if f, err := os.Open(l.path); err == nil {
			if fi, err := f.Stat(); err == nil {
				n.f, n.id = f, fileIDOf(fi)
			} else {
				f.Close()
			}
		}
		select {
		case l.notices <- n:
		case <-l.done:
			if n.f != nil {
				n.f.Close()
			}
		}
	default:
		l.log.Debug("tail: " + fmt.Sprintf(format, v...))
	}
}

func (l *fileTailLogger) Print(v ...any)   { l.log.Debug("tail: " + fmt.Sprint(v...)) }
func (l *fileTailLogger) Println(v ...any) { l.log.Debug("tail: " + fmt.Sprint(v...)) }
func (l *fileTailLogger) Fatal(v ...any)   { l.log.Error("tail: " + fmt.Sprint(v...)) }
func (l *fileTailLogger) Fatalf(format string, v ...any) {
	l.log.Error("tail: " + fmt.Sprintf(format, v...))
}
func (l *fileTailLogger) Fatalln(v ...any) { l.log.Error("tail: " + fmt.Sprint(v...)) }
func (l *fileTailLogger) Panic(v ...any)   { panic(fmt.Sprint(v...)) }
func (l *fileTailLogger) Panicf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}
func (l *fileTailLogger) Panicln(v ...any) { panic(fmt.Sprint(v...)) }
