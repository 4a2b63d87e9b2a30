package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

const (
	// fileWaitInterval is how often a missing file is looked for.
	fileWaitInterval = 250 * time.Millisecond
	// fileRotateGrace is how long a rotated file is kept open for lines its
	// writer still appends (rsyslog writes to the renamed file until
	// logrotate's postrotate signal) when the new file stays quiet.
	fileRotateGrace = 30 * time.Second
	// fileRetryMax caps the pause between attempts after tail fails.
	fileRetryMax = 30 * time.Second
	// fileDrainBuf is the read buffer for rotated files; a longer line is
	// taken in pieces (each Skipped or malformed).
	fileDrainBuf = 64 << 10
	// fileRotatedSuffix is the name logrotate (create mode) and most
	// syslog setups give the previous file.
	fileRotatedSuffix = ".1"
)

// FilePosition is where a followed file was read up to; the daemon saves it
// in state_dir and hands it back as FileConfig.Start.
type FilePosition struct {
	// Path is the followed path.
	Path string
	// Dev and Inode identify the file the offset belongs to; both 0 if it
	// is not known (nothing opened yet).
	Dev, Inode uint64
	// Offset is the byte offset just after the last line consumed.
	Offset int64
}

// FileConfig configures a FileSource.
type FileConfig struct {
	// Path is the log file to follow: /var/log/kern.log, /var/log/ufw.log,
	// /var/log/messages.
	Path string
	// Start is a position saved by an earlier run (Position), or nil for
	// the first run, which starts at the end of the file: an existing log
	// is history, not evidence to replay.
	Start *FilePosition
	// Logger receives one Info per rotation or truncation and warnings;
	// nil discards them.
	Logger *slog.Logger
	// Poll makes the source look for changes every 250 ms instead of using
	// inotify (for file systems without inotify, such as NFS).
	Poll bool
}

// FileStats are the counters of a FileSource.
type FileStats struct {
	// Lines counts complete lines read, from the followed file and from
	// rotated files drained after a rotation.
	Lines uint64
	// Events counts Events sent to the output channel.
	Events uint64
	// Outcomes counts lines by the parsers.Outcome of
	// parsers.LineParser.Parse. Events is Outcomes[parsers.Parsed] minus an
	// event cut off at shutdown.
	Outcomes [parsers.NumOutcomes]uint64
	// Rotations counts files replaced under the path (rename rotation),
	// seen while running or at start.
	Rotations uint64
	// Truncations counts files truncated in place (copytruncate).
	Truncations uint64
}

// FileSource follows a kernel log file with github.com/nxadm/tail, through
// rename rotation and copytruncate, and turns its firewall lines into
// Events. Make it with NewFileSource; Position and Stats may be called at
// any time from any goroutine.
type FileSource struct {
	cfg FileConfig
	log *slog.Logger

	lines       atomic.Uint64
	events      atomic.Uint64
	outcomes    outcomeCounters
	rotations   atomic.Uint64
	truncations atomic.Uint64

	mu  sync.Mutex
	pos FilePosition

	ready     chan struct{}
	readyOnce sync.Once

	// rotatedTo is the file the last rotation seen while running moved
	// to; only Run's goroutine uses it.
	rotatedTo fileID
}

// Name returns "file:" and the followed path.
func (s *FileSource) Name() string { return "file:" + s.cfg.Path }

// Ready is closed once Run knows where it starts: a line appended after
// that is read. Callers wait for it before reporting that they are
// running.
func (s *FileSource) Ready() <-chan struct{} { return s.ready }

func (s *FileSource) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// NewFileSource returns a source for cfg. It opens nothing: Run does.
func NewFileSource(cfg FileConfig) *FileSource {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileSource{cfg: cfg, log: log.With("input", "file", "path", cfg.Path), ready: make(chan struct{})}
	if cfg.Start != nil {
		s.pos = *cfg.Start
	}
	s.pos.Path = cfg.Path
	return s
}

