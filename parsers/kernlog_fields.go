package parsers

import (
	"bytes"
	"net/netip"
	"unsafe"
)

// Bits of fields.seen: which fields a record carried.
const (
	seenSrc uint16 = 1 << iota
	seenDst
	seenProto
	seenSPT
	seenDPT
	seenLen
	seenTTL
	seenType
	seenCode
	seenIn
	// seenSCTPName marks "PROTO=SCTP" spelled out (see check).
	seenSCTPName
	// seenURGP: TCP's flags were ended by URGP=, so none was cut off.
	seenURGP
	// seenWindow: WINDOW=, after which pvefw-logger prints TCP's flags.
	seenWindow
	// seenLaterFrag: FRAG:n with n > 0, a fragment after the first.
	seenLaterFrag
	// seenNoHeader: the record says the transport header could not be
	// read ("INCOMPLETE [8 bytes]", pvefw-logger's "INVALID=LEN").
	seenNoHeader
)

// Keys and words are up to 8 bytes, so they are compared as integers with
// their bytes packed big-endian: one switch on a number instead of a string
// comparison per candidate.
const (
	kIN       = 'I'<<8 | 'N'
	kMAC      = 'M'<<16 | 'A'<<8 | 'C'
	kSRC      = 'S'<<16 | 'R'<<8 | 'C'
	kDST      = 'D'<<16 | 'S'<<8 | 'T'
	kSPT      = 'S'<<16 | 'P'<<8 | 'T'
	kDPT      = 'D'<<16 | 'P'<<8 | 'T'
	kLEN      = 'L'<<16 | 'E'<<8 | 'N'
	kTTL      = 'T'<<16 | 'T'<<8 | 'L'
	kTYPE     = 'T'<<24 | 'Y'<<16 | 'P'<<8 | 'E'
	kCODE     = 'C'<<24 | 'O'<<16 | 'D'<<8 | 'E'
	kPROTO    = 'P'<<32 | 'R'<<24 | 'O'<<16 | 'T'<<8 | 'O'
	kURGP     = 'U'<<24 | 'R'<<16 | 'G'<<8 | 'P'
	kFRAG     = 'F'<<24 | 'R'<<16 | 'A'<<8 | 'G'
	kWINDOW   = 'W'<<40 | 'I'<<32 | 'N'<<24 | 'D'<<16 | 'O'<<8 | 'W'
	kINVALID  = 'I'<<48 | 'N'<<40 | 'V'<<32 | 'A'<<24 | 'L'<<16 | 'I'<<8 | 'D'
	kHOPLIMIT = 'H'<<56 | 'O'<<48 | 'P'<<40 | 'L'<<32 | 'I'<<24 | 'M'<<16 | 'I'<<8 | 'T'

	kwSYN = 'S'<<16 | 'Y'<<8 | 'N'
	kwACK = 'A'<<16 | 'C'<<8 | 'K'
	kwFIN = 'F'<<16 | 'I'<<8 | 'N'
	kwRST = 'R'<<16 | 'S'<<8 | 'T'
	kwPSH = 'P'<<16 | 'S'<<8 | 'H'
	kwURG = 'U'<<16 | 'R'<<8 | 'G'
	kwECE = 'E'<<16 | 'C'<<8 | 'E'
	kwCWR = 'C'<<16 | 'W'<<8 | 'R'
)

// fields collects the outer packet's fields from nf_log's
// "IN=... OUT=... SRC=... PROTO=TCP SPT=..." text.
type fields struct {
	seen               uint16
	src, dst           netip.Addr
	iface              []byte // into the line: interned before it is kept
	spt, dpt, length   uint16
	proto              uint8
	flags              TCPFlags
	ttl                uint8
	icmpType, icmpCode uint8
	// pve: the record is pvefw-logger's, whose TCP flags follow WINDOW=
	// and end with the line (URGP= only with URG).
	pve bool
	// noL4: the packet's transport header is not in the record.
	noL4 bool
}

// wordINCOMPLETE is what nf_log prints when it cannot read a header.
const wordINCOMPLETE = "INCOMPLETE"

