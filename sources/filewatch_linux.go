//go:build linux

package sources

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// fileWatch wakes a FileSource when the files it reads or the directory of
// its path change, with inotify (or with nothing, polling). Each open file
// is watched through its descriptor (/proc/self/fd/N), so the watch is of
// the inode the source reads even after a rename; the directory is watched
// for the names that appear and go. A wake says only "look again": the
// source reads and checks the path itself, and also on a timer, so a
// missed event delays a line by at most the timer's period.
type fileWatch struct {
	wake chan struct{}
	f    *os.File // the inotify instance; nil when polling
	fd   int      // its descriptor: f.Fd would make it blocking
	mu   sync.Mutex
	wds  map[fileID]int
}

func newFileWatch(path string, poll bool) (*fileWatch, error) {
	w := &fileWatch{wake: make(chan struct{}, 1), wds: map[fileID]int{}}
	if poll {
		return w, nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return w, fmt.Errorf("inotify: %w", err)
	}
	// A non-blocking descriptor joins the runtime poller: the reading
	// goroutine below blocks without a thread and ends at Close.
	w.f, w.fd = os.NewFile(uintptr(fd), "inotify"), fd
	dir := filepath.Dir(filepath.Clean(path))
	// The directory may not exist yet: the timer covers that.
	unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE|unix.IN_ATTRIB|unix.IN_ONLYDIR)
	go w.loop()
	return w, nil
}

// polling reports whether the watch gives no events.
func (w *fileWatch) polling() bool { return w.f == nil }

func (w *fileWatch) loop() {
	buf := make([]byte, 64<<10)
	for {
		if _, err := w.f.Read(buf); err != nil {
			return
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// add watches the open file f, known as id, for writes and truncation.
func (w *fileWatch) add(f *os.File, id fileID) {
	if w.f == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.wds[id]; ok {
		return
	}
	wd, err := unix.InotifyAddWatch(w.fd, fmt.Sprintf("/proc/self/fd/%d", f.Fd()),
		unix.IN_MODIFY|unix.IN_ATTRIB|unix.IN_MOVE_SELF|unix.IN_DELETE_SELF)
	if err == nil {
		w.wds[id] = wd
	}
}

// remove stops watching the file id.
func (w *fileWatch) remove(id fileID) {
	if w.f == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wd, ok := w.wds[id]; ok {
		unix.InotifyRmWatch(w.fd, uint32(wd))
		delete(w.wds, id)
	}
}

// close ends the watch and its goroutine.
func (w *fileWatch) close() {
	if w.f != nil {
		w.f.Close()
	}
}