// Position returns where the source has read up to: the offset just after
// the last line whose event was sent (or which was skipped or malformed),
// with the device and inode of the file it belongs to. Before the first line
// it is the starting point; it never moves past a line whose event was not
// sent. Saved and given back as FileConfig.Start, it resumes without losing
// or repeating a line.
func (s *FileSource) Position() FilePosition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Stats returns a snapshot of the counters.
func (s *FileSource) Stats() FileStats {
	st := FileStats{
		Lines:       s.lines.Load(),
		Events:      s.events.Load(),
		Rotations:   s.rotations.Load(),
		Truncations: s.truncations.Load(),
		Outcomes:    s.outcomes.load(),
	}
	return st
}

func (s *FileSource) setPos(id fileID, off int64) {
	s.mu.Lock()
	s.pos.Dev, s.pos.Inode, s.pos.Offset = id.dev, id.ino, off
	s.mu.Unlock()
}

func (s *FileSource) setOffset(off int64) {
	s.mu.Lock()
	s.pos.Offset = off
	s.mu.Unlock()
}

// Run follows the file and sends one Event per firewall line to out until
// ctx ends. It never closes out, and returns nil when ctx ends, after the
// tail it started has stopped.
//
// A file that does not exist yet is waited for and read from its start.
// Without Start the source begins at the end of the file. With Start it
// resumes at Start.Offset if the file is the same one (device and inode)
// and still holds a complete line ending there; a file truncated since is
// read from 0, and a file replaced since is read from its start, after the
// rest of the old one if it is found under Path+".1".
//
// Files are told apart by device and inode: a file created after the old
// one was deleted may get its inode number back, and then counts as the
// same file truncated (read from 0 unless a line still ends at the saved
// offset).
//
// Run returns an error only if the file exists but cannot be opened at
// start (errors.Is(err, os.ErrPermission) without read access). Later
// failures of the tail are logged and the tail restarted at Position.
func (s *FileSource) Run(ctx context.Context, out chan<- parsers.Event) error {
	if !s.cfg.Poll {
		filePrimeInotify(s.cfg.Path)
	}
	start := s.cfg.Start
	if p := s.Position(); p.Inode != 0 || p.Dev != 0 {
		// Run again after it failed: go on where the last run stopped.
		start = &p
	}
	first := true
	pause := time.Second
	for {
		err := s.follow(ctx, out, start)
		if ctx.Err() != nil {
			return nil
		}
		if first && errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("file %s: %w", s.cfg.Path, err)
		}
		first = false
		if p := s.Position(); p.Inode != 0 || p.Dev != 0 {
			start = &p
		}
		if errors.Is(err, errFileStuck) {
			s.log.Debug("restarting tail", "reason", err)
			continue
		}
		s.log.Warn("following the file failed; retrying", "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, fileRetryMax)
	}
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

func fileIDOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}

// fileReader is a file the source reads itself, rather than through tail:
// the followed file (kept open to drain it once rotated) or a rotated one.
type fileReader struct {
	f      *os.File
	id     fileID
	off    int64
	parser *parsers.LineParser
}

func (r *fileReader) close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}

// fileNotice is what the tail goroutine reports through the logger
// adapter: it reopened the path, which now holds f (nil if it could not be
// opened again).
type fileNotice struct {
	truncated bool
	f         *os.File
	id        fileID
}

