package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// readResult is what reading a stream gives: counts and events in order.
type readResult struct {
	lines, tooLong, undated uint64
	outcomes                [parsers.NumOutcomes]uint64
	events                  []string
}

func fmtEvent(ev *parsers.Event) string {
	return fmt.Sprintf("%s %s>%s %q %q %d>%d len=%d proto=%d flags=%d ttl=%d icmp=%d/%d nol4=%v",
		ev.Time.UTC().Format(time.RFC3339Nano), ev.Src, ev.Dst, ev.Prefix, ev.InIface, ev.SrcPort, ev.DstPort,
		ev.Length, ev.Proto, ev.Flags, ev.TTL, ev.ICMPType, ev.ICMPCode, ev.NoL4Header)
}

// readSequential reads in as replay did before it read in parallel: one
// parser, one line after the other, lines over 1 MiB skipped.
func readSequential(in io.Reader, opts parsers.LineOptions) readResult {
	var r readResult
	br := bufio.NewReaderSize(in, 1<<20)
	p := parsers.NewLineParser(opts)
	var ev parsers.Event
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			r.lines++
			r.tooLong++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		if len(line) > 0 {
			r.lines++
			o := p.Parse(line, &ev)
			r.outcomes[o]++
			if o == parsers.Parsed {
				r.events = append(r.events, fmtEvent(&ev))
			}
		}
		if err != nil {
			break
		}
	}
	r.undated = p.UndatedRecords()
	return r
}

// readPipeline reads in with the pipeline, whose workers start from guess
// until the first chunk is merged.
func readPipeline(in io.Reader, opts parsers.LineOptions, workers int, guess parsers.LineState) readResult {
	pl := newPipeline(opts, &progress{}, workers, nil)
	pl.state.Store(&guess)
	go pl.read(context.Background(), in, false)
	return collect(pl)
}

