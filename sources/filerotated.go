package sources

import (
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// fileRotatedDepth is how many rotations back the source looks for the file
// a position is in: Path+".1" and Path+".2", plain or gzip-compressed, as
// logrotate names them (with or without delaycompress).
const fileRotatedDepth = 2

// rotatedName is one rotated file: Path+".RANK", or Path+".RANK.gz".
type rotatedName struct {
	name string
	rank int
	gz   bool
}

// rotatedNames lists the rotated files that exist, most recent first, the
// plain one before the compressed one of each rank.
func (f *follower) rotatedNames() []rotatedName {
	var out []rotatedName
	for rank := 1; rank <= fileRotatedDepth; rank++ {
		for _, gz := range []bool{false, true} {
			name := fmt.Sprintf("%s.%d", f.s.cfg.Path, rank)
			if gz {
				name += ".gz"
			}
			if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
				out = append(out, rotatedName{name: name, rank: rank, gz: gz})
			}
		}
	}
	return out
}

// recoverRotated reads what the rotated files hold past p, a position in a
// file no longer at the path (rotated, or truncated after a copy): the rest
// of the file p is in, found by inode or by the checksum of the bytes
// before p, then every file rotated after it, whole. It returns where it
// got to, and false if ctx ended. A file that cannot be found is reported
// as lost, with the bytes the source knows it held past p.
func (f *follower) recoverRotated(p filePoint) (filePoint, bool) {
	s := f.s
	names := f.rotatedNames()
	for _, n := range names {
		o, how := f.openRotated(n, p)
		if o == nil {
			continue
		}
		s.log.Info("reading the rest of the rotated file", "rotated", n.name, "from", p.off, "found_by", how)
		at, ok := f.drainRotated(o, n, p)
		if !ok {
			return at, false
		}
		// Files rotated after it hold lines none of which was read.
		for rank := n.rank - 1; rank >= 1; rank-- {
			for _, m := range names {
				if m.rank != rank {
					continue
				}
				o, _ := f.openRotated(m, filePoint{})
				if o == nil {
					continue
				}
				s.log.Info("reading a file rotated while stopped", "rotated", m.name)
				if at, ok = f.drainRotated(o, m, at); !ok {
					return at, false
				}
				break
			}
		}
		return at, true
	}
	seen := int64(0)
	s.mu.Lock()
	if s.seen.id == p.id && s.seen.off > p.off {
		seen = s.seen.off - p.off
	}
	s.mu.Unlock()
	if p.id == f.curID() && seen == 0 {
		// Truncated in place with nothing unread and no copy: nothing
		// lost that the source could know of.
		return p, true
	}
	if p.id == (fileID{}) {
		return p, true
	}
	s.lost.Add(1)
	s.skippedBytes.Add(uint64(seen))
	s.log.Warn("lines lost: the file the saved position is in was not found under a rotated name (plain or .gz); what it held past the position is skipped",
		"inode", p.id.ino, "offset", p.off, "skipped_bytes_at_least", seen)
	return p, true
}

func (f *follower) curID() fileID {
	if f.cur == nil {
		return fileID{}
	}
	return f.cur.id
}

// openRotated opens n positioned at p.off if n is the file p is in: the
// same inode with the same line before p.off, or (a copy, or compressed)
// the same bytes before p.off. The zero p opens n at its start. It returns
// nil if n is not p's file, and how it was found.
func (f *follower) openRotated(n rotatedName, p filePoint) (*openFile, string) {
	file, fi, _, err := openRegular(n.name)
	if err != nil || file == nil {
		return nil, ""
	}
	id := fileIDOf(fi)
	whole := p == filePoint{}
	if !n.gz {
		how := "inode"
		switch {
		case whole:
			how = ""
		case id == p.id && f.holdsAt(file, fi.Size(), p):
		case id != p.id && p.n > 0 && f.holdsAt(file, fi.Size(), p):
			how = "content"
		default:
			file.Close()
			return nil, ""
		}
		return &openFile{f: file, id: id, r: newLineReader(file.ReadAt, id, p.off, f.s.buf), last: p,
			p: parsers.NewLineParser(parsers.LineOptions{Reference: fi.ModTime(), Undated: fi.ModTime()})}, how
	}
	// Compressed: a new inode, found by content (or the very file a
	// position was taken in while reading it after an earlier start).
	if !whole && p.n == 0 && !(id == p.id && p.off == 0) {
		file.Close()
		return nil, ""
	}
	gz, err := gzip.NewReader(file)
	if err != nil {
		file.Close()
		return nil, ""
	}
	if !whole && p.n > 0 {
		if _, err := io.CopyN(io.Discard, gz, p.off-int64(p.n)); err != nil {
			file.Close()
			return nil, ""
		}
		b := make([]byte, p.n)
		if _, err := io.ReadFull(gz, b); err != nil || b[len(b)-1] != '\n' || crc32.Checksum(b, castagnoli) != p.sum {
			file.Close()
			return nil, ""
		}
	}
	read := func(b []byte, _ int64) (int, error) { return gz.Read(b) }
	return &openFile{f: file, id: id, r: newLineReader(read, id, p.off, f.s.buf), last: p,
		p: parsers.NewLineParser(parsers.LineOptions{Reference: fi.ModTime(), Undated: fi.ModTime()})}, "content"
}

// drainRotated reads o to its end and closes it, returning the point after
// its last line (from, if it had none), and false if ctx ended.
func (f *follower) drainRotated(o *openFile, n rotatedName, from filePoint) (filePoint, bool) {
	defer o.close()
	f.s.recovered.Add(1)
	ok, err := f.read(o, false)
	if err != nil {
		f.s.log.Warn("cannot read the rest of a rotated file", "rotated", n.name, "err", err)
	}
	if o.last == (filePoint{}) {
		return from, ok
	}
	return o.last, ok
}
