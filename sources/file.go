package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

const (
	// fileWaitInterval is how often a missing or unusable path is looked
	// at again, and how often a followed file is checked in poll mode.
	fileWaitInterval = 250 * time.Millisecond
	// fileCheckInterval is how often the path is checked with inotify on:
	// a safety net for events inotify does not give (network file
	// systems, an overflowed queue).
	fileCheckInterval = time.Second
	// fileRotateGrace is how long a rotated file is kept open for lines its
	// writer still appends (rsyslog writes to the renamed file until
	// logrotate's postrotate signal).
	fileRotateGrace = 30 * time.Second
	// fileRetryMax caps the pause between attempts after following failed.
	fileRetryMax = 30 * time.Second
	// fileLogEvery rate-limits the warnings a writer of the file can
	// cause (lines over MaxLineLen).
	fileLogEvery = 10 * time.Second
)

// FilePosition is where a followed file was read up to; the daemon saves it
// in state_dir and hands it back as FileConfig.Start.
type FilePosition struct {
	// Path is the followed path.
	Path string
	// Dev and Inode identify the file the offset belongs to; both 0 if it
	// is not known (nothing opened yet).
	Dev, Inode uint64
	// Offset is the byte offset just after the last line decided.
	Offset int64
	// Sum is the CRC-32C (Castagnoli) of the SumLen bytes just before
	// Offset (at most 256): after a rotation while stopped, the file is
	// found by its content when its inode is gone (compressed into
	// kern.log.1.gz). SumLen 0 (a position saved by an older version)
	// finds files by inode only.
	Sum    uint32
	SumLen uint32
	// Size is how much of the file the source had seen: if the file is
	// gone at the next start, at least Size-Offset bytes of it are lost,
	// and the source says so.
	Size int64
	// Lines and Events count the lines read and the events sent up to
	// the position, from the first start of the source on (across
	// restarts and rotations): saved with the position, they account for
	// every line exactly once.
	Lines, Events uint64
}

func (p *FilePosition) point() filePoint {
	return filePoint{id: fileID{p.Dev, p.Inode}, off: p.Offset, sum: p.Sum, n: p.SumLen, lines: p.Lines, events: p.Events}
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
	// rotated files read after a rotation.
	Lines uint64
	// Events counts Events sent to the output channel.
	Events uint64
	// Outcomes counts lines by the parsers.Outcome of
	// parsers.LineParser.Parse. Events is Outcomes[parsers.Parsed] minus an
	// event cut off at shutdown.
	Outcomes [parsers.NumOutcomes]uint64
	// TooLong counts lines longer than MaxLineLen, skipped unparsed: a
	// malformed record, counted apart from the parser's reasons.
	TooLong uint64
	// Rotations counts files replaced under the path (rename rotation),
	// seen while running or at start.
	Rotations uint64
	// Truncations counts files truncated in place (copytruncate).
	Truncations uint64
	// Recovered counts rotated files read after a start: the rest of the
	// file the saved position was in, found by inode or, compressed, by
	// content, and the files rotated after it.
	Recovered uint64
	// Unusable counts the times the path was found to be something other
	// than a regular file (a FIFO, a directory, a device): the source
	// waits for a regular file there, and says so once per change.
	Unusable uint64
	// Lost counts files whose unread lines could not be recovered at a
	// start (the file the saved position was in is gone), and
	// SkippedBytes the bytes known to be skipped unread: those of lines
	// over MaxLineLen and, for a lost file, the part it had been seen to
	// hold past the position (what was written after the stop is not
	// known, and not counted).
	Lost, SkippedBytes uint64
}

// FileSource follows a kernel log file through rename rotation and
// copytruncate, and turns its firewall lines into Events. It reads the file
// itself, in fixed chunks with lines capped at MaxLineLen, opens nothing
// that could block (a FIFO at the path is never opened for reading), and
// wakes on inotify events (or polls). Make it with NewFileSource; Position
// and Stats may be called at any time from any goroutine.
type FileSource struct {
	cfg FileConfig
	log *slog.Logger

	lines, events, tooLong atomic.Uint64
	rotations, truncations atomic.Uint64
	recovered, unusable    atomic.Uint64
	lost, skippedBytes     atomic.Uint64
	outcomes               outcomeCounters

	// mu guards the decided position and what moves it.
	mu  sync.Mutex
	pos filePoint // the decided position
	// sent and done count the events sent and those whose Mark was
	// committed; while they differ, a line without an event cannot move
	// the position (an event before it is undecided) and is kept in idle
	// until the last event in flight is committed.
	sent, done uint64
	idle       filePoint
	idleSet    bool
	// seen is the file and offset the source has read up to, for
	// Position's Size.
	seen filePoint

	ready     chan struct{}
	readyOnce sync.Once

	// Owned by Run's goroutine.
	nlines, nevents uint64     // lines read and events sent so far
	resume          *filePoint // where a new Run or follow goes on: the last line read
	rotated         fileID     // the file the last rotation seen while running moved away
	pathKind        string     // what the path was at the last look: "" (a regular file), "missing", "a FIFO", ...
	lastWarn        time.Time
	buf             []byte
}

// Name returns "file:" and the followed path.
func (s *FileSource) Name() string { return "file:" + s.cfg.Path }