// readMapped reads data as a mapped file, with the pipeline.
func readMappedFile(t *testing.T, data []byte, opts parsers.LineOptions, workers int, guess parsers.LineState) readResult {
	t.Helper()
	m := mapTemp(t, data)
	defer m.close()
	pl := newPipeline(opts, &progress{}, workers, m)
	pl.state.Store(&guess)
	go pl.readMapped(context.Background(), &countingReader{})
	r := collect(pl)
	if err := pl.err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// mapTemp writes data to a file and maps it; it skips the test where
// files are not mapped.
func mapTemp(t *testing.T, data []byte) *mapping {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	m, err := mapFile(f, int64(len(data)))
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return m
}

func collect(pl *pipeline) readResult {
	var r readResult
	for c := range pl.merged() {
		r.lines += c.lines
		r.tooLong += c.tooLong
		r.undated += c.span.Undated()
		for i, n := range c.outcomes {
			r.outcomes[i] += n
		}
		for i := range c.events {
			r.events = append(r.events, fmtEvent(&c.events[i]))
		}
	}
	return r
}

func compareReads(t *testing.T, name string, got, want readResult) {
	t.Helper()
	if got.lines != want.lines || got.tooLong != want.tooLong || got.undated != want.undated || got.outcomes != want.outcomes {
		t.Errorf("%s: lines %d, too long %d, undated %d, outcomes %v; one parser: %d, %d, %d, %v",
			name, got.lines, got.tooLong, got.undated, got.outcomes, want.lines, want.tooLong, want.undated, want.outcomes)
	}
	if len(got.events) != len(want.events) {
		t.Errorf("%s: %d events, one parser %d", name, len(got.events), len(want.events))
	}
	for i := range min(len(got.events), len(want.events)) {
		if got.events[i] != want.events[i] {
			t.Errorf("%s: event %d is %s, one parser's %s", name, i, got.events[i], want.events[i])
			break
		}
	}
}

// yearsLog writes a log of several chunks whose classic timestamps run
// over two turns of the year, with records without a timestamp (some
// before the first dated line), another program's lines, a late Dec 31
// line, formats that carry their year, and lines too long to read placed
// around chunk boundaries.
func yearsLog(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	var b bytes.Buffer
	rec := func(i int) string {
		return fmt.Sprintf("SENTRY IN=eth0 OUT= SRC=203.0.%d.%d DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=%d PROTO=TCP SPT=4000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n", i%200, 1+i%250, i, 1+i%1000)
	}
	b.WriteString("gw kernel: " + rec(0))
	t := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; b.Len() < 9*chunkSize; i++ {
		t = t.Add(time.Duration(r.IntN(600)) * time.Second)
		switch k := r.IntN(200); {
		case k == 0:
			b.WriteString("gw kernel: " + rec(i))
		case k == 1:
			b.WriteString(t.Format("2006-01-02T15:04:05Z") + " gw kernel: " + rec(i))
		case k == 2:
			b.WriteString(t.Format("Jan _2 15:04:05") + " gw sshd[1]: Accepted publickey for admin\n")
		case k == 3 && t.Month() == time.January && t.Day() == 1:
			b.WriteString("Dec 31 23:59:58 gw kernel: " + rec(i))
		case k == 4:
			// A line too long to read, ending at a random place.
			b.WriteString(strings.Repeat("x", chunkSize+r.IntN(chunkSize/2)) + "\n")
		case k == 5:
			// The longest line read: chunkSize bytes with its end.
			b.WriteString(strings.Repeat("y", chunkSize-1) + "\n")
		case k == 6:
			b.WriteString("\n")
		default:
			b.WriteString(t.Format("Jan _2 15:04:05") + " gw kernel: " + rec(i))
		}
		if t.Year() == 2026 && t.Month() == time.March {
			t = t.AddDate(0, 8, 0) // on to the next turn of the year
		}
	}
	b.WriteString("gw kernel: " + rec(-1)[:40]) // no line end
	return b.Bytes()
}

// TestPipelineReadsAsOneParser reads logs in parallel, from right and
// wrong guesses of the starting state, and compares every count and event
// with one parser reading them in order.
func TestPipelineReadsAsOneParser(t *testing.T) {
	opts := parsers.LineOptions{Reference: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC, Undated: time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)}
	// A wrong guess: the state of a parser that has read a line of June
	// 2000.
	p := parsers.NewLineParser(parsers.LineOptions{Reference: time.Date(2000, 12, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC})
	p.Parse([]byte("Jun  1 00:00:00 gw kernel: hello"), new(parsers.Event))
	wrong := p.State()
	for seed := uint64(1); seed <= 3; seed++ {
		log := yearsLog(seed)
		want := readSequential(bytes.NewReader(log), opts)
		if want.tooLong == 0 || want.undated == 0 {
			t.Fatalf("seed %d: the log has %d lines too long, %d undated records", seed, want.tooLong, want.undated)
		}
		for _, workers := range []int{1, 2, 3, 8} {
			for g, guess := range []parsers.LineState{{}, wrong} {
				name := fmt.Sprintf("seed %d, %d workers, guess %d", seed, workers, g)
				compareReads(t, name, readPipeline(bytes.NewReader(log), opts, workers, guess), want)
				compareReads(t, name+", mapped", readMappedFile(t, log, opts, workers, guess), want)
			}
		}
	}
}

// A chunk read from a wrong guess is read again; the pipeline counts on
// that for its results, so this checks that it happens.
func TestPipelineRereadsWrongGuess(t *testing.T) {
	opts := parsers.LineOptions{Reference: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC}
	p := parsers.NewLineParser(opts)
	p.Parse([]byte("Jun  1 00:00:00 gw kernel: hello"), new(parsers.Event))
	wrong := p.State() // June 2026, not the January 2027 of the first line
	log := "Jan  5 10:00:00 gw kernel: SENTRY IN=eth0 OUT= SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=1 PROTO=TCP SPT=4000 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0\n"
	got := readPipeline(strings.NewReader(log), opts, 1, wrong)
	if len(got.events) != 1 || !strings.HasPrefix(got.events[0], "2027-01-05T10:00:00Z") {
		t.Errorf("events %q, want one at 2027-01-05T10:00:00Z", got.events)
	}
}

// Lines around chunkSize: the longest line read is chunkSize bytes with
// its end, wherever it starts; a longer one is skipped.
func TestPipelineLongLines(t *testing.T) {
	opts := parsers.LineOptions{Location: time.UTC, Undated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := "gw kernel: SENTRY IN=eth0 OUT= SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=1 PROTO=TCP SPT=4000 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0\n"
	for _, lead := range []int{0, 1, len(rec), chunkSize - 1, chunkSize, chunkSize + 1} {
		for _, long := range []int{chunkSize - 2, chunkSize - 1, chunkSize, chunkSize + 1, 2*chunkSize + 5} {
			for _, end := range []string{"\n", ""} {
				var b bytes.Buffer
				for b.Len() < lead {
					b.WriteString(rec)
				}
				b.Truncate(lead)
				if lead > 0 {
					b.WriteString("\n")
				}
				b.WriteString(strings.Repeat("z", long) + end)
				if end != "" {
					b.WriteString(rec + rec)
				}
				name := fmt.Sprintf("lead %d, long %d, end %q", lead, long, end)
				want := readSequential(bytes.NewReader(b.Bytes()), opts)
				compareReads(t, name, readPipeline(bytes.NewReader(b.Bytes()), opts, 2, parsers.LineState{}), want)
				compareReads(t, name+", mapped", readMappedFile(t, b.Bytes(), opts, 2, parsers.LineState{}), want)
			}
		}
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		err = e.err
	}
	return n, err
}

// A read error ends the file: what was read before it is replayed, the
// last line too, and the error is returned.
func TestPipelineReadError(t *testing.T) {
	opts := parsers.LineOptions{Location: time.UTC, Undated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := "gw kernel: SENTRY IN=eth0 OUT= SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=1 PROTO=TCP SPT=4000 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0"
	boom := errors.New("boom")
	pl := newPipeline(opts, &progress{}, 2, nil)
	go pl.read(context.Background(), &errReader{strings.NewReader(rec + "\n" + rec), boom}, false)
	events := 0
	for c := range pl.merged() {
		events += len(c.events)
	}
	if events != 2 || !errors.Is(pl.readErr, boom) {
		t.Errorf("%d events, error %v; want 2 and %v", events, pl.readErr, boom)
	}
}

// A mapped file that shrinks while it is read faults on the pages past its
// new end: the replay stops with an error instead of crashing.
func TestPipelineMappedFileShrinks(t *testing.T) {
	opts := parsers.LineOptions{Location: time.UTC, Undated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	log := yearsLog(4)
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mapFile(f, int64(len(log)))
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer m.close()
	if err := os.Truncate(path, 3*chunkSize+12345); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		pl := newPipeline(opts, &progress{}, workers, m)
		go pl.readMapped(context.Background(), &countingReader{})
		r := collect(pl)
		if err := pl.err(); !errors.Is(err, errShrank) {
			t.Errorf("%d workers: error %v, want %v", workers, err, errShrank)
		}
		if r.lines == 0 {
			t.Errorf("%d workers: nothing replayed before the end that went away", workers)
		}
	}
}

// Standard input is read eagerly: a line that came through a pipe is
// replayed before the next one is written.
func TestPipelineEagerPipe(t *testing.T) {
	opts := parsers.LineOptions{Location: time.UTC}
	line := "2026-11-30T10:00:00Z host kernel: SENTRY IN=eth0 OUT= SRC=203.0.113.1 DST=192.0.2.1 LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=23 WINDOW=1 RES=0x00 SYN URGP=0\n"
	pr, pw := io.Pipe()
	pl := newPipeline(opts, &progress{}, 2, nil)
	go pl.read(context.Background(), pr, true)
	replayed := make(chan struct{}, 3)
	waited := make(chan bool, 1)
	go func() {
		for range 3 {
			pw.Write([]byte(line))
			// The next line only once this one was replayed; a reader
			// that waits for more ends the test with an error instead.
			select {
			case <-replayed:
			case <-time.After(30 * time.Second):
				waited <- true
				pw.CloseWithError(errors.New("not replayed"))
				return
			}
		}
		pw.Close()
	}()
	events := 0
	for c := range pl.merged() {
		for range c.events {
			events++
			replayed <- struct{}{}
		}
	}
	if len(waited) > 0 || events != 3 {
		t.Errorf("%d events, error %v: a line was not replayed before the next came", events, pl.err())
	}
}
