//go:build linux

package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// kmsgTestMsg is the message of a firewall record with destination port dpt.
func kmsgTestMsg(prefix string, dpt int) string {
	return fmt.Sprintf("%s IN=eth0 OUT= MAC= SRC=203.0.113.9 DST=192.0.2.1 LEN=44 TOS=0x00 PREC=0x00 "+
		"TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 ", prefix, dpt)
}

// kmsgTestRecords is a recorded stream: one element per read of the device,
// each a record with its continuation lines; nil stands for a read that
// failed with EPIPE.
var kmsgTestRecords = [][]byte{
	[]byte("6,100,5000000,-;e1000e 0000:00:19.0 eth0: NIC Link is Up\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:19.0\n"),
	[]byte("4,101,15154445737,-;" + kmsgTestMsg("SENTRY", 22) + "\n"),
	// A continuation line that looks like a firewall record is not one.
	[]byte("4,102,15154445800,-;" + kmsgTestMsg("SENTRY", 23) + "\n " + kmsgTestMsg("SENTRY", 9999) + "\n"),
	// Written from user space (<4> from a process is facility user): a
	// spoof, Skipped.
	[]byte("12,103,15154446000,-;" + kmsgTestMsg("SENTRY", 8888) + "\n"),
	nil, // records 104-106 were overwritten
	[]byte("4,107,15154447000,-,caller=C1;" + kmsgTestMsg("SENTRY", 25) + "\n"),
	[]byte("4,108,15154448000,-;" + kmsgTestMsg("SENTRY", 26)[:60] + "\n"), // cut short
	nil, // one more overwritten, the gap is 1
	[]byte("4,110,15154449000,-;" + kmsgTestMsg("SENTRY", 27) + "\n"),
}

// kmsgFakeDevice returns its records one per Read, as the device does.
type kmsgFakeDevice struct{ recs [][]byte }

func (d *kmsgFakeDevice) Read(b []byte) (int, error) {
	if len(d.recs) == 0 {
		return 0, io.EOF
	}
	r := d.recs[0]
	d.recs = d.recs[1:]
	if r == nil {
		return 0, &os.PathError{Op: "read", Path: "/dev/kmsg", Err: syscall.EPIPE}
	}
	return copy(b, r), nil
}

// kmsgTestCollect runs the record loop over r and returns the events.
func kmsgTestCollect(t *testing.T, s *KmsgSource, r io.Reader) []parsers.Event {
	t.Helper()
	out := make(chan Item, 100)
	if err := s.loop(context.Background(), r, out); err != nil {
		t.Fatalf("loop: %v", err)
	}
	close(out)
	var evs []parsers.Event
	for it := range out {
		evs = append(evs, it.Event)
	}
	return evs
}

// kmsgTestCheck checks the events and counters of the recorded stream.
func kmsgTestCheck(t *testing.T, s *KmsgSource, evs []parsers.Event, lost uint64) {
	t.Helper()
	var ports []uint16
	for _, ev := range evs {
		ports = append(ports, ev.DstPort)
	}
	if want := []uint16{22, 23, 25, 27}; fmt.Sprint(ports) != fmt.Sprint(want) {
		t.Errorf("ports %v, want %v", ports, want)
	}
	// Boot is estimated at the start of the loop and events get the
	// record's time since boot added to it.
	boot := kmsgBoot()
	if len(evs) > 0 {
		want := boot.Add(15154445737 * time.Microsecond)
		if d := evs[0].Time.Sub(want); d < -50*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("event time %v, want about %v", evs[0].Time, want)
		}
		if evs[0].Prefix != "SENTRY" || evs[0].Src.String() != "203.0.113.9" {
			t.Errorf("event %+v", evs[0])
		}
	}
	// Seven records: the continuation lines are not records; 100 is
	// Skipped (no firewall record), 103 Skipped (user space), 108
	// Truncated.
	want := KmsgStats{Records: 7, Events: 4, Lost: lost}
	want.Outcomes[parsers.Parsed] = 4
	want.Outcomes[parsers.Skipped] = 2
	want.Outcomes[parsers.Truncated] = 1
	if st := s.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

