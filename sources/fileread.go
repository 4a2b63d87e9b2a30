package sources

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"syscall"
)

const (
	// MaxLineLen caps a line of a followed file, as replay caps it: no
	// kernel log line comes near it, and a longer one (a hostile or broken
	// writer) is counted and skipped to its end with bounded memory.
	MaxLineLen = 1 << 20
	// fileChunk is how much is read from a file at a time.
	fileChunk = 64 << 10
	// fileSumMax is how many bytes before a position its checksum covers:
	// enough of a log line (its timestamp and addresses) to tell it from
	// any other at the same offset of another file.
	fileSumMax = 256
)

// castagnoli is CRC-32C, computed by the CPU on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

func fileIDOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}

// filePoint is a place in a file just after a line (or its start): what a
// Mark carries and Position reports. sum is the CRC-32C of the n bytes
// before off, so that the place can be found again by content in a copy of
// the file (a rotated file compressed since).
type filePoint struct {
	id  fileID
	off int64
	sum uint32
	n   uint32
	// lines and events count the lines read and the events sent by the
	// source up to this point, from its first start on (FilePosition).
	lines, events uint64
}

// pointAfter is the point just after tail's last byte, at off.
func pointAfter(id fileID, off int64, tail []byte) filePoint {
	if len(tail) > fileSumMax {
		tail = tail[len(tail)-fileSumMax:]
	}
	return filePoint{id: id, off: off, sum: crc32.Checksum(tail, castagnoli), n: uint32(len(tail))}
}

// readFunc reads into p from off: an *os.File's ReadAt, or a stream (a
// decompressed file) that ignores off because it is only read forward.
type readFunc func(p []byte, off int64) (int, error)

// lineStatus is what lineReader.next found.
type lineStatus uint8

const (
	lineOK      lineStatus = iota // a complete line
	lineTooLong                   // the end of a line longer than MaxLineLen, skipped
	lineEnd                       // no complete line past the last one, for now
	lineErr                       // the read failed
)

// lineReader cuts a file into lines from an offset, reading fixed chunks:
// memory stays within a chunk and one line of at most MaxLineLen, whatever
// the file holds. A line longer than that is skipped to its newline, which
// may come much later. A line is returned only with its newline; a last
// line without one waits for the rest. Lines returned alias the reader's
// buffers and are valid until the next call.
type lineReader struct {
	read readFunc
	id   fileID // the file, for the points of its lines
	buf  []byte // fileChunk bytes, shared by the readers of one source
	i, n int    // unread bytes are buf[i:n]
	base int64  // file offset of buf[0]
	rd   int64  // file offset of the next read
	end  int64  // file offset just after the last line returned
	pend []byte // the start of a line cut by the end of a chunk
	skip bool   // inside a line longer than MaxLineLen
	// skipped counts the bytes of the current too-long line so far.
	skipped int64
	err     error
}

func newLineReader(read readFunc, id fileID, off int64, buf []byte) *lineReader {
	return &lineReader{read: read, id: id, buf: buf, base: off, rd: off, end: off}
}

// next returns the next line and the point just after it. With lineTooLong
// line is nil and the point is after the skipped line's newline. With
// lineEnd there is nothing more for now (call again once the file grew);
// with lineErr, r.err says why.
func (r *lineReader) next() ([]byte, filePoint, lineStatus) {
	for {
		if r.i < r.n {
			chunk := r.buf[r.i:r.n]
			if nl := bytes.IndexByte(chunk, '\n'); nl >= 0 {
				r.i += nl + 1
				r.end = r.base + int64(r.i)
				if r.skip {
					r.skip = false
					r.skipped += int64(nl + 1)
					return nil, pointAfter(r.id, r.end, chunk[:nl+1]), lineTooLong
				}
				line := chunk[:nl+1]
				if len(r.pend) > 0 {
					if len(r.pend)+len(line) > MaxLineLen {
						r.skipped = int64(len(r.pend) + len(line))
						r.pend = r.pend[:0]
						return nil, pointAfter(r.id, r.end, line), lineTooLong
					}
					r.pend = append(r.pend, line...)
					line = r.pend
					r.pend = r.pend[:0]
				}
				return line, pointAfter(r.id, r.end, line), lineOK
			}
			// No newline in the rest of the chunk: keep it as the start
			// of the next line, unless that line is already too long.
			if !r.skip && len(r.pend)+len(chunk) > MaxLineLen {
				r.skip = true
				r.skipped = int64(len(r.pend))
				r.pend = r.pend[:0]
			}
			if r.skip {
				r.skipped += int64(len(chunk))
			} else {
				r.pend = append(r.pend, chunk...)
			}
			r.i = r.n
		}
		n, err := r.read(r.buf, r.rd)
		r.base, r.i, r.n = r.rd, 0, n
		r.rd += int64(n)
		if n > 0 {
			continue
		}
		if err == nil || errors.Is(err, io.EOF) {
			return nil, filePoint{}, lineEnd
		}
		r.err = err
		return nil, filePoint{}, lineErr
	}
}

// skipping reports whether the reader is inside a too-long line, and how
// many of its bytes it has passed.
func (r *lineReader) skipping() (bool, int64) { return r.skip, r.skipped }
