//go:build linux

package sources

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// nflogIfRefreshInterval rate-limits interface table reloads on unknown
// ifindexes, so packets on a vanished interface do not cost a dump each.
const nflogIfRefreshInterval = time.Second

// Run binds the group and sends one Event per logged packet to out until ctx
// ends. It never closes out. Sending blocks while the consumer is busy: the
// kernel then drops log messages, which Run counts as overruns (Stats) and
// reports in one warning per interval, and it keeps reading.
//
// Run returns nil when ctx ends. At start it returns an error if the group
// cannot be bound: one matching ErrNFLOGGroupBusy when another socket
// (another sentry-nflog, ulogd, ...) reads the group in the same network
// namespace, one matching os.ErrPermission and naming CAP_NET_ADMIN when the
// process lacks it. It returns an error later only if receiving fails for
// another reason than an overrun. Run must not be called concurrently with
// itself on the same source.
func (s *NFLOGSource) Run(ctx context.Context, out chan<- Item) error {
	cfg := s.cfg
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()

	conn, rcvErr, err := openNFLOGConn(cfg.NetNS, cfg.Group, cfg.CopyRange, cfg.QueueThreshold, nflogTimeoutUnits(cfg.FlushTimeout), cfg.ReadBuffer)
	if err != nil {
		if strings.Contains(err.Error(), "netlink socket:") {
			return fmt.Errorf("nflog group %d: open netlink socket: %w", cfg.Group, err)
		}
		return nflogBindError(cfg.Group, err)
	}
	defer conn.close()
	if rcvErr != nil {
		s.log.Warn("cannot set socket receive buffer", "bytes", cfg.ReadBuffer, "err", rcvErr)
	} else if got, err := unix.GetsockoptInt(nflogFd(conn), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && got < cfg.ReadBuffer {
		// The kernel reports twice what was granted; less than asked means
		// it was capped by net.core.rmem_max (no CAP_NET_ADMIN to force it).
		s.log.Warn("socket receive buffer is smaller than configured", "bytes", got, "want", cfg.ReadBuffer)
	}

	r := &nflogRun{
		src:      s,
		ctx:      rctx,
		out:      out,
		prefixes: newNFLOGIntern(nflogMaxPrefixes),
		ifnames:  newNFLOGIfNames(cfg.NetNS, s.log),
		clock:    newNFLOGClock(),
	}
	if a := newNFLOGAdapt(cfg); a != nil {
		a.send = conn.sendQThresh
		r.adapt = a
	}
	defer r.ifnames.close()
	s.readyOnce.Do(func() { close(s.ready) })

	// Cancelling ctx interrupts the wait for packets.
	stopWait := context.AfterFunc(rctx, func() { conn.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stopWait()
	var runErr error
	for rctx.Err() == nil {
		err := conn.receive(r.hook)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOBUFS):
			r.overrun()
		case errClosed(err) || rctx.Err() != nil:
		default:
			runErr = err
		}
		if runErr != nil {
			break
		}
	}
	cancel()
	// After cancel, so that a send in progress gives up.
	r.stop()
	r.logOverruns(true)
	conn.unbind()
	if runErr != nil {
		return fmt.Errorf("nflog group %d: receive: %w", cfg.Group, runErr)
	}
	return nil
}

// nflogFd returns the socket's descriptor, for a getsockopt.
func nflogFd(c *nflogConn) int {
	fd := -1
	c.rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// nflogBindError explains a failure to bind the group. The kernel answers
// EPERM both without CAP_NET_ADMIN and when the group is bound by another
// socket; the capability check and the stage that failed (named in the
// error's text by openNFLOGConn) tell the two apart (every nfnetlink request
// needs CAP_NET_ADMIN, so without it the first request, the unbind of
// stale handlers, fails; a busy group fails at the group bind).
func nflogBindError(group uint16, err error) error {
	msg := err.Error()
	eperm := strings.Contains(msg, syscall.EPERM.Error())
	if !nflogHasCapNetAdmin() || (eperm && !strings.Contains(msg, "requested group")) {
		return fmt.Errorf("nflog group %d: %w: reading NFLOG needs CAP_NET_ADMIN in the network namespace's user namespace (run as root or grant the capability): %v",
			group, os.ErrPermission, err)
	}
	if eperm {
		return &nflogBusyError{group: group, err: err}
	}
	return fmt.Errorf("nflog group %d: bind: %w", group, err)
}

// nflogBusyError is the error for a group another socket has bound; it
// matches ErrNFLOGGroupBusy.
type nflogBusyError struct {
	group uint16
	err   error
}

func (e *nflogBusyError) Error() string {
	return fmt.Sprintf("nflog group %d: another process (another sentry-nflog, ulogd, ...) already reads NFLOG group %d in this network namespace: %v",
		e.group, e.group, e.err)
}

// Is matches ErrNFLOGGroupBusy. The kernel's EPERM is not unwrapped: a
// busy group must not read as a missing capability (os.ErrPermission).
func (e *nflogBusyError) Is(target error) bool { return target == ErrNFLOGGroupBusy }

// nflogHasCapNetAdmin reports whether the calling thread has CAP_NET_ADMIN
// in its effective set. If the set cannot be read it says yes, leaving the
// error as the kernel gave it.
func nflogHasCapNetAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true
	}
	return data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0
}