// follow opens the file, tails it until ctx ends or the tail fails, and
// stops the tail.
func (s *FileSource) follow(ctx context.Context, out chan<- parsers.Event, start *FilePosition) error {
	cur, err := s.open(ctx, out, start)
	if cur == nil {
		return err
	}
	defer cur.close()

	done := make(chan struct{})
	notices := make(chan fileNotice)
	t, err := fileStartTail(s.cfg.Path, cur.off, s.cfg.Poll,
		&fileTailLogger{log: s.log, path: s.cfg.Path, notices: notices, done: done})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer func() {
		close(done)
		fileStopTail(t, s.cfg.Path, s.cfg.Poll)
	}()
	if !fileTailOpened(s.cfg.Path, cur.id) {
		return errFileStuck
	}

	var (
		ev     parsers.Event
		buf    []byte
		old    *fileReader // rotated file, drained until its writer moves on
		graceC <-chan time.Time
		stuck  fileStuckWatch
		reread = newFileReread()
	)
	defer func() { old.close() }()
	finishOld := func() bool {
		ok := s.drain(ctx, out, old, &buf)
		old.close()
		old, graceC = nil, nil
		s.setPos(cur.id, cur.off)
		return ok
	}
	tick := time.NewTicker(fileStuckInterval)
	defer tick.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil

		case l, ok := <-t.Lines:
			if !ok {
				return fmt.Errorf("tail stopped: %w", t.Err())
			}
			stuck.activity()
			if l.Err != nil || reread.skip(l.SeekInfo.Offset) {
				continue
			}
			if old != nil && !finishOld() {
				return nil
			}
			buf = append(buf[:0], l.Text...)
			if !s.emit(ctx, out, cur.parser, buf, &ev) {
				return nil
			}
			// tail reports Tell() after reading the line's newline: the
			// offset just after the line.
			cur.off = l.SeekInfo.Offset
			if old == nil {
				s.setOffset(cur.off)
			}

		case n := <-notices:
			stuck.activity()
			if n.f != nil && n.id == cur.id && !n.truncated {
				// tail reopened the file it already follows (see
				// fileReread) and reads it again from the start.
				n.f.Close()
				reread.reopened(cur.off)
				continue
			}
			if n.truncated && (n.f == nil || n.id == cur.id) {
				// The same file, smaller than tail had seen it.
				if n.f != nil {
					n.f.Close()
				}
				reread.reset()
				s.truncations.Add(1)
				s.log.Info("log file truncated (copytruncate); reading it from the start", "read_to", cur.off)
				cur.off = 0
				if old == nil {
					s.setOffset(0)
				}
				continue
			}
			// Replaced: drain what tail left of the old file, and keep it
			// open for what its writer still appends.
			s.rotations.Add(1)
			s.rotatedTo = n.id
			s.log.Info("log file rotated; following the new file", "old_inode", cur.id.ino, "new_inode", n.id.ino)
			if old != nil && !finishOld() {
				n.f.Close()
				return nil
			}
			old = &fileReader{f: cur.f, id: cur.id, off: cur.off, parser: cur.parser}
			cur.f, cur.id, cur.off = n.f, n.id, 0
			reread.reset()
			cur.parser = parsers.NewLineParser(parsers.LineOptions{Reference: time.Now(), Clock: time.Now})
			if !s.drain(ctx, out, old, &buf) {
				return nil
			}
			graceC = time.After(fileRotateGrace)

		case <-graceC:
			if !finishOld() {
				return nil
			}

		case <-tick.C:
			if stuck.check(func() bool { return s.pending(cur) }) {
				return errFileStuck
			}
		}
	}
}

