package parsers

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 extension headers DecodePacket walks, and the protocol numbers after
// which there is nothing more it can read.
const (
	pktIPv6HopByHop   = 0
	pktIPv6Routing    = 43
	pktIPv6Fragment   = 44
	pktIPv6ESP        = 50
	pktIPv6AH         = 51
	pktIPv6DestOpts   = 60
	pktIPv4HeaderLen  = 20
	pktIPv6HeaderLen  = 40
	pktTCPFlagsOffset = 13
)

// DecodePacket decodes an IP packet as NFLOG delivers it (the payload starts
// at the IPv4 or IPv6 header; it may be cut short by the copy range) into the
// packet fields of ev: Src, Dst, Length, TTL, Proto, SrcPort, DstPort, Flags,
// ICMPType and ICMPCode. It leaves Time, Prefix and InIface alone and resets
// every other field first, so ev can be reused. It does not allocate, keeps
// no reference to payload, and never panics.
//
// IPv6 extension headers (hop-by-hop, routing, fragment, destination options,
// AH) are walked to the upper-layer protocol. A fragment that is not the
// first one (IPv4 offset or IPv6 fragment offset not 0) carries no L4 header:
// Proto is set, NoL4Header is true, ports, flags and ICMP type stay 0, and
// the outcome is Parsed.
//
// Outcomes:
//   - Parsed: ev is filled in.
//   - Skipped: the payload is not IPv4 or IPv6 (version nibble neither 4 nor
//     6, as for ARP logged from a bridge or arp table): not IP evidence.
//   - Truncated: the payload ends inside the IP header, an extension header,
//     or the TCP ports and flags, UDP/UDPLite/SCTP ports or ICMP type and
//     code of a first fragment.
//   - BadField: the IPv4 header length (IHL) is below 5 words.
//   - UnspecifiedSource: the source is 0.0.0.0 or :: (DHCP, IGMP, duplicate
//     address detection); Src, Dst, Length, TTL and Proto are set, L4 fields
//     are not.
//   - ReservedSource: the source is otherwise in 0.0.0.0/8, multicast or
//     255.255.255.255; Src, Dst, Length, TTL and Proto are set, L4 fields are not.
func DecodePacket(payload []byte, ev *Event) Outcome {
	ev.Src, ev.Dst = netip.Addr{}, netip.Addr{}
	ev.SrcPort, ev.DstPort = 0, 0
	ev.Length, ev.Proto, ev.Flags, ev.TTL = 0, 0, 0, 0
	ev.ICMPType, ev.ICMPCode = 0, 0
	ev.NoL4Header = false
	if len(payload) == 0 {
		return Truncated
	}
	switch payload[0] >> 4 {
	case 4:
		return pktDecodeIPv4(payload, ev)
	case 6:
		return pktDecodeIPv6(payload, ev)
	}
	return Skipped
}