// nflogRun is the state of one Run, shared by the receive loop (hook,
// overrun) and Run's shutdown (stop, logOverruns).
//
// mu guards the decoding and accounting state and is held only around work
// that does not wait on anyone: never across the send to out, so that
// counting an overrun, switching the batching or shutting down never waits
// for the consumer.
type nflogRun struct {
	src *NFLOGSource
	ctx context.Context // Run's: ends before stop, giving up pending sends
	out chan<- Item

	mu       sync.Mutex
	stopped  bool // set by stop: no hook call starts a send any more
	prefixes *nflogIntern
	ifnames  *nflogIfNames

	adapt *nflogAdapt // nil: batching fixed by the configuration
	clock *nflogClock

	pendingOverruns uint64
	lastOverrunLog  time.Time

	// sending counts hook calls between their check of stopped (under mu)
	// and the end of their send; stop waits for it to drain.
	sending sync.WaitGroup
}

// hook is called on the receive loop's goroutine for each packet; it
// returns false to stop reading. The packet's data lives in the read
// buffer, which is reused: nothing of it is kept past the call
// (DecodePacket copies addresses, prefixes are interned).
func (r *nflogRun) hook(a *nflogPacket) bool {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return false
	}
	ev, o := r.event(a)
	if r.adapt != nil {
		// Kernel time measures the arrival rate even when the reader lags.
		t := time.Now()
		if a.hasTS {
			t = a.ts
		}
		r.adapt.packet(r.src.log, t)
	}
	if o != parsers.Parsed {
		r.mu.Unlock()
		return true
	}
	// Registered while stopped is false, under mu: stop, which sets it
	// under mu, then waits for this send.
	r.sending.Add(1)
	r.mu.Unlock()
	select {
	case r.out <- Item{Event: ev}:
		r.src.events.Add(1)
		r.sending.Done()
		return true
	case <-r.ctx.Done():
		r.sending.Done()
		return false
	}
}

// event turns one NFLOG message into an Event, counting it. It allocates
// nothing when the prefix and the interface are already known.
func (r *nflogRun) event(a *nflogPacket) (parsers.Event, parsers.Outcome) {
	s := r.src
	s.received.Add(1)
	var ev parsers.Event
	o := parsers.Truncated // no payload: the rule or the copy mode sent no packet
	if a.payload != nil {
		o = parsers.DecodePacket(a.payload, &ev)
	}
	if o != parsers.Parsed {
		s.outcomes.add(o)
		return ev, o
	}
	ev.Time = r.clock.stamp(a.ts, a.hasTS, s)
	if a.prefix != nil {
		ev.Prefix = r.prefixes.getBytes(a.prefix)
	}
	if a.hasDev {
		ev.InIface = r.ifnames.name(a.indev)
	}
	s.outcomes.add(parsers.Parsed)
	return ev, parsers.Parsed
}

// stop ends the sending: a later hook call returns at once, and stop waits
// for a send in progress, which gives up once ctx is done (Run cancels it
// first). Once stop returns nothing more is sent to out.
func (r *nflogRun) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.sending.Wait()
}

// overrun counts a socket overrun (ENOBUFS: the kernel dropped packets),
// switches to batches and logs it, at most every nflogOverrunLogInterval.
// Reading goes on.
func (r *nflogRun) overrun() {
	if r.ctx.Err() != nil {
		return // shutdown
	}
	now := time.Now()
	r.src.overruns.Add(1)
	r.src.lastOverrun.Store(now.UnixNano())
	r.mu.Lock()
	r.pendingOverruns++
	if r.adapt != nil && !r.stopped {
		r.adapt.flood(r.src.log, now)
	}
	r.mu.Unlock()
	r.logOverruns(false)
}

// logOverruns logs the overruns not yet reported, at most once per
// nflogOverrunLogInterval unless final.
// The warning is written after mu is released: a log handler may block.
func (r *nflogRun) logOverruns(final bool) {
	now := time.Now()
	r.mu.Lock()
	n, since := r.pendingOverruns, r.lastOverrunLog
	if n == 0 || (!final && now.Sub(since) < nflogOverrunLogInterval) {
		r.mu.Unlock()
		return
	}
	r.pendingOverruns = 0
	r.lastOverrunLog = now
	r.mu.Unlock()
	r.src.log.Warn("NFLOG socket overrun: the kernel dropped log messages because the reader fell behind",
		"overruns", n, "since", since, "total", r.src.overruns.Load())
}

// nflogIfNames maps interface indexes to names in the namespace of the
// NFLOG socket, read with an rtnetlink link dump. The table is reloaded on
// an unknown index, at most once per nflogIfRefreshInterval; a renamed
// interface keeps its old name until an unknown index triggers a reload.
// Not safe for concurrent use.
type nflogIfNames struct {
	conn        *netlink.Conn // nil: names are not resolved
	names       map[uint32]string
	lastRefresh time.Time
	log         *slog.Logger
}

