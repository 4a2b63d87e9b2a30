//go:build linux

package sources

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// nflogTestMessage builds one NFULNL_MSG_PACKET message as the kernel
// sends it: prefix, timestamp, input interface and payload.
func nflogTestMessage(prefix string, ts time.Time, indev uint32, payload []byte) []byte {
	attr := func(b []byte, typ uint16, v []byte) []byte {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	body := []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 7}
	body = attr(body, nflogAttrPrefix, append([]byte(prefix), 0))
	var stamp []byte
	stamp = binary.BigEndian.AppendUint64(stamp, uint64(ts.Unix()))
	stamp = binary.BigEndian.AppendUint64(stamp, uint64(ts.Nanosecond()/1000))
	body = attr(body, nflogAttrTS, stamp)
	body = attr(body, nflogAttrInDev, binary.BigEndian.AppendUint32(nil, indev))
	body = attr(body, nflogAttrPayload, payload)
	msg := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], nflogMsgPacket)
	return append(msg, body...)
}

// A batch of messages in one datagram is handed over in order, each with
// its attributes, and nothing is allocated per packet.
func TestParseNFLOGMessages(t *testing.T) {
	ts := time.Unix(1700000000, 123456000)
	var batch []byte
	for port := uint16(1); port <= 3; port++ {
		batch = append(batch, nflogTestMessage("SENTRY ", ts, 7, nflogTestPacket("198.51.100.2", "198.51.100.1", 40000, port, parsers.SYN))...)
	}
	var got []nflogPacket
	var p nflogPacket
	parseNFLOGMessages(batch, &p, func(p *nflogPacket) bool {
		got = append(got, *p)
		return true
	})
	if len(got) != 3 {
		t.Fatalf("%d packets, want 3", len(got))
	}
	for i, g := range got {
		var ev parsers.Event
		if o := parsers.DecodePacket(g.payload, &ev); o != parsers.Parsed || ev.DstPort != uint16(i+1) {
			t.Errorf("packet %d: %v %+v", i, o, ev)
		}
		if string(g.prefix) != "SENTRY " || !g.hasTS || !g.ts.Equal(ts) || !g.hasDev || g.indev != 7 {
			t.Errorf("packet %d attributes: prefix %q ts %v dev %d", i, g.prefix, g.ts, g.indev)
		}
	}
	// fn false stops the batch.
	n := 0
	if parseNFLOGMessages(batch, &p, func(*nflogPacket) bool { n++; return false }) || n != 1 {
		t.Errorf("a stop was not honoured: %d calls", n)
	}
	if a := testing.AllocsPerRun(100, func() { parseNFLOGMessages(batch, &p, func(*nflogPacket) bool { return true }) }); a != 0 {
		t.Errorf("%v allocs per batch, want 0", a)
	}
}

// receive takes what is queued on the socket in one recvmmsg and hands
// each packet over, in order, allocating nothing. A socket pair stands for
// the netlink socket here: receive reads any datagram socket alike.
func TestNFLOGReceive(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	c, err := newNFLOGConn(os.NewFile(uintptr(fds[0]), "pair"), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.f.Close()
	ts := time.Unix(1700000000, 0)
	var msgs [][]byte
	for port := uint16(1); port <= 3; port++ {
		msgs = append(msgs, nflogTestMessage("SENTRY ", ts, 7, nflogTestPacket("198.51.100.2", "198.51.100.1", 40000, port, parsers.SYN)))
	}
	send := func() {
		for _, m := range msgs {
			if _, err := unix.Write(fds[1], m); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ports []uint16
	send()
	err = c.receive(func(p *nflogPacket) bool {
		var ev parsers.Event
		parsers.DecodePacket(p.payload, &ev)
		ports = append(ports, ev.DstPort)
		return true
	})
	if err != nil || !slices.Equal(ports, []uint16{1, 2, 3}) {
		t.Fatalf("receive: ports %v, err %v; want 1, 2, 3 in one call", ports, err)
	}
	n := 0
	if a := testing.AllocsPerRun(100, func() {
		send()
		if err := c.receive(func(*nflogPacket) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocs per receive, want 0", a)
	}
	if n != 3*101 {
		t.Errorf("%d packets handed over in 101 receives of 3, want %d", n, 3*101)
	}
}

// FuzzNFLOGMessages: any datagram parses without panic or reading past
// it, and every packet handed over points into it.
func FuzzNFLOGMessages(f *testing.F) {
	ts := time.Unix(1700000000, 0)
	f.Add(nflogTestMessage("SENTRY", ts, 7, nflogTestPacket("198.51.100.2", "198.51.100.1", 40000, 22, parsers.SYN)))
	f.Add(append(nflogTestMessage("", ts, 0, nil), nflogTestMessage("X", ts, 1, []byte{0x45})...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p nflogPacket
		parseNFLOGMessages(b, &p, func(p *nflogPacket) bool {
			for _, part := range [][]byte{p.payload, p.prefix} {
				if len(part) > 0 && !bytes.Contains(b, part) {
					t.Fatalf("a packet's data is not from the datagram")
				}
			}
			var ev parsers.Event
			parsers.DecodePacket(p.payload, &ev)
			return true
		})
	})
}
