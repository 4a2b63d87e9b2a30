package parsers

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Packet builders for tests: they write just the fields DecodePacket reads
// and leave checksums at zero.

func pktTestV4(src, dst string, proto uint8, fragOff uint16, opts int, l4 []byte) []byte {
	ihl := 20 + opts
	p := make([]byte, ihl+len(l4))
	p[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], fragOff&0x1fff)
	p[8] = 64
	p[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	for i := 20; i < ihl; i++ {
		p[i] = 1 // NOP options
	}
	copy(p[ihl:], l4)
	return p
}

// pktTestV6 builds an IPv6 packet whose header chain is next, then ext
// (already encoded extension headers), then l4.
func pktTestV6(src, dst string, next uint8, ext, l4 []byte) []byte {
	p := make([]byte, 40, 40+len(ext)+len(l4))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(ext)+len(l4)))
	p[6] = next
	p[7] = 255
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	p = append(p, ext...)
	return append(p, l4...)
}

// pktTestExt encodes an 8*(units+1)-byte option-style extension header.
func pktTestExt(next uint8, units uint8) []byte {
	h := make([]byte, 8*(int(units)+1))
	h[0], h[1] = next, units
	return h
}

func pktTestFrag(next uint8, off uint16, more bool) []byte {
	h := make([]byte, 8)
	h[0] = next
	v := off << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(h[2:], v)
	return h
}

func pktTestTCP(sport, dport uint16, flags TCPFlags) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12] = 5 << 4
	h[13] = byte(flags)
	return h
}

func pktTestPorts(sport, dport uint16, n int) []byte {
	h := make([]byte, n)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	return h
}

func pktTestCat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

type pktTestCase struct {
	name string
	pkt  []byte
	want Outcome
	ev   Event // expected packet fields when want is Parsed, UnspecifiedSource or ReservedSource
}

