//go:build linux

package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

const (
	// kmsgBufSize holds one record with its continuation lines: the kernel
	// formats a record into at most 8 KiB (CONSOLE_EXT_LOG_MAX) and fails a
	// read into a smaller buffer with EINVAL.
	kmsgBufSize = 16 << 10
	// kmsgLostLogInterval rate-limits the warning about overwritten
	// records: an attacker controls how fast the kernel logs.
	kmsgLostLogInterval = 10 * time.Second
	// kmsgDriftTolerance is how far the boot time estimated now may move
	// from the one in use before events are shifted to it; below it is
	// noise of reading two clocks one after the other.
	kmsgDriftTolerance = time.Millisecond
)

// Run reads records from the newest one on, sending one Event per firewall
// record to out until ctx ends. It never closes out and returns nil when ctx
// ends; a blocked read is interrupted at once. Records the kernel overwrote
// before they were read are counted (Stats.Lost) and reported in one warning
// per interval, and reading goes on.
//
// Event times are the records' times since boot plus the boot time, taken
// as the wall clock minus CLOCK_MONOTONIC (the printk clock runs with it)
// and re-estimated for each event, so that a stepped wall clock moves the
// events with it.
//
// Run returns an error if the device cannot be opened (one matching
// os.ErrPermission without CAP_SYSLOG or read access to the device when
// kernel.dmesg_restrict is set), a read fails for another reason, or the
// device ends (ErrKmsgEnded: it is not /dev/kmsg, say /dev/null mounted
// over it). Given a regular file as Path, Run reads it from the start and
// returns nil at its end.
func (s *KmsgSource) Run(ctx context.Context, out chan<- Item) error {
	path := s.cfg.Path
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("kmsg: open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("kmsg: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR {
		// SEEK_END on /dev/kmsg: the next read returns the first record
		// logged after this point, not the ring buffer's history.
		if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
			unix.Close(fd)
			return fmt.Errorf("kmsg: seek to the end of %s: %w", path, err)
		}
	}
	// A non-blocking descriptor joins the runtime poller (the device
	// supports poll), so a read deadline interrupts a read in progress.
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	// The descriptor's position is set: every record logged from here on
	// is read, or counted as lost.
	s.readyOnce.Do(func() { close(s.ready) })
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	err = s.loop(ctx, f, out)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kmsg: read %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR {
		// The kernel log device never ends: a device that does is another
		// one (/dev/null bind-mounted over /dev/kmsg), which would make the
		// input stop reading without a word.
		return fmt.Errorf("kmsg: %s (char %d:%d) reached its end: it is not the kernel log device (char 1:11): %w",
			path, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)), ErrKmsgEnded)
	}
	return nil
}

// kmsgBoot returns the wall time of boot as the printk clock sees it.
func kmsgBoot() time.Time {
	now := time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return now
	}
	return now.Add(-time.Duration(ts.Nano())).Round(0)
}

// loop reads records from r until it fails, ends (io.EOF) or ctx ends. One
// read of the device returns one whole record; from a file or a pipe a read
// returns any number of lines, and a line cut by the end of a read is
// completed by the next one.
func (s *KmsgSource) loop(ctx context.Context, r io.Reader, out chan<- Item) error {
	k := &kmsgRun{
		src:     s,
		ctx:     ctx,
		out:     out,
		boot:    kmsgBoot(),
		lastSeq: -1,
	}
	k.parser = parsers.NewLineParser(parsers.LineOptions{Boot: k.boot})
	defer k.logLost(true)

	buf := make([]byte, kmsgBufSize)
	carry := 0
	for {
		n, err := r.Read(buf[carry:])
		if n > 0 {
			data := buf[:carry+n]
			for {
				nl := bytes.IndexByte(data, '\n')
				if nl < 0 {
					break
				}
				if !k.line(data[:nl]) {
					return nil
				}
				data = data[nl+1:]
			}
			if len(data) == len(buf) {
				// A line longer than any record: take it as it is.
				if !k.line(data) {
					return nil
				}
				data = nil
			}
			carry = copy(buf, data)
		}
		switch {
		case err == nil:
		case errors.Is(err, syscall.EPIPE):
			// The kernel overwrote records this reader had not read; the
			// next read returns the oldest one left.
			k.pipe = true
			k.src.lost.Add(1)
			k.pendingLost++
			k.logLost(false)
		case err == io.EOF:
			if carry > 0 {
				k.line(buf[:carry])
			}
			return nil
		default:
			return err
		}
	}
}

