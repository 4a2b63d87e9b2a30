//go:build linux

package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The NFLOG socket, read without go-nflog: go-nflog reads one message per
// call through a reader that starts a goroutine and allocates for every
// packet, and at a queue threshold of 1 (a packet per message) that
// dominated the daemon's CPU (41-75 us per event at 13k probes/s). This
// reader asks the kernel for every queued message in one recvmmsg, parses
// them in place and allocates nothing per packet; it waits in the runtime's
// poller, so the goroutine that consumes the events runs on the same
// thread as soon as the reader parks.

// Netlink and nfnetlink_log constants (linux/netfilter/nfnetlink_log.h).
const (
	nflogSubsys       = 4 // NFNL_SUBSYS_ULOG
	nflogMsgPacket    = nflogSubsys<<8 | 0
	nflogMsgConfig    = nflogSubsys<<8 | 1
	nflogCfgCmd       = 1 // NFULA_CFG_CMD
	nflogCfgMode      = 2 // NFULA_CFG_MODE
	nflogCfgBind      = 1 // NFULNL_CFG_CMD_BIND
	nflogCfgUnbind    = 2
	nflogCfgPfBind    = 3
	nflogCfgPfUnbind  = 4
	nflogCopyPacket   = 2  // NFULNL_COPY_PACKET
	nflogAttrTS       = 3  // NFULA_TIMESTAMP
	nflogAttrInDev    = 4  // NFULA_IFINDEX_INDEV
	nflogAttrPayload  = 9  // NFULA_PAYLOAD
	nflogAttrPrefix   = 10 // NFULA_PREFIX
	nflogNlaTypeMask  = 0x3fff
	nflogRecvBufSize  = 64 << 10 // per message slot: far above a copy range's packet
	nflogRecvMessages = 32       // messages per recvmmsg
)

// nflogPacket is one logged packet's attributes, pointing into the read
// buffer: valid only during the hook call that receives it.
type nflogPacket struct {
	payload []byte // nil: none
	prefix  []byte // without the trailing NUL; nil: none
	ts      time.Time
	hasTS   bool
	indev   uint32
	hasDev  bool
}

// nflogConn is a netlink socket bound to one NFLOG group.
type nflogConn struct {
	f     *os.File
	rc    syscall.RawConn
	group uint16
	seq   uint32

	bufs [nflogRecvMessages][]byte
	iovs [nflogRecvMessages]unix.Iovec
	hdrs [nflogRecvMessages]mmsghdr

	// What receive needs that would otherwise go to the heap at every
	// call: the function RawConn.Read calls (a closure, made once), what
	// it returns through, and the packet handed to fn.
	recv  func(fd uintptr) bool
	nrecv int
	rerr  error
	pkt   nflogPacket
}

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// openNFLOGConn opens a netlink socket in the namespace netns (0: the
// current one) with a receive buffer of rcvbuf bytes, unbinds stale
// handlers and binds group with the copy range, queue threshold and flush
// timeout given. An error says which step failed, as nflogBindError reads
// it: "unbind" (every request needs CAP_NET_ADMIN) or "bind to requested
// group" (EPERM there: another socket has the group).
func openNFLOGConn(netns int, group, copyRange uint16, qthresh, timeout uint32, rcvbuf int) (c *nflogConn, rcvErr error, err error) {
	fd, err := nflogSocket(netns)
	if err != nil {
		return nil, nil, err
	}
	if rcvbuf > 0 {
		if e := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); e != nil {
			rcvErr = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			if rcvErr != nil {
				rcvErr = fmt.Errorf("set receive buffer: %w", rcvErr)
			}
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	if c, err = newNFLOGConn(os.NewFile(uintptr(fd), "nflog"), group); err != nil {
		return nil, nil, err
	}
	var mode [6]byte
	binary.BigEndian.PutUint32(mode[:4], uint32(copyRange))
	mode[4] = nflogCopyPacket
	steps := []struct {
		what  string
		group uint16
		attrs [][2][]byte
	}{
		{"unbind stale handlers", 0, [][2][]byte{{u16(nflogCfgCmd), {nflogCfgPfUnbind}}}},
		{"bind to the protocol family", 0, [][2][]byte{{u16(nflogCfgCmd), {nflogCfgPfBind}}}},
		{fmt.Sprintf("bind to requested group %d", group), group, [][2][]byte{{u16(nflogCfgCmd), {nflogCfgBind}}}},
		{"set copy mode", group, [][2][]byte{{u16(nflogCfgMode), mode[:]}}},
	}
	var extra [][2][]byte
	if timeout > 0 {
		extra = append(extra, [2][]byte{u16(nflogCfgAttrTimeout), be32(timeout)})
	}
	if qthresh > 0 {
		extra = append(extra, [2][]byte{u16(nflogCfgAttrQThresh), be32(qthresh)})
	}
	if len(extra) > 0 {
		steps = append(steps, struct {
			what  string
			group uint16
			attrs [][2][]byte
		}{"set queue threshold and timeout", group, extra})
	}
	for _, s := range steps {
		if err := c.request(s.group, s.attrs, true); err != nil {
			c.f.Close()
			return nil, nil, fmt.Errorf("could not %s: %w", s.what, err)
		}
	}
	return c, rcvErr, nil
}

// newNFLOGConn makes the connection of f, a datagram socket, with its
// receive buffers; it closes f when it fails.
func newNFLOGConn(f *os.File, group uint16) (*nflogConn, error) {
	c := &nflogConn{f: f, group: group}
	var err error
	if c.rc, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, err
	}
	c.recv = c.recvmmsg
	for i := range c.bufs {
		c.bufs[i] = make([]byte, nflogRecvBufSize)
		c.iovs[i] = unix.Iovec{Base: &c.bufs[i][0]}
		c.iovs[i].SetLen(nflogRecvBufSize)
		c.hdrs[i].hdr.Iov = &c.iovs[i]
		c.hdrs[i].hdr.SetIovlen(1)
	}
	return c, nil
}