// parse reads the fields of b, which starts at "IN=". The first value of a
// field wins: UDP's second LEN is the UDP length, not the IP length.
// Bracketed sections (the packet an ICMP error quotes, "INCOMPLETE [8
// bytes]") are skipped, so quoted fields never overwrite the packet's own.
func (f *fields) parse(b []byte) Outcome {
	// Tokens are short, so they are scanned byte by byte: a call to
	// bytes.IndexByte per token costs more than it saves, except over the
	// long MAC value.
	n := len(b)
	depth := 0
	for i := 0; i < n; {
		c := b[i]
		if c == ' ' {
			i++
			continue
		}
		if c == '[' || depth > 0 {
			for i < n && b[i] != ' ' {
				i++
			}
			if c == '[' {
				depth++
			}
			if b[i-1] == ']' && depth > 0 {
				depth--
			}
			continue
		}
		// Keys and flag words are upper-case letters, all above '=', so one
		// comparison per byte finds the end of either.
		start := i
		var k uint64
		for ; i < n && b[i] > '='; i++ {
			k = k<<8 | uint64(b[i])
		}
		if i < n && b[i] != '=' && b[i] != ' ' {
			// Not a key or a word of ours ("FRAG:185", "(020405B4)").
			sep := i
			for i < n && b[i] != ' ' {
				i++
			}
			if k == kFRAG {
				f.fragOffset(b[sep:i])
			}
			continue
		}
		if i-start > 8 {
			k = 0 // longer than any key or word we know
		}
		if i == n || b[i] == ' ' {
			if k == 0 {
				f.longWord(b[start:i])
			}
			f.flags |= flagWord(k)
			continue
		}
		if k == kURGP && f.proto == ProtoTCP {
			// nf_log prints the TCP flags before URGP and nothing we read
			// after it.
			f.seen |= seenURGP
			return Parsed
		}
		i++
		if k == kMAC {
			if j := bytes.IndexByte(b[i:], ' '); j >= 0 {
				i += j
			} else {
				i = n
			}
			continue
		}
		vstart := i
		for i < n && b[i] != ' ' {
			i++
		}
		if o := f.field(k, b[vstart:i]); o != Parsed {
			return o
		}
		if f.complete() {
			return Parsed
		}
	}
	return Parsed
}

// fragOffset reads the ":185" of "FRAG:185". nf_log prints an IPv4
// fragment's offset only when it is not 0, IPv6's always ("FRAG:0" is a
// first fragment). Rare words are read out of parse's loop, which stays
// small.
//
//go:noinline
func (f *fields) fragOffset(b []byte) {
	if len(b) > 1 && b[0] == ':' {
		if v, ok := parseUint(b[1:], 0xffff); ok && v != 0 {
			f.seen |= seenLaterFrag
		}
	}
}

// longWord reads a word longer than any flag: INCOMPLETE after PROTO says
// the transport header could not be read. (IPv6 prints it before PROTO for
// a fragment with more to come.)
//
//go:noinline
func (f *fields) longWord(w []byte) {
	if f.seen&seenProto != 0 && string(w) == wordINCOMPLETE {
		f.seen |= seenNoHeader
	}
}

// complete reports whether nothing after the current field can change the
// event, so the rest of the line (an ICMP error's quoted packet, UDP's
// second LEN, UID, MARK) need not be read.
func (f *fields) complete() bool {
	if f.seen&seenProto == 0 {
		return false
	}
	switch f.proto {
	case ProtoTCP:
		return false // the flags come after the ports; URGP ends them
	case ProtoUDP, ProtoUDPLite, ProtoSCTP:
		return f.seen&(seenSPT|seenDPT) == seenSPT|seenDPT
	case ProtoICMP, ProtoICMPv6:
		return f.seen&(seenType|seenCode) == seenType|seenCode
	}
	return true
}

