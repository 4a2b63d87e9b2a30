package scanner

import (
	"encoding/binary"
	"net/netip"
)

// TCP flag bits, as in the TCP header's flags byte.
const (
	FIN uint8 = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// Flag combinations of the classic stealth scans.
const (
	NULL uint8 = 0
	XMAS uint8 = FIN | PSH | URG
)

const (
	protoTCP     = 6
	tcpHeaderLen = 20
	// probeWindow is the window of raw probes; nmap sends 1024 too.
	probeWindow = 1024
)

// appendSegment appends a TCP header without options, checksummed for src
// and dst, to b. src and dst must be of one family.
func appendSegment(b []byte, src, dst netip.Addr, srcPort, dstPort uint16, seq, ack uint32, flags uint8) []byte {
	off := len(b)
	b = binary.BigEndian.AppendUint16(b, srcPort)
	b = binary.BigEndian.AppendUint16(b, dstPort)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, tcpHeaderLen/4<<4, flags)
	b = binary.BigEndian.AppendUint16(b, probeWindow)
	b = append(b, 0, 0, 0, 0) // checksum, urgent pointer
	binary.BigEndian.PutUint16(b[off+16:], tcpChecksum(src, dst, b[off:]))
	return b
}

// tcpChecksum returns the checksum of seg, a TCP segment whose checksum field
// is zero, with the IPv4 or IPv6 pseudo-header of src and dst (RFC 793,
// RFC 8200 section 8.1). Over a segment whose checksum field is filled in,
// it returns 0 when the checksum is right.
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	s := sum16(src.AsSlice(), 0)
	s = sum16(dst.AsSlice(), s)
	// The 32-bit IPv6 length and zero-padded next header add up the same
	// as IPv4's 16-bit protocol and length for any segment under 64 KiB.
	s += protoTCP + uint32(len(seg))
	return ^fold(sum16(seg, s))
}

// sum16 adds b as big-endian 16-bit words (an odd last byte padded with zero)
// to s, without folding carries.
func sum16(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds the carries of a one's complement sum into 16 bits.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// tcpHeader is what a scan needs from a reply.
type tcpHeader struct {
	srcPort, dstPort uint16
	flags            uint8
}

// parseTCP reads the fixed part of a TCP header; ok is false if seg is too
// short for it.
func parseTCP(seg []byte) (h tcpHeader, ok bool) {
	if len(seg) < tcpHeaderLen {
		return h, false
	}
	return tcpHeader{
		srcPort: binary.BigEndian.Uint16(seg[0:]),
		dstPort: binary.BigEndian.Uint16(seg[2:]),
		flags:   seg[13],
	}, true
}