func u16(v uint16) []byte  { return binary.NativeEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// nflogSocket opens the socket, inside netns when it is not 0.
func nflogSocket(netns int) (int, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		if err != nil {
			return -1, fmt.Errorf("netlink socket: %w", err)
		}
		return fd, nil
	}
	if netns == 0 {
		return open()
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// A thread that cannot be switched back is left locked, and the
		// runtime ends it with the goroutine.
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("open current network namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		fd, err := open()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// request sends an NFULNL_MSG_CONFIG request for group with attrs and,
// with ack, waits for the kernel's answer (an error's errno).
func (c *nflogConn) request(group uint16, attrs [][2][]byte, ack bool) error {
	c.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, 64)
	msg = append(msg, unix.AF_UNSPEC, unix.NFNETLINK_V0, byte(group>>8), byte(group))
	for _, a := range attrs {
		l := 4 + len(a[1])
		msg = binary.NativeEndian.AppendUint16(msg, uint16(l))
		msg = append(msg, a[0]...)
		msg = append(msg, a[1]...)
		for len(msg)%4 != 0 {
			msg = append(msg, 0)
		}
	}
	flags := uint16(unix.NLM_F_REQUEST)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], nflogMsgConfig)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	var serr error
	if err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil || !ack {
		return serr
	}
	// The answer: an NLMSG_ERROR with our sequence (errno 0 is the ACK).
	// Packets the group already queued may come first: they are dropped,
	// since nothing is ready before Run reports ready.
	deadline := time.Now().Add(5 * time.Second)
	c.f.SetReadDeadline(deadline)
	defer c.f.SetReadDeadline(time.Time{})
	buf := make([]byte, 8192)
	for {
		var n int
		var rerr error
		if err := c.rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if rerr != nil {
			if rerr == unix.ENOBUFS {
				continue
			}
			return rerr
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				break
			}
			typ, seq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && seq == c.seq && l >= unix.SizeofNlMsghdr+4 {
				if errno := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); errno != 0 {
					return syscall.Errno(-errno)
				}
				return nil
			}
			b = b[nlmAlign(l):]
		}
	}
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