// field stores one key=value pair; unknown keys are ignored.
func (f *fields) field(k uint64, val []byte) Outcome {
	var bit uint16
	switch k {
	case kIN:
		bit = seenIn
	case kSRC:
		bit = seenSrc
	case kDST:
		bit = seenDst
	case kPROTO:
		bit = seenProto
	case kSPT:
		bit = seenSPT
	case kDPT:
		bit = seenDPT
	case kLEN:
		bit = seenLen
	case kTTL, kHOPLIMIT:
		bit = seenTTL
	case kTYPE:
		bit = seenType
	case kCODE:
		bit = seenCode
	case kWINDOW:
		f.seen |= seenWindow
		return Parsed
	case kINVALID:
		// pvefw-logger's "PROTO=TCP LEN=12 INVALID=LEN": too short a header.
		if f.seen&seenProto != 0 {
			f.seen |= seenNoHeader
		}
		return Parsed
	case kFRAG:
		// pvefw-logger's spelling of a fragment offset, "FRAG=185".
		if v, ok := parseUint(val, 0xffff); ok && v != 0 {
			f.seen |= seenLaterFrag
		}
		return Parsed
	default:
		return Parsed
	}
	if f.seen&bit != 0 {
		return Parsed
	}
	f.seen |= bit
	switch bit {
	case seenIn:
		f.iface = val
	case seenSrc, seenDst:
		a, ok := parseAddr(val)
		if !ok {
			return BadAddress
		}
		if bit == seenSrc {
			f.src = a
		} else {
			f.dst = a
		}
	case seenProto:
		p, ok := parseProto(val)
		if !ok {
			return BadProto
		}
		f.proto = p
		if p == ProtoSCTP && string(val) == "SCTP" {
			f.seen |= seenSCTPName
		}
	case seenSPT, seenDPT:
		v, ok := parseUint(val, 0xffff)
		if !ok {
			return BadPort
		}
		if bit == seenSPT {
			f.spt = uint16(v)
		} else {
			f.dpt = uint16(v)
		}
	case seenLen:
		// IPv6 LEN is the payload length plus the 40-byte header, so it can
		// exceed 65535 by up to 40; Length saturates there.
		v, ok := parseUint(val, 0xffff+40)
		if !ok || (v > 0xffff && !f.src.Is6()) {
			return BadField
		}
		f.length = uint16(min(v, 0xffff))
	case seenTTL, seenType, seenCode:
		v, ok := parseUint(val, 0xff)
		if !ok {
			return BadField
		}
		switch bit {
		case seenTTL:
			f.ttl = uint8(v)
		case seenType:
			f.icmpType = uint8(v)
		default:
			f.icmpCode = uint8(v)
		}
	}
	return Parsed
}

// check applies the rules no single field can: what must be present, what
// must agree, and which values belong to the protocol. It clears values that
// do not belong (ports of ICMP, flags of UDP), so an Event never carries
// them.
func (f *fields) check() Outcome {
	if f.seen&(seenSrc|seenDst|seenProto) != seenSrc|seenDst|seenProto {
		return Truncated
	}
	if f.src.Is4() != f.dst.Is4() {
		return BadAddress
	}
	// ICMP's header is printed only for the family's own ICMP: nf_log
	// prints IPv4's protocol 58 (as nmap's protocol scan sends it) as a
	// bare "PROTO=58", and IPv6's protocol 1 as "PROTO=1".
	ownICMP := f.proto == ProtoICMP && f.src.Is4() || f.proto == ProtoICMPv6 && f.src.Is6()
	switch {
	case f.seen&(seenLaterFrag|seenNoHeader) != 0:
		// A complete record of a packet whose transport header it does
		// not hold: an event, with nothing known of that header.
		f.noL4 = true
		f.spt, f.dpt, f.flags, f.icmpType, f.icmpCode = 0, 0, 0, 0, 0
	case f.proto == ProtoTCP:
		if f.seen&(seenSPT|seenDPT) != seenSPT|seenDPT {
			return Truncated
		}
		// A record cut before the end of the flags would pass for a
		// NULL or FIN scan: nf_log ends them with URGP=, pvefw-logger
		// prints them after WINDOW= and up to the end of the line.
		if f.pve && f.seen&seenWindow == 0 || !f.pve && f.seen&seenURGP == 0 {
			return Truncated
		}
	case f.proto == ProtoUDP || f.proto == ProtoUDPLite:
		if f.seen&(seenSPT|seenDPT) != seenSPT|seenDPT {
			return Truncated
		}
	case f.proto == ProtoSCTP:
		// nf_log prints SCTP as "PROTO=132" with no ports, so a missing
		// pair is normal there; only "PROTO=SCTP", which the kernel
		// never writes, promises them (see field).
		if f.seen&(seenSPT|seenDPT) != seenSPT|seenDPT {
			if f.seen&seenSCTPName != 0 {
				return Truncated
			}
			f.spt, f.dpt = 0, 0
		}
	case ownICMP:
		// TYPE 0 is a real type (echo reply): a missing one must not
		// pass for it.
		if f.seen&(seenType|seenCode) != seenType|seenCode {
			return Truncated
		}
	}
	if !HasPorts(f.proto) {
		f.spt, f.dpt = 0, 0
	}
	if f.proto != ProtoTCP {
		f.flags = 0
	}
	if !ownICMP {
		f.icmpType, f.icmpCode = 0, 0
	}
	if reservedSource(f.src) {
		if f.src.IsUnspecified() {
			return UnspecifiedSource
		}
		return ReservedSource
	}
	return Parsed
}