// kmsgRun is the state of one loop.
type kmsgRun struct {
	src    *KmsgSource
	ctx    context.Context
	out    chan<- Item
	parser *parsers.LineParser
	ev     parsers.Event

	boot  time.Time     // the parser's boot time
	shift time.Duration // current boot estimate minus boot
	// The boot time estimated (from the printk clock: a system call) at
	// base, a reading of the wall and monotonic clocks, at the first
	// event; later estimates add the wall clock's steps since base.
	base, baseBoot time.Time

	lastSeq     int64 // -1: none yet
	pipe        bool  // the last read failed with EPIPE
	pendingLost uint64
	lastLostLog time.Time
}

// line handles one line of the stream; it reports false if ctx ended while
// an event was being sent.
func (k *kmsgRun) line(b []byte) bool {
	if len(b) == 0 || b[0] == ' ' {
		// Continuation lines (" SUBSYSTEM=net", " DEVICE=+net:eth0")
		// belong to the record before.
		return true
	}
	s := k.src
	s.records.Add(1)
	k.sequence(b)
	if s.acceptUser {
		b = kmsgAsKernel(b)
	}
	o := k.parser.Parse(b, &k.ev)
	s.outcomes.add(o)
	if o != parsers.Parsed {
		return true
	}
	k.ev.Time = k.ev.Time.Add(k.drift())
	select {
	case k.out <- Item{Event: k.ev}:
		s.events.Add(1)
		return true
	case <-k.ctx.Done():
		return false
	}
}

// sequence accounts for records skipped between the last one and b, whose
// header is "prio,seq,usec,flags;".
func (k *kmsgRun) sequence(b []byte) {
	_, i, ok := parsers.KmsgField(b, 0)
	if !ok {
		return
	}
	seq, _, ok := parsers.KmsgField(b, i)
	if !ok || seq > 1<<62 {
		return
	}
	gap := uint64(0)
	if k.lastSeq >= 0 && int64(seq) > k.lastSeq+1 {
		gap = uint64(int64(seq) - k.lastSeq - 1)
	}
	if k.pipe && gap > 1 {
		// The EPIPE counted one already.
		k.src.lost.Add(gap - 1)
		k.pendingLost += gap - 1
	} else if !k.pipe && gap > 0 {
		k.src.lost.Add(gap)
		k.pendingLost += gap
	}
	k.pipe = false
	k.lastSeq = int64(seq)
}

// drift returns how far the boot time estimated now is from the parser's.
// The wall clock can be stepped (NTP, an administrator) while the printk
// clock runs on, so the estimate is renewed for every event. The printk
// clock is CLOCK_MONOTONIC, which Go's clock reads too (time.Now carries
// both), so after the first estimate a step is the wall clock's reading
// less the base's carried forward on the monotonic one: one clock read,
// where reading CLOCK_MONOTONIC itself is a system call.
func (k *kmsgRun) drift() time.Duration {
	now := time.Now()
	if k.base.IsZero() {
		k.base, k.baseBoot = now, kmsgBoot()
	}
	step := now.Round(0).Sub(k.base.Add(now.Sub(k.base)).Round(0))
	d := k.baseBoot.Add(step).Sub(k.boot)
	if diff := d - k.shift; diff > kmsgDriftTolerance || diff < -kmsgDriftTolerance {
		if diff > time.Second || diff < -time.Second {
			k.src.log.Info("wall clock stepped; kernel record times follow it", "step", diff)
		}
		k.shift = d
	}
	return k.shift
}

// kmsgAsKernel rewrites the header of a record written from user space
// ("12,..." for <4> from user space) to kernel facility in place.
func kmsgAsKernel(b []byte) []byte {
	pri, i, ok := parsers.KmsgField(b, 0)
	if !ok || i < 2 {
		return b
	}
	b[i-2] = byte('0' + pri&7)
	return b[i-2:]
}

// logLost logs the lost records not yet reported, at most once per
// kmsgLostLogInterval unless final.
func (k *kmsgRun) logLost(final bool) {
	now := time.Now()
	if k.pendingLost == 0 || (!final && now.Sub(k.lastLostLog) < kmsgLostLogInterval) {
		return
	}
	k.src.log.Warn("kernel log records were overwritten before they were read",
		"lost", k.pendingLost, "total", k.src.lost.Load())
	k.pendingLost = 0
	k.lastLostLog = now
}