// sendQThresh asks the kernel for batches (true) or single packets, from
// the reading goroutine, between two reads; no answer is asked for, so
// none enters the stream of packets.
func (c *nflogConn) sendQThresh(batched bool) (uint32, error) {
	qthresh := uint32(1)
	attrs := [][2][]byte{}
	if batched {
		qthresh = nflogFloodQThresh
		attrs = append(attrs, [2][]byte{u16(nflogCfgAttrTimeout), be32(nflogFloodTimeout)})
	}
	attrs = append(attrs, [2][]byte{u16(nflogCfgAttrQThresh), be32(qthresh)})
	return qthresh, c.request(c.group, attrs, false)
}

// receive waits for the queued messages and hands each packet to fn, in
// order; fn returning false stops the batch (the rest is dropped: the run
// is ending). A socket overrun is returned as ENOBUFS after the packets
// read before it.
func (c *nflogConn) receive(fn func(p *nflogPacket) bool) error {
	if err := c.rc.Read(c.recv); err != nil {
		return err
	}
	if c.rerr != nil {
		return c.rerr
	}
	for i := 0; i < c.nrecv; i++ {
		if !parseNFLOGMessages(c.bufs[i][:c.hdrs[i].n], &c.pkt, fn) {
			return nil
		}
	}
	return nil
}

// recvmmsg takes the queued messages into c.bufs without waiting, for
// RawConn.Read, which calls it again once the socket is readable when it
// found none.
func (c *nflogConn) recvmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), uintptr(len(c.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	c.nrecv, c.rerr = int(r), nil
	if e != 0 {
		c.nrecv, c.rerr = 0, e
	}
	return c.rerr != unix.EAGAIN
}

// parseNFLOGMessages hands each packet message of one netlink datagram b
// (one or, when the kernel batches, many messages) to fn, in order, using
// p for each; it reports false when fn did. Other messages (answers,
// NLMSG_DONE) are skipped; a message whose attributes are malformed is
// handed over without a payload, so it is counted. It never reads past b.
func parseNFLOGMessages(b []byte, p *nflogPacket, fn func(*nflogPacket) bool) bool {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return true
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		msg := b[unix.SizeofNlMsghdr:l]
		b = b[min(nlmAlign(l), len(b)):]
		if typ != nflogMsgPacket || len(msg) < 4 {
			continue // an answer, NLMSG_DONE, ...
		}
		if !parseNFLOGPacket(msg[4:], p) {
			*p = nflogPacket{} // malformed attributes: counted as no payload
		}
		if !fn(p) {
			return false
		}
	}
	return true
}

// parseNFLOGPacket reads the attributes of one packet message into p,
// pointing into attrs. It reports false if they are malformed.
func parseNFLOGPacket(attrs []byte, p *nflogPacket) bool {
	*p = nflogPacket{}
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		if l < 4 || l > len(attrs) {
			return false
		}
		typ := binary.NativeEndian.Uint16(attrs[2:]) & nflogNlaTypeMask
		v := attrs[4:l]
		switch typ {
		case nflogAttrPayload:
			p.payload = v
		case nflogAttrPrefix:
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			p.prefix = v
		case nflogAttrTS:
			if len(v) >= 16 {
				sec, usec := binary.BigEndian.Uint64(v[0:]), binary.BigEndian.Uint64(v[8:])
				p.ts, p.hasTS = time.Unix(int64(sec), int64(usec)*1000), true
			}
		case nflogAttrInDev:
			if len(v) >= 4 {
				p.indev, p.hasDev = binary.BigEndian.Uint32(v), true
			}
		}
		attrs = attrs[min(nlmAlign(l), len(attrs)):]
	}
	return true
}

// unbind releases the group; errors are of no use at shutdown.
func (c *nflogConn) unbind() {
	_ = c.request(c.group, [][2][]byte{{u16(nflogCfgCmd), {nflogCfgUnbind}}}, false)
}

// close closes the socket, waking a receive in progress.
func (c *nflogConn) close() error { return c.f.Close() }

// errClosed reports whether err is the socket closed or its deadline
// passed: the end of a run.
func errClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}