// TestKmsgLoopRecords feeds a recorded stream one record per read, with
// continuation lines, a record written from user space, overwritten
// records (EPIPE) and a record cut short.
func TestKmsgLoopRecords(t *testing.T) {
	s := NewKmsgSource(KmsgConfig{})
	evs := kmsgTestCollect(t, s, &kmsgFakeDevice{recs: kmsgTestRecords})
	// 104, 105, 106 and 109: four, the EPIPE reads counted in them.
	kmsgTestCheck(t, s, evs, 4)
}

// TestKmsgLoopStream feeds the same records (without the EPIPEs) as a
// byte stream cut at every few bytes, as a pipe or a file delivers them.
func TestKmsgLoopStream(t *testing.T) {
	var all []byte
	for _, r := range kmsgTestRecords {
		all = append(all, r...)
	}
	for _, chunk := range []int{1, 7, 100, len(all)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				for b := all; len(b) > 0; {
					n := min(chunk, len(b))
					pw.Write(b[:n])
					b = b[n:]
				}
				pw.Close()
			}()
			s := NewKmsgSource(KmsgConfig{})
			evs := kmsgTestCollect(t, s, pr)
			kmsgTestCheck(t, s, evs, 4) // from the sequence gaps alone
		})
	}
}

// TestKmsgRunFile runs the source over a regular file of records: read
// from the start, nil at the end.
func TestKmsgRunFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	var all []byte
	for _, r := range kmsgTestRecords {
		all = append(all, r...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewKmsgSource(KmsgConfig{Path: path})
	out := make(chan Item, 100)
	select {
	case <-s.Ready():
		t.Fatal("Ready closed before Run")
	default:
	}
	if err := s.Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	default:
		t.Error("Ready not closed after Run opened the file")
	}
	if st := s.Stats(); st.Events != 4 || st.Records != 7 {
		t.Errorf("Stats = %+v", st)
	}
}

// kmsgTestRecord returns a run that reads records without a device, the
// channel it hands events to, and a record that gives one.
func kmsgTestRecord() (*kmsgRun, chan Item, []byte) {
	out := make(chan Item, 1)
	k := &kmsgRun{src: NewKmsgSource(KmsgConfig{}), ctx: context.Background(), out: out, boot: kmsgBoot(), lastSeq: -1}
	k.parser = parsers.NewLineParser(parsers.LineOptions{Boot: k.boot})
	return k, out, []byte("4,101,15154445737,-;" + kmsgTestMsg("SENTRY", 22))
}

// TestKmsgAllocs: a record that gives an event allocates nothing.
func TestKmsgAllocs(t *testing.T) {
	k, out, rec := kmsgTestRecord()
	allocs := testing.AllocsPerRun(1000, func() {
		k.line(rec)
		<-out
	})
	if allocs != 0 {
		t.Errorf("%v allocations per record, want 0", allocs)
	}
}

// BenchmarkKmsgRecord: one /dev/kmsg record, from its bytes to the event
// handed on.
func BenchmarkKmsgRecord(b *testing.B) {
	k, out, rec := kmsgTestRecord()
	b.ReportAllocs()
	for b.Loop() {
		k.line(rec)
		<-out
	}
}

// kmsgTestRoot stops a test that needs root (testkit.Unavailable).
func kmsgTestRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.Unavailable(t, "needs root to write records to /dev/kmsg")
	}
}

