package sources

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// openFile is a file the source reads: the one at the path, or one rotated
// away from it.
type openFile struct {
	f    *os.File
	id   fileID
	r    *lineReader
	p    *parsers.LineParser
	last filePoint // just after the last line read
}

func (o *openFile) close() {
	if o != nil && o.f != nil {
		o.f.Close()
	}
}

// follower is one follow of the path: it ends when ctx ends or a read
// fails, and the next one goes on from where it stopped.
type follower struct {
	s   *FileSource
	ctx context.Context
	out chan<- Item
	w   *fileWatch

	cur    *openFile // the file at the path
	curAt  filePoint // just after the last line read from cur
	old    *openFile // the file rotated away, read for its late lines until graceC
	graceC <-chan time.Time
	ev     parsers.Event
	sumBuf [fileSumMax]byte // for holdsAt
}

// follow waits for a regular file at the path, reads what was left unread
// since the position it resumes from, then follows the file until ctx ends
// (nil) or reading fails (the error).
func (s *FileSource) follow(ctx context.Context, out chan<- Item) error {
	w, err := newFileWatch(s.cfg.Path, s.cfg.Poll)
	if err != nil {
		s.log.Warn("inotify unavailable; polling the file", "err", err)
	}
	defer w.close()
	f := &follower{s: s, ctx: ctx, out: out, w: w}
	defer func() {
		f.cur.close()
		f.old.close()
		if f.cur != nil {
			at := f.curAt
			s.resume = &at
		}
	}()
	if err := f.start(); err != nil || f.cur == nil {
		return err
	}
	every := fileCheckInterval
	if w.polling() {
		every = fileWaitInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if f.old != nil {
			if ok, err := f.read(f.old, true); !ok || err != nil {
				return err
			}
		}
		before := f.curAt.off
		if ok, err := f.read(f.cur, false); !ok || err != nil {
			return err
		}
		cur, reader := f.cur, f.cur.r
		if ok, err := f.check(f.curAt.off != before); !ok || err != nil {
			return err
		}
		if f.cur != cur || f.cur.r != reader {
			// A new file, or this one truncated: it may hold lines
			// already, whose writes woke us before it was noticed.
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-tick.C:
		case <-f.graceC:
			if !f.finishOld() {
				return nil
			}
		}
	}
}