func pktDecodeIPv4(p []byte, ev *Event) Outcome {
	if len(p) < pktIPv4HeaderLen {
		return Truncated
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < pktIPv4HeaderLen {
		return BadField
	}
	if len(p) < ihl {
		return Truncated
	}
	ev.Length = binary.BigEndian.Uint16(p[2:4])
	ev.TTL = p[8]
	ev.Proto = p[9]
	ev.Src = netip.AddrFrom4([4]byte(p[12:16]))
	ev.Dst = netip.AddrFrom4([4]byte(p[16:20]))
	if o := pktSourceOutcome(ev.Src); o != Parsed {
		return o
	}
	if binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 {
		// A later fragment: its data starts mid-datagram, not at an L4 header.
		ev.NoL4Header = true
		return Parsed
	}
	return pktDecodeL4(p[ihl:], ev)
}

func pktDecodeIPv6(p []byte, ev *Event) Outcome {
	if len(p) < pktIPv6HeaderLen {
		return Truncated
	}
	// The kernel logs LEN as payload length plus the fixed header; a
	// jumbogram (payload length 0) shows 40, as in nf_log.
	if l := int(binary.BigEndian.Uint16(p[4:6])) + pktIPv6HeaderLen; l <= 0xffff {
		ev.Length = uint16(l)
	} else {
		ev.Length = 0xffff
	}
	ev.TTL = p[7]
	ev.Src = netip.AddrFrom16([16]byte(p[8:24]))
	ev.Dst = netip.AddrFrom16([16]byte(p[24:40]))
	next := p[6]
	rest := p[pktIPv6HeaderLen:]
	// Every extension header is at least 8 bytes long, so the walk ends
	// within len(p)/8 steps however the headers chain.
	for {
		switch next {
		case pktIPv6HopByHop, pktIPv6Routing, pktIPv6DestOpts:
			if len(rest) < 8 {
				ev.Proto = next
				return pktReservedOr(ev, Truncated)
			}
			n := (int(rest[1]) + 1) * 8
			if len(rest) < n {
				ev.Proto = next
				return pktReservedOr(ev, Truncated)
			}
			next, rest = rest[0], rest[n:]
		case pktIPv6AH:
			if len(rest) < 8 {
				ev.Proto = next
				return pktReservedOr(ev, Truncated)
			}
			n := (int(rest[1]) + 2) * 4
			if len(rest) < n {
				ev.Proto = next
				return pktReservedOr(ev, Truncated)
			}
			next, rest = rest[0], rest[n:]
		case pktIPv6Fragment:
			if len(rest) < 8 {
				ev.Proto = next
				return pktReservedOr(ev, Truncated)
			}
			next = rest[0]
			if binary.BigEndian.Uint16(rest[2:4])>>3 != 0 {
				// A later fragment: no L4 header, and no further
				// extension headers either (they are in the first one).
				ev.Proto = next
				ev.NoL4Header = true
				return pktReservedOr(ev, Parsed)
			}
			rest = rest[8:]
		default:
			ev.Proto = next
			if o := pktSourceOutcome(ev.Src); o != Parsed {
				return o
			}
			return pktDecodeL4(rest, ev)
		}
	}
}

// pktReservedOr returns the source's own outcome for an unspecified or
// reserved source, else o, so a spoofed multicast source is reported as such
// even on a truncated packet.
func pktReservedOr(ev *Event, o Outcome) Outcome {
	if so := pktSourceOutcome(ev.Src); so != Parsed {
		ev.NoL4Header = false
		return so
	}
	return o
}

// pktSourceOutcome returns UnspecifiedSource for 0.0.0.0 and ::,
// ReservedSource for another source no sender can use, Parsed otherwise.
func pktSourceOutcome(a netip.Addr) Outcome {
	switch {
	case a.IsUnspecified():
		return UnspecifiedSource
	case pktReservedSource(a):
		return ReservedSource
	}
	return Parsed
}

// pktDecodeL4 reads the ports, flags or ICMP type and code of ev.Proto from
// the start of the L4 header l4.
func pktDecodeL4(l4 []byte, ev *Event) Outcome {
	switch ev.Proto {
	case ProtoTCP:
		if len(l4) < pktTCPFlagsOffset+1 {
			return Truncated
		}
		ev.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		ev.DstPort = binary.BigEndian.Uint16(l4[2:4])
		ev.Flags = TCPFlags(l4[pktTCPFlagsOffset])
	case ProtoUDP, ProtoUDPLite, ProtoSCTP:
		if len(l4) < 4 {
			return Truncated
		}
		ev.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		ev.DstPort = binary.BigEndian.Uint16(l4[2:4])
	case ProtoICMP, ProtoICMPv6:
		if len(l4) < 2 {
			return Truncated
		}
		ev.ICMPType, ev.ICMPCode = l4[0], l4[1]
	}
	return Parsed
}

// pktReservedSource reports whether a is a source no real sender can use:
// unspecified (0.0.0.0/8, ::), multicast, or the IPv4 limited broadcast.
func pktReservedSource(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0] == 0 || a.IsMulticast() || b == [4]byte{255, 255, 255, 255}
	}
	return a.IsUnspecified() || a.IsMulticast()
}