func pktTestCases() []pktTestCase {
	const a4, b4 = "198.51.100.2", "198.51.100.1"
	const a6, b6 = "2001:db8:51::2", "2001:db8:51::1"
	A4, B4 := netip.MustParseAddr(a4), netip.MustParseAddr(b4)
	A6, B6 := netip.MustParseAddr(a6), netip.MustParseAddr(b6)
	syn := pktTestV4(a4, b4, ProtoTCP, 0, 0, pktTestTCP(40000, 22, SYN))
	syn6 := pktTestV6(a6, b6, ProtoTCP, nil, pktTestTCP(40000, 443, SYN))
	udp := pktTestV4(a4, b4, ProtoUDP, 0, 0, pktTestPorts(5353, 53, 8))
	return []pktTestCase{
		{"v4 TCP SYN", syn, Parsed, Event{Src: A4, Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP, SrcPort: 40000, DstPort: 22, Flags: SYN}},
		{"v4 TCP FIN", pktTestV4(a4, b4, ProtoTCP, 0, 0, pktTestTCP(1, 2, FIN)), Parsed, Event{Src: A4, Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP, SrcPort: 1, DstPort: 2, Flags: FIN}},
		{"v4 TCP NULL", pktTestV4(a4, b4, ProtoTCP, 0, 0, pktTestTCP(1, 2, 0)), Parsed, Event{Src: A4, Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP, SrcPort: 1, DstPort: 2}},
		{"v4 TCP XMAS", pktTestV4(a4, b4, ProtoTCP, 0, 0, pktTestTCP(1, 2, FIN|PSH|URG)), Parsed, Event{Src: A4, Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP, SrcPort: 1, DstPort: 2, Flags: FIN | PSH | URG}},
		{"v4 TCP with IP options", pktTestV4(a4, b4, ProtoTCP, 0, 12, pktTestTCP(1, 8080, SYN|ECE|CWR)), Parsed, Event{Src: A4, Dst: B4, Length: 52, TTL: 64, Proto: ProtoTCP, SrcPort: 1, DstPort: 8080, Flags: SYN | ECE | CWR}},
		{"v4 UDP", udp, Parsed, Event{Src: A4, Dst: B4, Length: 28, TTL: 64, Proto: ProtoUDP, SrcPort: 5353, DstPort: 53}},
		{"v4 UDPLite", pktTestV4(a4, b4, ProtoUDPLite, 0, 0, pktTestPorts(7, 9, 8)), Parsed, Event{Src: A4, Dst: B4, Length: 28, TTL: 64, Proto: ProtoUDPLite, SrcPort: 7, DstPort: 9}},
		{"v4 SCTP", pktTestV4(a4, b4, ProtoSCTP, 0, 0, pktTestPorts(7, 9, 12)), Parsed, Event{Src: A4, Dst: B4, Length: 32, TTL: 64, Proto: ProtoSCTP, SrcPort: 7, DstPort: 9}},
		{"v4 ICMP echo", pktTestV4(a4, b4, ProtoICMP, 0, 0, []byte{8, 0, 0, 0, 0, 1, 0, 1}), Parsed, Event{Src: A4, Dst: B4, Length: 28, TTL: 64, Proto: ProtoICMP, ICMPType: 8}},
		{"v4 GRE has no ports", pktTestV4(a4, b4, 47, 0, 0, []byte{0, 0, 8, 0}), Parsed, Event{Src: A4, Dst: B4, Length: 24, TTL: 64, Proto: 47}},
		{"v4 later fragment has no L4 header", pktTestV4(a4, b4, ProtoTCP, 185, 0, pktTestTCP(1, 2, SYN)), Parsed, Event{Src: A4, Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP, NoL4Header: true}},
		{"v4 later fragment may be short", pktTestV4(a4, b4, ProtoUDP, 1, 0, []byte{1}), Parsed, Event{Src: A4, Dst: B4, Length: 21, TTL: 64, Proto: ProtoUDP, NoL4Header: true}},
		{"v4 first fragment is decoded", func() []byte {
			p := pktTestV4(a4, b4, ProtoUDP, 0, 0, pktTestPorts(1, 2, 8))
			p[6] = 0x20 // more fragments
			return p
		}(), Parsed, Event{Src: A4, Dst: B4, Length: 28, TTL: 64, Proto: ProtoUDP, SrcPort: 1, DstPort: 2}},
		{"v4 TCP cut before flags", syn[:20+13], Truncated, Event{}},
		{"v4 TCP ports only", syn[:24], Truncated, Event{}},
		{"v4 UDP cut in ports", udp[:23], Truncated, Event{}},
		{"v4 ICMP cut", pktTestV4(a4, b4, ProtoICMP, 0, 0, []byte{8}), Truncated, Event{}},
		{"v4 header cut", syn[:19], Truncated, Event{}},
		{"v4 options cut", pktTestV4(a4, b4, ProtoTCP, 0, 40, nil)[:40], Truncated, Event{}},
		{"v4 IHL below 5", func() []byte { p := append([]byte(nil), syn...); p[0] = 0x44; return p }(), BadField, Event{}},
		{"empty", nil, Truncated, Event{}},
		{"version 0", make([]byte, 40), Skipped, Event{}},
		{"ARP-like payload", []byte{0x00, 0x01, 0x08, 0x00, 6, 4, 0, 1}, Skipped, Event{}},
		{"v4 source 0.0.0.0", pktTestV4("0.0.0.0", b4, ProtoUDP, 0, 0, pktTestPorts(68, 67, 8)), UnspecifiedSource, Event{Src: netip.MustParseAddr("0.0.0.0"), Dst: B4, Length: 28, TTL: 64, Proto: ProtoUDP}},
		{"v4 source 0.1.2.3", pktTestV4("0.1.2.3", b4, ProtoUDP, 0, 0, pktTestPorts(68, 67, 8)), ReservedSource, Event{Src: netip.MustParseAddr("0.1.2.3"), Dst: B4, Length: 28, TTL: 64, Proto: ProtoUDP}},
		{"v4 source multicast", pktTestV4("224.0.0.1", b4, ProtoTCP, 0, 0, pktTestTCP(1, 2, SYN)), ReservedSource, Event{Src: netip.MustParseAddr("224.0.0.1"), Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP}},
		{"v4 source broadcast", pktTestV4("255.255.255.255", b4, ProtoTCP, 0, 0, pktTestTCP(1, 2, SYN)), ReservedSource, Event{Src: netip.MustParseAddr("255.255.255.255"), Dst: B4, Length: 40, TTL: 64, Proto: ProtoTCP}},
		{"v6 TCP SYN", syn6, Parsed, Event{Src: A6, Dst: B6, Length: 60, TTL: 255, Proto: ProtoTCP, SrcPort: 40000, DstPort: 443, Flags: SYN}},
		{"v6 UDP", pktTestV6(a6, b6, ProtoUDP, nil, pktTestPorts(1, 161, 8)), Parsed, Event{Src: A6, Dst: B6, Length: 48, TTL: 255, Proto: ProtoUDP, SrcPort: 1, DstPort: 161}},
		{"v6 ICMPv6 echo", pktTestV6(a6, b6, ProtoICMPv6, nil, []byte{128, 0, 0, 0, 0, 0, 0, 0}), Parsed, Event{Src: A6, Dst: B6, Length: 48, TTL: 255, Proto: ProtoICMPv6, ICMPType: 128}},
		{"v6 hop-by-hop, routing, dest opts, TCP", pktTestV6(a6, b6, pktIPv6HopByHop,
			pktTestCat(pktTestExt(pktIPv6Routing, 0), pktTestExt(pktIPv6DestOpts, 2), pktTestExt(ProtoTCP, 1)),
			pktTestTCP(1, 25, FIN|SYN)), Parsed, Event{Src: A6, Dst: B6, Length: 40 + 8 + 24 + 16 + 20, TTL: 255, Proto: ProtoTCP, SrcPort: 1, DstPort: 25, Flags: FIN | SYN}},
		{"v6 AH then UDP", pktTestV6(a6, b6, pktIPv6AH, func() []byte {
			h := make([]byte, 24) // (4+2)*4
			h[0], h[1] = ProtoUDP, 4
			return h
		}(), pktTestPorts(1, 500, 8)), Parsed, Event{Src: A6, Dst: B6, Length: 40 + 24 + 8, TTL: 255, Proto: ProtoUDP, SrcPort: 1, DstPort: 500}},
		{"v6 first fragment", pktTestV6(a6, b6, pktIPv6Fragment, pktTestFrag(ProtoUDP, 0, true), pktTestPorts(1, 53, 8)), Parsed, Event{Src: A6, Dst: B6, Length: 56, TTL: 255, Proto: ProtoUDP, SrcPort: 1, DstPort: 53}},
		{"v6 later fragment has no L4 header", pktTestV6(a6, b6, pktIPv6Fragment, pktTestFrag(ProtoTCP, 181, false), pktTestTCP(1, 2, SYN)), Parsed, Event{Src: A6, Dst: B6, Length: 68, TTL: 255, Proto: ProtoTCP, NoL4Header: true}},
		{"v6 later fragment after hop-by-hop", pktTestV6(a6, b6, pktIPv6HopByHop, pktTestCat(pktTestExt(pktIPv6Fragment, 0), pktTestFrag(ProtoUDP, 1, true)), []byte{9}), Parsed, Event{Src: A6, Dst: B6, Length: 57, TTL: 255, Proto: ProtoUDP, NoL4Header: true}},
		{"v6 ESP stops the walk", pktTestV6(a6, b6, pktIPv6ESP, nil, make([]byte, 8)), Parsed, Event{Src: A6, Dst: B6, Length: 48, TTL: 255, Proto: pktIPv6ESP}},
		{"v6 no next header", pktTestV6(a6, b6, 59, nil, nil), Parsed, Event{Src: A6, Dst: B6, Length: 40, TTL: 255, Proto: 59}},
		{"v6 header cut", syn6[:39], Truncated, Event{}},
		{"v6 TCP cut before flags", syn6[:53], Truncated, Event{}},
		{"v6 ext header cut", pktTestV6(a6, b6, pktIPv6DestOpts, pktTestExt(ProtoTCP, 3)[:16], nil), Truncated, Event{}},
		{"v6 ext header under 8 bytes", pktTestV6(a6, b6, pktIPv6HopByHop, []byte{ProtoTCP, 0, 0, 0}, nil), Truncated, Event{}},
		{"v6 fragment header cut", pktTestV6(a6, b6, pktIPv6Fragment, []byte{ProtoTCP, 0}, nil), Truncated, Event{}},
		{"v6 source unspecified", pktTestV6("::", b6, ProtoICMPv6, nil, []byte{135, 0, 0, 0}), UnspecifiedSource, Event{Src: netip.IPv6Unspecified(), Dst: B6, Length: 44, TTL: 255, Proto: ProtoICMPv6}},
		{"v6 source multicast", pktTestV6("ff02::1", b6, ProtoUDP, nil, pktTestPorts(1, 2, 8)), ReservedSource, Event{Src: netip.MustParseAddr("ff02::1"), Dst: B6, Length: 48, TTL: 255, Proto: ProtoUDP}},
		{"v6 jumbogram length", func() []byte {
			p := pktTestV6(a6, b6, ProtoUDP, nil, pktTestPorts(1, 2, 8))
			p[4], p[5] = 0, 0
			return p
		}(), Parsed, Event{Src: A6, Dst: B6, Length: 40, TTL: 255, Proto: ProtoUDP, SrcPort: 1, DstPort: 2}},
		{"v6 largest payload length", func() []byte {
			p := pktTestV6(a6, b6, ProtoUDP, nil, pktTestPorts(1, 2, 8))
			p[4], p[5] = 0xff, 0xff
			return p
		}(), Parsed, Event{Src: A6, Dst: B6, Length: 0xffff, TTL: 255, Proto: ProtoUDP, SrcPort: 1, DstPort: 2}},
	}
}

