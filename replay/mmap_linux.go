package replay

import (
	"fmt"
	"os"
	"syscall"
)

// mapping is a file mapped read-only into memory: workers parse its chunks
// in place, without the copy a read makes of every byte. Pages already
// parsed are dropped from the process as it goes (they stay in the page
// cache), so the resident size does not grow with the file.
type mapping struct {
	data     []byte
	released int
}

// releaseStep is how much parsed input is let go of at once: fewer, larger
// calls cost less than one per chunk.
const releaseStep = 4 << 20

// mapFile maps f's size bytes.
func mapFile(f *os.File, size int64) (*mapping, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, fmt.Errorf("cannot map %d bytes", size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	// Read ahead generously: the file is read once, from start to end.
	syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	return &mapping{data: data}, nil
}

// release lets go of the pages before off, whose lines are all parsed.
func (m *mapping) release(off int) {
	page := os.Getpagesize()
	if end := off - off%page; end-m.released >= releaseStep {
		syscall.Madvise(m.data[m.released:end], syscall.MADV_DONTNEED)
		m.released = end
	}
}

func (m *mapping) close() error { return syscall.Munmap(m.data) }