func newNFLOGIfNames(netns int, log *slog.Logger) *nflogIfNames {
	c := &nflogIfNames{names: make(map[uint32]string), log: log}
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		log.Warn("cannot open rtnetlink: input interface names will be empty", "err", err)
		return c
	}
	c.conn = conn
	c.refresh(time.Now())
	return c
}

func (c *nflogIfNames) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

// name returns the name of interface idx, "" if unknown. A hit does not
// allocate.
func (c *nflogIfNames) name(idx uint32) string {
	if n, ok := c.names[idx]; ok || idx == 0 {
		return n
	}
	now := time.Now()
	if c.conn == nil || now.Sub(c.lastRefresh) < nflogIfRefreshInterval {
		return ""
	}
	c.refresh(now)
	return c.names[idx]
}

// refresh reloads the table with an RTM_GETLINK dump.
func (c *nflogIfNames) refresh(now time.Time) {
	c.lastRefresh = now
	var ifi [unix.SizeofIfInfomsg]byte // family AF_UNSPEC: all links
	msgs, err := c.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   ifi[:],
	})
	if err != nil {
		c.log.Warn("cannot list interfaces", "err", err)
		return
	}
	names := make(map[uint32]string, len(msgs))
	for _, m := range msgs {
		idx, name, ok := nflogParseLink(m.Data)
		if !ok {
			continue
		}
		if old := c.names[idx]; old == name {
			name = old // keep the string events already share
		}
		names[idx] = name
	}
	c.names = names
}

// nflogParseLink reads the index and IFLA_IFNAME of an RTM_NEWLINK message.
func nflogParseLink(b []byte) (uint32, string, bool) {
	if len(b) < unix.SizeofIfInfomsg {
		return 0, "", false
	}
	idx := binary.NativeEndian.Uint32(b[4:8])
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return 0, "", false
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_IFNAME {
			return idx, ad.String(), true
		}
	}
	return 0, "", false
}

// Adaptive batching. Measured between namespaces (nflog_measure_linux_test.go):
// handing over every packet (queue threshold 1) gets single probes to the
// reader in about 100 us but tops out near 100-135k packets/s, losing the
// rest; batches of 32 with a 10 ms flush lose nothing at 350k/s but delay a
// single probe by 10 ms. So the source starts at the configured threshold 1
// and raises the kernel's threshold while a stream lasts. The switch is at
// a few thousand packets a second, not at the reader's limit: one wakeup
// per packet costs the daemon 10-20 us of CPU in the scheduler alone
// (measured at 5k and 13k/s), where batches bring it to a few us, and at
// such rates a fast scanner is held by first strike in the kernel while
// the daemon takes its 10 ms.
const (
	nflogFloodQThresh   = 32
	nflogFloodTimeout   = 1 // 1/100 s
	nflogFloodPackets   = 256
	nflogFloodWindow    = 100 * time.Millisecond // 256 in 100 ms: >= 2.5k/s
	nflogCalmWindow     = time.Second
	nflogCalmPackets    = 1000 // under 1k/s for a second: per packet again
	nflogCfgAttrTimeout = 4    // NFULA_CFG_TIMEOUT
	nflogCfgAttrQThresh = 5    // NFULA_CFG_QTHRESH
)

// nflogAdapt switches the kernel's queue threshold between 1 and
// nflogFloodQThresh by the packet rate. It sends its configuration requests
// from the receive loop's goroutine, between two reads. The requests carry
// no ACK flag, so no reply enters the stream of packets.
type nflogAdapt struct {
	// send asks the kernel for batches (true) or single packets (false).
	send    func(batched bool) (qthresh uint32, err error)
	batched bool
	start   time.Time
	count   int
}

// newNFLOGAdapt returns the switch for cfg, its sender still to be set,
// or nil when the batching is fixed.
func newNFLOGAdapt(cfg NFLOGConfig) *nflogAdapt {
	if cfg.FixedBatching || cfg.QueueThreshold != 1 {
		return nil
	}
	return &nflogAdapt{start: time.Now()}
}

// packet accounts for one received packet at now.
func (a *nflogAdapt) packet(log *slog.Logger, now time.Time) {
	a.count++
	el := now.Sub(a.start)
	switch {
	case !a.batched && a.count >= nflogFloodPackets:
		if el < nflogFloodWindow {
			a.set(log, true)
		}
	case a.batched && el >= nflogCalmWindow:
		if a.count < nflogCalmPackets {
			a.set(log, false)
		}
	default:
		return
	}
	a.start, a.count = now, 0
}

// flood switches to batches at once: the socket has just overrun.
func (a *nflogAdapt) flood(log *slog.Logger, now time.Time) {
	if !a.batched {
		a.set(log, true)
		a.start, a.count = now, 0
	}
}

func (a *nflogAdapt) set(log *slog.Logger, batched bool) {
	qthresh, err := a.send(batched)
	if err != nil {
		log.Warn("cannot change NFLOG queue threshold; keeping it", "qthresh", qthresh, "err", err)
		return
	}
	a.batched = batched
	log.Debug("NFLOG queue threshold changed", "qthresh", qthresh)
}