// Ready is closed once Run knows where it starts, or waits for the path to
// become a regular file: a line appended after that is read. Callers wait
// for it before reporting that they are running.
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
		s.pos = cfg.Start.point()
		s.nlines, s.nevents = s.pos.lines, s.pos.events
		p := s.pos
		s.resume = &p
		s.seen = filePoint{id: s.pos.id, off: max(cfg.Start.Size, cfg.Start.Offset)}
	}
	return s
}

// Position returns where the source stands once every event it sent has
// been decided: the offset just after the last line whose event was
// committed (Mark.Commit), or past lines without an event that follow
// only committed ones, with the device and inode of the file it belongs to
// and a checksum of the bytes before it. Before the first line it is the
// starting point. Saved and given back as FileConfig.Start, it resumes
// without losing or repeating a line, even across a rotation (and
// compression) of the file while stopped.
func (s *FileSource) Position() FilePosition {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := FilePosition{Path: s.cfg.Path, Dev: s.pos.id.dev, Inode: s.pos.id.ino, Offset: s.pos.off, Sum: s.pos.sum, SumLen: s.pos.n, Size: s.pos.off,
		Lines: s.pos.lines, Events: s.pos.events}
	if s.seen.id == s.pos.id && s.seen.off > p.Size {
		p.Size = s.seen.off
	}
	return p
}

// Stats returns a snapshot of the counters.
func (s *FileSource) Stats() FileStats {
	return FileStats{
		Lines:        s.lines.Load(),
		Events:       s.events.Load(),
		TooLong:      s.tooLong.Load(),
		Rotations:    s.rotations.Load(),
		Truncations:  s.truncations.Load(),
		Recovered:    s.recovered.Load(),
		Unusable:     s.unusable.Load(),
		Lost:         s.lost.Load(),
		SkippedBytes: s.skippedBytes.Load(),
		Outcomes:     s.outcomes.load(),
	}
}

// commit moves the position to at, the mark of the oldest event not yet
// decided; once nothing is in flight, to a later place reached by lines
// without events.
func (s *FileSource) commit(at filePoint) {
	s.mu.Lock()
	s.done++
	s.pos = at
	if s.done == s.sent && s.idleSet {
		s.pos, s.idleSet = s.idle, false
	}
	s.mu.Unlock()
}

// advance records that the source moved to at without sending an event
// (a line that is no firewall record, a new file after a rotation).
func (s *FileSource) advance(at filePoint) {
	at.lines, at.events = s.nlines, s.nevents
	s.mu.Lock()
	if s.done == s.sent {
		s.pos = at
	} else {
		s.idle, s.idleSet = at, true
	}
	s.mu.Unlock()
}

// sawUpTo records how far the source has read in file id.
func (s *FileSource) sawUpTo(id fileID, off int64) {
	s.mu.Lock()
	s.seen = filePoint{id: id, off: off}
	s.mu.Unlock()
}

// send hands an event to out with the mark at, counting it in flight;
// false if ctx ended first (the event is not sent, and not in flight).
func (s *FileSource) send(ctx context.Context, out chan<- Item, ev *parsers.Event, at filePoint) bool {
	s.nevents++
	at.lines, at.events = s.nlines, s.nevents
	s.mu.Lock()
	s.sent++
	s.idleSet = false
	s.mu.Unlock()
	select {
	case out <- Item{Event: *ev, Mark: Mark{src: s, at: at}}:
		s.events.Add(1)
		return true
	case <-ctx.Done():
		s.nevents--
		s.mu.Lock()
		s.sent--
		s.mu.Unlock()
		return false
	}
}

// Run follows the file and sends one Item per firewall line to out until
// ctx ends. It never closes out, and returns nil when ctx ends.
//
// A path that does not exist yet, or is not a regular file (a FIFO, a
// directory), is waited for, visibly: the change is logged once and counted
// (Stats.Unusable), and a regular file that appears is read from its
// start. Without Start the source begins at the end of the file. With
// Start it resumes at Start.Offset if the file is the same one (device and
// inode) and still holds the same line ending there; a file truncated since
// is read from 0, after what its copy (Path+".1", copytruncate) holds past
// the offset. A file replaced since is read from its start, after the rest
// of the old one and of any file rotated after it: the old file is looked
// for under Path+".1" and Path+".2", by inode, and compressed
// (Path+".1.gz", Path+".2.gz") by its content at the offset. When it is
// not found, the lines it held past the offset are lost, and the source
// says so (Stats.Lost, Stats.SkippedBytes).
//
// Files are told apart by device and inode: a file created after the old
// one was deleted may get its inode number back, and then counts as the
// same file truncated (read from 0 unless the same line still ends at the
// saved offset).
//
// Run returns an error only if the file exists but cannot be opened at
// start (errors.Is(err, os.ErrPermission) without read access). Later
// failures are logged and following starts again where it stopped.
func (s *FileSource) Run(ctx context.Context, out chan<- Item) error {
	if s.buf == nil {
		s.buf = make([]byte, fileChunk)
	}
	first := true
	pause := time.Second
	for {
		err := s.follow(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if first && errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("file %s: %w", s.cfg.Path, err)
		}
		first = false
		s.log.Warn("following the file failed; retrying", "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, fileRetryMax)
	}
}