// TestKmsgDevice reads the real /dev/kmsg. A process cannot log a kernel
// record: what it writes gets the user facility. So one source takes user
// records as kernel ones (acceptUser, tests only) and must emit the marker
// with a wall time within a second of now, and must not emit a record
// written before it started; a normal source beside it must count the same
// records as Skipped and emit none of them.
func TestKmsgDevice(t *testing.T) {
	kmsgTestRoot(t)
	dev, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	prefix := fmt.Sprintf("SENTRY-KMSGTEST-%d", os.Getpid())
	write := func(dpt int) {
		t.Helper()
		if _, err := dev.WriteString("<4>" + kmsgTestMsg(prefix, dpt) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	// With its newline, as nf_log writes it: a record without one stays
	// open for a continuation, and a reader sees it only once the next
	// record is logged, even one that seeked past it.
	write(22) // before the sources start: must not be seen

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type run struct {
		src  *KmsgSource
		out  chan Item
		done chan error
	}
	start := func(acceptUser bool) *run {
		r := &run{src: NewKmsgSource(KmsgConfig{}), out: make(chan Item, 1000), done: make(chan error, 1)}
		r.src.acceptUser = acceptUser
		go func() { r.done <- r.src.Run(ctx, r.out) }()
		return r
	}
	spoofed, normal := start(true), start(false)
	// Readers of the device are woken from an irq_work, which can lag by
	// a few hundred ms on an idle machine.

	synced := false
	ours := func(r *run, timeout time.Duration) (parsers.Event, bool) {
		deadline := time.After(timeout)
		for {
			select {
			case it := <-r.out:
				ev := it.Event
				if ev.Prefix == prefix && !(synced && ev.DstPort == 1) {
					return ev, true
				}
			case err := <-r.done:
				t.Fatalf("Run returned early: %v", err)
			case <-deadline:
				return parsers.Event{}, false
			}
		}
	}
	// Few writes: the kernel rate-limits writes to /dev/kmsg per open file
	// (printk.devkmsg=ratelimit: 10 per 5 s) and drops the rest silently.
	// Once both sources are ready, the sync record must reach them: Ready
	// promises that no record logged from then on is missed.
	for _, r := range []*run{spoofed, normal} {
		select {
		case <-r.src.Ready():
		case err := <-r.done:
			t.Fatalf("Run returned before it was ready: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("the source was not ready within 5 s")
		}
	}
	write(1)
	ev, ok := ours(spoofed, 5*time.Second)
	if !ok {
		t.Fatal("the source read no record within 5 s")
	}
	if ev.DstPort != 1 {
		t.Fatalf("first event has port %d, want the sync record's 1 (a record from before the start?)", ev.DstPort)
	}
	synced = true

	before := normal.src.Stats()
	write(23)
	now := time.Now()
	ev, ok = ours(spoofed, 5*time.Second)
	if !ok {
		t.Fatal("no event for the marker within 5 s")
	}
	if ev.DstPort != 23 || ev.Src.String() != "203.0.113.9" || ev.Dst.String() != "192.0.2.1" || ev.Proto != parsers.ProtoTCP || ev.Flags != parsers.SYN || ev.InIface != "eth0" {
		t.Errorf("event %+v", ev)
	}
	if d := ev.Time.Sub(now); d < -time.Second || d > time.Second {
		t.Errorf("event time %v is %v from now", ev.Time, d)
	}
	t.Logf("event time - write time: %v; delivered after %v", ev.Time.Sub(now), time.Since(now))
	if ev, ok := ours(spoofed, 300*time.Millisecond); ok {
		t.Errorf("unexpected second event %+v", ev)
	}

	// The normal source read the marker and skipped it.
	deadline := time.Now().Add(5 * time.Second)
	for normal.src.Stats().Records == before.Records && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	after := normal.src.Stats()
	if after.Records == before.Records || after.Outcomes[parsers.Skipped] == before.Outcomes[parsers.Skipped] {
		t.Errorf("normal source did not read and skip the marker: before %+v after %+v", before, after)
	}
	if ev, ok := ours(normal, 100*time.Millisecond); ok {
		t.Errorf("normal source emitted a record written from user space: %+v", ev)
	}

	// Cancellation interrupts the blocked reads (a bounded wait).
	cancel()
	for _, r := range []*run{spoofed, normal} {
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2 s of cancellation")
		}
	}
	if st := spoofed.src.Stats(); st.Lost != 0 {
		t.Logf("lost %d records (a busy kernel log?)", st.Lost)
	}
}

// TestKmsgOpenError: a missing device is an error, not a hang.
func TestKmsgOpenError(t *testing.T) {
	s := NewKmsgSource(KmsgConfig{Path: filepath.Join(t.TempDir(), "none")})
	err := s.Run(context.Background(), make(chan Item))
	if err == nil || !strings.Contains(err.Error(), "kmsg: open") {
		t.Errorf("Run = %v, want an open error", err)
	}
}

// TestKmsgDeviceThatEndsIsAnError: /dev/null bind-mounted over /dev/kmsg
// (or given as the path) ends at once, which the kernel log device never
// does: Run says so with an error instead of returning as if cancelled, so
// the daemon logs, counts and retries it.
func TestKmsgDeviceThatEndsIsAnError(t *testing.T) {
	s := NewKmsgSource(KmsgConfig{Path: os.DevNull})
	err := s.Run(context.Background(), make(chan Item))
	if !errors.Is(err, ErrKmsgEnded) || !strings.Contains(err.Error(), "not the kernel log device") {
		t.Errorf("Run on /dev/null = %v, want ErrKmsgEnded", err)
	}
}