// flagWord maps the TCP flag words nf_log prints after RES= to their bits;
// other words (DF, MF, CE, OPT, INCOMPLETE, ...) map to none.
func flagWord(k uint64) TCPFlags {
	switch k {
	case kwSYN:
		return SYN
	case kwACK:
		return ACK
	case kwFIN:
		return FIN
	case kwRST:
		return RST
	case kwPSH:
		return PSH
	case kwURG:
		return URG
	case kwECE:
		return ECE
	case kwCWR:
		return CWR
	}
	return 0
}

// parseProto reads PROTO's value: a name nf_log prints or a number.
func parseProto(b []byte) (uint8, bool) {
	switch string(b) {
	case "TCP":
		return ProtoTCP, true
	case "UDP":
		return ProtoUDP, true
	case "UDPLITE":
		return ProtoUDPLite, true
	case "ICMP":
		return ProtoICMP, true
	case "ICMPv6":
		return ProtoICMPv6, true
	case "SCTP":
		return ProtoSCTP, true
	case "AH":
		return 51, true
	case "ESP":
		return 50, true
	case "IGMP":
		return 2, true // pvefw-logger names it
	}
	v, ok := parseUint(b, 0xff)
	return uint8(v), ok
}

// parseUint reads a decimal number no larger than max.
func parseUint(b []byte, max uint32) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		c -= '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	if v > uint64(max) {
		return 0, false
	}
	return uint32(v), true
}

// parseAddr reads SRC or DST. IPv4-mapped addresses are unmapped, so an
// address has one form whichever family carried it; zoned addresses are
// refused, as no packet carries a zone.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 {
		return netip.Addr{}, false
	}
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	if a, ok := parseIPv6Full(b); ok {
		return a.Unmap(), true
	}
	if bytes.IndexByte(b, ':') < 0 {
		return netip.Addr{}, false
	}
	if bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	// No copy: ParseAddr keeps no reference to its input when it succeeds,
	// and the error (which would) is dropped here.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseIPv6Full reads the fully expanded form %pI6 prints
// ("2001:0db8:0000:...:0001"), the only one the kernel writes, without the
// generality of netip.ParseAddr. Any other form reports !ok and is left to
// it.
func parseIPv6Full(b []byte) (netip.Addr, bool) {
	if len(b) != 39 {
		return netip.Addr{}, false
	}
	var ip [16]byte
	// The digits are looked up, not told apart by branches, which random
	// hex digits would mispredict one time in three; a byte that is none
	// sets bad's high bits, checked once at the end.
	var bad byte
	for g := 0; g < 8; g++ {
		p := g * 5
		if g < 7 && b[p+4] != ':' {
			return netip.Addr{}, false
		}
		d0, d1, d2, d3 := hexDigits[b[p]], hexDigits[b[p+1]], hexDigits[b[p+2]], hexDigits[b[p+3]]
		bad |= d0 | d1 | d2 | d3
		ip[2*g], ip[2*g+1] = d0<<4|d1&15, d2<<4|d3&15
	}
	if bad > 15 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// hexDigits holds each byte's value as a hex digit, 255 for a byte that is
// none (unhex, as a table).
var hexDigits = func() (t [256]byte) {
	for c := range t {
		t[c] = unhex(byte(c))
	}
	return t
}()

// unhex returns a hex digit's value, or 255 for another byte.
func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 255
}

// parseIPv4 reads a dotted quad as %pI4 prints it: four decimal octets
// without leading zeros, which netip.ParseAddr refuses too.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	k := 0
	i := 0
	for k < 4 {
		start := i
		v := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
			if i-start > 3 {
				return netip.Addr{}, false
			}
		}
		if i == start || v > 255 || (i-start > 1 && b[start] == '0') {
			return netip.Addr{}, false
		}
		ip[k] = byte(v)
		k++
		if k < 4 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// reservedSource reports sources no scanner can send from and be answered:
// unspecified, "this network" (0.0.0.0/8), multicast and limited broadcast.
// Such packets are noise or spoofing; banning them would be meaningless.
// (check tells the unspecified address apart first: it is normal traffic.)
func reservedSource(a netip.Addr) bool {
	if a.Is4() {
		// 0.0.0.0/8 (the unspecified address too), 224.0.0.0/4 and
		// 255.255.255.255, read from the octets: every event asks.
		b := a.As4()
		return b[0] == 0 || b[0]&0xf0 == 0xe0 || b == [4]byte{255, 255, 255, 255}
	}
	return a.IsUnspecified() || a.IsMulticast()
}