func TestDecodePacket(t *testing.T) {
	for _, tc := range pktTestCases() {
		t.Run(tc.name, func(t *testing.T) {
			// Start from a dirty event: DecodePacket must reset packet fields
			// and keep Time, Prefix and InIface.
			ev := Event{Prefix: "SENTRY", InIface: "eth0", SrcPort: 9, DstPort: 9, Flags: 0xff, ICMPType: 3, ICMPCode: 3}
			got := DecodePacket(tc.pkt, &ev)
			if got != tc.want {
				t.Fatalf("DecodePacket = %v, want %v (event %+v)", got, tc.want, ev)
			}
			if ev.Prefix != "SENTRY" || ev.InIface != "eth0" {
				t.Errorf("Prefix/InIface changed: %q %q", ev.Prefix, ev.InIface)
			}
			if got != Parsed && got != ReservedSource && got != UnspecifiedSource {
				return
			}
			want := tc.ev
			want.Prefix, want.InIface = "SENTRY", "eth0"
			if ev != want {
				t.Errorf("event\n got %+v\nwant %+v", ev, want)
			}
		})
	}
}

func TestDecodePacketAllocs(t *testing.T) {
	for _, tc := range pktTestCases() {
		var ev Event
		if n := testing.AllocsPerRun(100, func() { DecodePacket(tc.pkt, &ev) }); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, tc := range pktTestCases() {
		f.Add(tc.pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := append([]byte(nil), pkt...)
		var ev Event
		o := DecodePacket(pkt, &ev)
		if string(orig) != string(pkt) {
			t.Fatal("DecodePacket modified its input")
		}
		if o >= numOutcomes || o == BadTime || o == BadPort || o == BadProto || o == BadAddress {
			t.Fatalf("unexpected outcome %v", o)
		}
		if o != Parsed {
			return
		}
		if !ev.Src.IsValid() || !ev.Dst.IsValid() || ev.Src.Is4() != ev.Dst.Is4() {
			t.Fatalf("parsed with bad addresses %v %v", ev.Src, ev.Dst)
		}
		if pktReservedSource(ev.Src) {
			t.Fatalf("parsed a reserved source %v", ev.Src)
		}
		switch ev.Proto {
		case ProtoTCP:
		case ProtoUDP, ProtoUDPLite, ProtoSCTP:
			if ev.Flags != 0 {
				t.Fatalf("flags %v on proto %d", ev.Flags, ev.Proto)
			}
		default:
			if ev.SrcPort != 0 || ev.DstPort != 0 || ev.Flags != 0 {
				t.Fatalf("ports or flags on proto %d: %+v", ev.Proto, ev)
			}
		}
		if ev.Proto != ProtoICMP && ev.Proto != ProtoICMPv6 && (ev.ICMPType != 0 || ev.ICMPCode != 0) {
			t.Fatalf("ICMP type on proto %d", ev.Proto)
		}
		// Decoding is a pure function of the bytes.
		var again Event
		if DecodePacket(pkt, &again) != o || again != ev {
			t.Fatal("DecodePacket is not deterministic")
		}
	})
}

func BenchmarkDecodePacket(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"v4-tcp-syn", pktTestV4("198.51.100.2", "198.51.100.1", ProtoTCP, 0, 0, pktTestTCP(40000, 22, SYN))},
		{"v6-tcp-syn", pktTestV6("2001:db8::2", "2001:db8::1", ProtoTCP, nil, pktTestTCP(40000, 22, SYN))},
		{"v6-ext-udp", pktTestV6("2001:db8::2", "2001:db8::1", pktIPv6HopByHop,
			pktTestCat(pktTestExt(pktIPv6DestOpts, 0), pktTestExt(ProtoUDP, 0)), pktTestPorts(1, 53, 8))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var ev Event
			for b.Loop() {
				if DecodePacket(bc.pkt, &ev) != Parsed {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