// open waits for the file, opens it and decides where to start (see Run),
// draining the old file first if it was replaced while the source was
// stopped. It returns nil and the reason if the file could not be opened,
// nil and nil if ctx ended.
func (s *FileSource) open(ctx context.Context, out chan<- parsers.Event, start *FilePosition) (*fileReader, error) {
	waited := false
	var (
		f   *os.File
		err error
	)
	for {
		f, err = os.Open(s.cfg.Path)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !waited {
			s.log.Info("waiting for the file to appear")
			waited = true
			// A file that appears later is read from its start: nothing
			// can be missed while waiting.
			s.markReady()
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(fileWaitInterval):
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &fileReader{f: f, id: fileIDOf(fi), parser: parsers.NewLineParser(parsers.LineOptions{Reference: time.Now(), Clock: time.Now})}
	size := fi.Size()
	switch {
	case start == nil:
		// A file that appeared while we waited is all new; an existing
		// one is history.
		if !waited {
			r.off = size
		}
	case r.id == fileID{start.Dev, start.Inode}:
		if start.Offset <= size && fileLineEndsAt(f, start.Offset) {
			r.off = start.Offset
		} else {
			s.truncations.Add(1)
			s.log.Info("log file truncated while stopped; reading it from the start", "saved_offset", start.Offset, "size", size)
		}
	default:
		// A tail restarted right after a rotation it saw (before the new
		// file's first line moved the position) finds that rotation again:
		// count it once.
		if r.id != s.rotatedTo {
			s.rotations.Add(1)
			s.log.Info("log file replaced while stopped; reading the new one from the start", "saved_inode", start.Inode, "inode", r.id.ino)
		}
		if !s.drainRotated(ctx, out, start, &r.parser) {
			f.Close()
			return nil, nil
		}
	}
	s.setPos(r.id, r.off)
	s.markReady()
	return r, nil
}

// drainRotated reads the rest of the file start refers to if it is found
// under the usual rotated name; its lines come before the new file's.
func (s *FileSource) drainRotated(ctx context.Context, out chan<- parsers.Event, start *FilePosition, p **parsers.LineParser) bool {
	f, err := os.Open(s.cfg.Path + fileRotatedSuffix)
	if err != nil {
		return true
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fileIDOf(fi) != (fileID{start.Dev, start.Inode}) || fi.Size() <= start.Offset || !fileLineEndsAt(f, start.Offset) {
		return true
	}
	s.log.Info("reading the rest of the rotated file", "rotated", f.Name(), "from", start.Offset)
	var buf []byte
	r := &fileReader{f: f, id: fileIDOf(fi), off: start.Offset, parser: *p}
	ok := s.drain(ctx, out, r, &buf)
	// The new file gets a parser of its own, as its first lines may be
	// of another day than the old file's last ones.
	*p = parsers.NewLineParser(parsers.LineOptions{Reference: time.Now(), Clock: time.Now})
	return ok
}

// fileLineEndsAt reports whether off is 0 or just after a newline: a saved
// offset that is not at a line boundary belongs to another content.
func fileLineEndsAt(f *os.File, off int64) bool {
	if off == 0 {
		return true
	}
	var b [1]byte
	n, _ := f.ReadAt(b[:], off-1)
	return n == 1 && b[0] == '\n'
}

// drain reads r's complete lines from r.off to the end of the file, sending
// their events and moving the position along. A last line without its
// newline is left for later. It reports false if ctx ended.
func (s *FileSource) drain(ctx context.Context, out chan<- parsers.Event, r *fileReader, bufp *[]byte) bool {
	if r == nil || r.f == nil {
		return true
	}
	if cap(*bufp) < fileDrainBuf {
		*bufp = make([]byte, 0, fileDrainBuf)
	}
	buf := (*bufp)[:fileDrainBuf]
	var ev parsers.Event
	for {
		n, err := r.f.ReadAt(buf, r.off)
		chunk := buf[:n]
		consumed := 0
		for consumed < len(chunk) {
			nl := bytes.IndexByte(chunk[consumed:], '\n')
			if nl < 0 {
				if consumed > 0 || n < len(buf) {
					break
				}
				nl = len(chunk) - 1 // a line longer than the buffer: take a piece
			}
			line := chunk[consumed : consumed+nl+1]
			consumed += nl + 1
			if !s.emit(ctx, out, r.parser, line, &ev) {
				return false
			}
			s.setPos(r.id, r.off+int64(consumed))
		}
		r.off += int64(consumed)
		if consumed == 0 || err != nil && n < len(buf) {
			return true
		}
	}
}

// emit parses one line and sends its event, counting both; false when ctx
// ended first.
func (s *FileSource) emit(ctx context.Context, out chan<- parsers.Event, p *parsers.LineParser, line []byte, ev *parsers.Event) bool {
	s.lines.Add(1)
	o := p.Parse(line, ev)
	s.outcomes.add(o)
	if o != parsers.Parsed {
		return true
	}
	select {
	case out <- *ev:
		s.events.Add(1)
		return true
	case <-ctx.Done():
		return false
	}
}
