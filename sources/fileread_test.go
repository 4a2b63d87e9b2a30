package sources

import (
	"hash/crc32"
	"io"
	"strings"
	"testing"
)

// TestLineReader cuts lines across chunk boundaries, waits for a line's
// newline, skips a line over MaxLineLen to its end with its bytes counted,
// and gives each line's end the checksum of the bytes before it.
func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", MaxLineLen+10)
	data := "a\nbb\n\nccc\n" + long + "\nd\ne"
	for _, chunk := range []int{1, 3, 7, 64 << 10} {
		r := newLineReader(func(p []byte, off int64) (int, error) {
			if off >= int64(len(data)) {
				return 0, io.EOF
			}
			return copy(p, data[off:]), nil
		}, fileID{1, 2}, 0, make([]byte, chunk))
		var got []string
		var ends []int64
		tooLong := 0
		for {
			line, at, st := r.next()
			if st == lineEnd {
				break
			}
			if st == lineTooLong {
				tooLong++
				if _, n := r.skipping(); n != int64(len(long)+1) {
					t.Errorf("chunk %d: skipped %d bytes, want %d", chunk, n, len(long)+1)
				}
			} else {
				got = append(got, string(line))
				want := line[max(0, len(line)-fileSumMax):]
				if at.sum != crc32.Checksum(want, castagnoli) || at.n != uint32(len(want)) {
					t.Errorf("chunk %d: checksum of %q wrong", chunk, line)
				}
			}
			ends = append(ends, at.off)
		}
		if strings.Join(got, "|") != "a\n|bb\n|\n|ccc\n|d\n" || tooLong != 1 {
			t.Errorf("chunk %d: lines %q, %d too long", chunk, got, tooLong)
		}
		if last := ends[len(ends)-1]; last != int64(strings.LastIndexByte(data, '\n')+1) {
			t.Errorf("chunk %d: last line ends at %d", chunk, last)
		}
		if string(r.pend) != "e" {
			t.Errorf("chunk %d: pending %q, want the last line without its newline", chunk, r.pend)
		}
	}
}