// pathKind names what fi is when it is no regular file.
func pathKind(fi fs.FileInfo) string {
	m := fi.Mode()
	switch {
	case m.IsRegular():
		return ""
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// openRegular opens path if it is a regular file. It never blocks: a FIFO
// or a device is not opened (the path is looked at first), and the open
// itself is non-blocking in case the path changed in between. A path that
// is no regular file returns a nil file and what it is; a missing one,
// "missing".
func openRegular(path string) (*os.File, fs.FileInfo, string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, "missing", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	if k := pathKind(fi); k != "" {
		return nil, nil, k, nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, "missing", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", err
	}
	if k := pathKind(fi); k != "" {
		f.Close()
		return nil, nil, k, nil
	}
	return f, fi, "", nil
}

// note logs what the path has become, once per change, and counts the
// times it became something no regular file.
func (f *follower) note(kind string) {
	s := f.s
	if kind == s.pathKind {
		return
	}
	prev := s.pathKind
	s.pathKind = kind
	switch kind {
	case "":
		if prev != "missing" {
			s.log.Info("the path is a regular file again", "was", prev)
		}
	case "missing":
		s.log.Info("waiting for the file to appear")
	default:
		s.unusable.Add(1)
		s.log.Warn("the path is not a regular file: waiting for a regular file there", "is", kind)
	}
}

func (f *follower) newOpenFile(file *os.File, id fileID, off int64) *openFile {
	return &openFile{f: file, id: id, r: newLineReader(file.ReadAt, id, off, f.s.buf),
		p: parsers.NewLineParser(parsers.LineOptions{Reference: time.Now(), Clock: time.Now})}
}

// start waits for a regular file at the path and decides where to read it
// from (see Run); it reads first what rotated files hold past the position
// it resumes from. f.cur is nil when ctx ended.
func (f *follower) start() error {
	s := f.s
	resume := s.resume
	waited := false
	recovered := false
	var size int64
	for {
		file, fi, kind, err := openRegular(s.cfg.Path)
		if err != nil {
			return err
		}
		if file != nil {
			f.note("")
			id := fileIDOf(fi)
			f.w.add(file, id)
			f.cur = f.newOpenFile(file, id, 0)
			size = fi.Size()
			break
		}
		f.note(kind)
		// A regular file that appears later is read from its start:
		// nothing can be missed while waiting.
		waited = true
		s.markReady()
		if resume != nil && !recovered {
			// The file the position is in may be under a rotated name
			// while the path is missing: read it now.
			recovered = true
			at, ok := f.recoverRotated(*resume)
			if !ok {
				return nil
			}
			resume = &at
			s.resume = resume
		}
		select {
		case <-f.ctx.Done():
			return nil
		case <-f.w.wake:
		case <-time.After(fileWaitInterval):
		}
	}
	cur := f.cur
	switch {
	case resume == nil:
		// A file that appeared while we waited is all new; an existing
		// one is history.
		if !waited {
			f.setCur(size)
		}
	case cur.id == resume.id:
		if f.holdsAt(cur.f, size, *resume) {
			f.setCur(resume.off)
			break
		}
		s.truncations.Add(1)
		s.log.Info("log file truncated while stopped; reading it from the start", "saved_offset", resume.off, "size", size)
		// copytruncate: what the file held past the position is in its
		// copy.
		s.markReady()
		if _, ok := f.recoverRotated(*resume); !ok {
			return nil
		}
	default:
		// A follow restarted right after a rotation it saw finds that
		// rotation again: count it once.
		if cur.id != s.rotated {
			s.rotations.Add(1)
			s.log.Info("log file replaced while stopped; reading the new one from the start", "saved_inode", resume.id.ino, "inode", cur.id.ino)
		}
		s.markReady()
		if _, ok := f.recoverRotated(*resume); !ok {
			return nil
		}
	}
	if f.curAt.id != cur.id {
		f.curAt = filePoint{id: cur.id}
	}
	s.advance(f.curAt)
	s.markReady()
	return nil
}

// setCur starts cur at off, with the checksum of the bytes before it.
func (f *follower) setCur(off int64) {
	cur := f.cur
	cur.r = newLineReader(cur.f.ReadAt, cur.id, off, f.s.buf)
	n := min(off, fileSumMax)
	b := make([]byte, n)
	if m, _ := cur.f.ReadAt(b, off-n); int64(m) != n {
		b = nil
	}
	f.curAt = pointAfter(cur.id, off, b)
}

// holdsAt reports whether file (of size bytes) still holds, just before
// p.off, the line p was taken after: a newline there, and the same bytes
// when p has a checksum.
func (f *follower) holdsAt(file *os.File, size int64, p filePoint) bool {
	if p.off > size {
		return false
	}
	if p.off == 0 {
		return true
	}
	if p.n == 0 {
		var b [1]byte
		n, _ := file.ReadAt(b[:], p.off-1)
		return n == 1 && b[0] == '\n'
	}
	b := f.sumBuf[:min(int(p.n), fileSumMax)]
	if n, _ := file.ReadAt(b, p.off-int64(len(b))); n != len(b) {
		return false
	}
	return b[len(b)-1] == '\n' && crc32.Checksum(b, castagnoli) == p.sum
}

// read hands every complete line of o to emit. Lines of the old file (late)
// carry the current file's position: the old file was read to its end
// when it was rotated, and what its writer appends since is decided along
// with the new file. It reports false if ctx ended.
func (f *follower) read(o *openFile, late bool) (bool, error) {
	s := f.s
	for {
		line, at, st := o.r.next()
		switch st {
		case lineOK, lineTooLong:
			o.last = at
			if o == f.cur {
				f.curAt = at
			}
			if late {
				at = f.curAt
			}
			s.lines.Add(1)
			s.nlines++
			if st == lineTooLong {
				f.tooLong(o)
				s.advance(at)
				continue
			}
			if !f.emit(o, line, at) {
				return false, nil
			}
		case lineEnd:
			if o == f.cur {
				s.sawUpTo(o.id, o.r.rd)
			}
			if skip, n := o.r.skipping(); skip && n >= MaxLineLen && time.Since(s.lastWarn) >= fileLogEvery {
				s.lastWarn = time.Now()
				s.log.Warn("skipping a line longer than 1 MiB", "so_far_bytes", n)
			}
			return true, nil
		case lineErr:
			return false, fmt.Errorf("read: %w", o.r.err)
		}
	}
}

// tooLong counts a line over MaxLineLen, now skipped to its end.
func (f *follower) tooLong(o *openFile) {
	s := f.s
	s.tooLong.Add(1)
	_, n := o.r.skipping()
	s.skippedBytes.Add(uint64(n))
	if time.Since(s.lastWarn) >= fileLogEvery {
		s.lastWarn = time.Now()
		s.log.Warn("skipped a line longer than 1 MiB (counted as malformed, too-long)", "bytes", n, "total", s.tooLong.Load())
	}
}

// emit parses one line and sends its event, counting both; false when ctx
// ended first.
func (f *follower) emit(o *openFile, line []byte, at filePoint) bool {
	s := f.s
	oc := o.p.Parse(line, &f.ev)
	s.outcomes.add(oc)
	if oc != parsers.Parsed {
		s.advance(at)
		return true
	}
	return s.send(f.ctx, f.out, &f.ev, at)
}

// check looks at the path after the current file was read to its end: a
// new file there is a rotation, a shorter or rewritten current file a
// truncation. It reports false if ctx ended.
func (f *follower) check(advanced bool) (bool, error) {
	s := f.s
	fi, err := os.Stat(s.cfg.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Renamed and not yet created again, or removed: the old file
		// may still be written to.
		f.note("missing")
		return true, nil
	case err != nil:
		return true, nil
	case pathKind(fi) != "":
		f.note(pathKind(fi))
		return true, nil
	case fileIDOf(fi) != f.cur.id:
		return f.rotate()
	}
	f.note("")
	if f.truncated(advanced) {
		return f.truncate()
	}
	return true, nil
}

// truncated reports whether the current file is shorter than what was
// read, or no longer holds the last line read where it was (truncated and
// written again in between two looks). The last line is read again only
// when the read before did not just advance: a line it just read is where
// it was.
func (f *follower) truncated(advanced bool) bool {
	cur := f.cur
	fi, err := cur.f.Stat()
	if err != nil {
		return false
	}
	if fi.Size() < cur.r.rd {
		return true
	}
	return !advanced && f.curAt.id == cur.id && f.curAt.n > 0 && !f.holdsAt(cur.f, fi.Size(), f.curAt)
}

// truncate reads what the copy of the file holds past the position, then
// the file from its start.
func (f *follower) truncate() (bool, error) {
	s := f.s
	s.truncations.Add(1)
	s.log.Info("log file truncated (copytruncate); reading it from the start", "read_to", f.curAt.off)
	if _, ok := f.recoverRotated(f.curAt); !ok {
		return false, nil
	}
	f.cur.r = newLineReader(f.cur.f.ReadAt, f.cur.id, 0, s.buf)
	f.curAt = filePoint{id: f.cur.id}
	s.advance(f.curAt)
	return true, nil
}

// rotate moves to the new file at the path: the current file is read to its
// end and kept open, as the old one, for what its writer still appends.
func (f *follower) rotate() (bool, error) {
	s := f.s
	file, fi, kind, err := openRegular(s.cfg.Path)
	if err != nil || file == nil {
		f.note(kind)
		return true, nil
	}
	f.note("")
	if ok, err := f.read(f.cur, false); !ok || err != nil {
		file.Close()
		return ok, err
	}
	if f.old != nil && !f.finishOld() {
		file.Close()
		return false, nil
	}
	id := fileIDOf(fi)
	s.rotations.Add(1)
	s.rotated = id
	s.log.Info("log file rotated; following the new file", "old_inode", f.cur.id.ino, "new_inode", id.ino)
	f.old, f.graceC = f.cur, time.After(fileRotateGrace)
	f.w.add(file, id)
	f.cur = f.newOpenFile(file, id, 0)
	f.curAt = filePoint{id: id}
	s.advance(f.curAt)
	return true, nil
}

// finishOld reads the old file one last time and closes it; false if ctx
// ended.
func (f *follower) finishOld() bool {
	ok, _ := f.read(f.old, true)
	f.w.remove(f.old.id)
	f.old.close()
	f.old, f.graceC = nil, nil
	return ok
}
