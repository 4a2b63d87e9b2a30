package parsers

import (
	"bytes"
	"net/netip"
)

// fast reads a record printed in nf_log's own order, the one nearly every
// line of a kernel log has:
//
//	IN= OUT= [MAC=] SRC= DST= LEN= TOS= PREC= TTL= ID= [CE] [DF] [MF] PROTO=TCP SPT= DPT= WINDOW= RES= [flags] URGP=
//	IN= OUT= [MAC=] SRC= DST= LEN= TC= HOPLIMIT= FLOWLBL= PROTO=UDP SPT= DPT=
//	... PROTO=ICMP TYPE= CODE=
//
// expecting each key where it comes instead of reading and looking up every
// key. It reports false at the first thing it does not expect (another key,
// an extension header, a value that does not parse, two spaces), leaving f
// to be reset and read by parse. Where it reports true, f holds what parse
// would have made of b, field for field and bit for bit: it stops where
// parse's complete or URGP would stop, stores values with the same
// functions, and accepts only words parse ignores or reads as flags.
// (TestFastPathAgrees and FuzzFastPath hold it to that.)
//
// dst is the destination address of the last record read this way: a host
// logs packets to few addresses of its own, so the next record's DST= is
// mostly the same text, compared rather than read again.
func (f *fields) fast(b []byte, dst *addrMemo) bool {
	n := len(b)
	if n < 3 || string(b[:3]) != keyIN {
		return false
	}
	i := valueEnd(b, 3)
	f.iface = b[3:i]
	if !at(b, i, keyOUT) {
		return false
	}
	i = valueEnd(b, i+len(keyOUT))
	if at(b, i, " MAC=") {
		// The longest value: IndexByte pays off here, as in parse.
		i += len(" MAC=")
		if j := bytes.IndexByte(b[i:], ' '); j >= 0 {
			i += j
		} else {
			i = n
		}
	}
	if !at(b, i, keySRC) {
		return false
	}
	src, i, ok := addrAt(b, i+len(keySRC))
	if !ok || !at(b, i, " DST=") {
		return false
	}
	dstAddr, i, ok := dst.addrAt(b, i+len(" DST="))
	if !ok || !at(b, i, " LEN=") {
		return false
	}
	length, i, ok := uintAt(b, i+len(" LEN="), 0xffff+40)
	if !ok || length > 0xffff && !src.Is6() {
		return false
	}
	var ttl uint32
	if src.Is4() {
		// nf_log prints TOS and PREC as 0x and two hex digits: when they
		// are, the next key is at a fixed place.
		if at(b, i, " TOS=0x") && i+19 <= n && b[i+7] != ' ' && b[i+8] != ' ' &&
			string(b[i+9:i+17]) == " PREC=0x" && b[i+17] != ' ' && b[i+18] != ' ' {
			i += 19
		} else {
			if i, ok = skipKey(b, i, " TOS="); !ok {
				return false
			}
			if i, ok = skipKey(b, i, " PREC="); !ok {
				return false
			}
		}
		if !at(b, i, " TTL=") {
			return false
		}
		if ttl, i, ok = uintAt(b, i+len(" TTL="), 0xff); !ok {
			return false
		}
		if i, ok = skipKey(b, i, " ID="); !ok {
			return false
		}
		// nf_log's IP flags: words parse reads as no TCP flag.
		for at(b, i, " CE ") || at(b, i, " DF ") || at(b, i, " MF ") {
			i += 3
		}
	} else {
		if i, ok = skipKey(b, i, " TC="); !ok || !at(b, i, " HOPLIMIT=") {
			return false
		}
		if ttl, i, ok = uintAt(b, i+len(" HOPLIMIT="), 0xff); !ok {
			return false
		}
		if i, ok = skipKey(b, i, " FLOWLBL="); !ok {
			return false
		}
	}
	if !at(b, i, " PROTO=") {
		return false
	}
	v := i + len(" PROTO=")
	i = valueEnd(b, v)
	var proto uint8
	switch string(b[v:i]) {
	case "TCP":
		proto = ProtoTCP
	case "UDP":
		proto = ProtoUDP
	case "ICMP":
		proto = ProtoICMP
	case "ICMPv6":
		proto = ProtoICMPv6
	default:
		return false
	}
	seen := seenIn | seenSrc | seenDst | seenLen | seenTTL | seenProto
	if proto == ProtoICMP || proto == ProtoICMPv6 {
		// parse is complete once it has TYPE and CODE.
		if !at(b, i, " TYPE=") {
			return false
		}
		typ, i, ok := uintAt(b, i+len(" TYPE="), 0xff)
		if !ok || !at(b, i, " CODE=") {
			return false
		}
		code, _, ok := uintAt(b, i+len(" CODE="), 0xff)
		if !ok {
			return false
		}
		f.icmpType, f.icmpCode = uint8(typ), uint8(code)
		seen |= seenType | seenCode
	} else {
		if !at(b, i, " SPT=") {
			return false
		}
		spt, i, ok := uintAt(b, i+len(" SPT="), 0xffff)
		if !ok || !at(b, i, " DPT=") {
			return false
		}
		dpt, i, ok := uintAt(b, i+len(" DPT="), 0xffff)
		if !ok {
			return false
		}
		f.spt, f.dpt = uint16(spt), uint16(dpt)
		seen |= seenSPT | seenDPT
		if proto == ProtoTCP {
			// parse reads TCP up to URGP=, which ends the flags.
			if i, ok = skipKey(b, i, " WINDOW="); !ok {
				return false
			}
			if at(b, i, " RES=0x") && i+9 <= n && b[i+7] != ' ' && b[i+8] != ' ' {
				i += 9 // as nf_log prints it
			} else if i, ok = skipKey(b, i, " RES="); !ok {
				return false
			}
			var flags TCPFlags
			for !at(b, i, " URGP=") {
				if i+4 > n || b[i] != ' ' || i+4 < n && b[i+4] != ' ' {
					return false
				}
				fl := flagWord(uint64(b[i+1])<<16 | uint64(b[i+2])<<8 | uint64(b[i+3]))
				if fl == 0 {
					return false
				}
				flags |= fl
				i += 4
			}
			f.flags = flags
			seen |= seenWindow | seenURGP
		}
	}
	f.seen = seen
	f.src, f.dst = src, dstAddr
	f.length = uint16(min(length, 0xffff))
	f.ttl = uint8(ttl)
	f.proto = proto
	return true
}

// at reports whether b[i:] starts with s.
func at(b []byte, i int, s string) bool {
	return len(b)-i >= len(s) && string(b[i:i+len(s)]) == s
}

// valueEnd returns the index of the space that ends the value starting at
// b[i], or len(b).
func valueEnd(b []byte, i int) int {
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return i
}

// skipKey steps over " KEY=value" at b[i:], whose value is not read.
func skipKey(b []byte, i int, key string) (int, bool) {
	if !at(b, i, key) {
		return i, false
	}
	return valueEnd(b, i+len(key)), true
}

// uintAt reads the decimal value at b[i:] as parseUint reads a whole
// value, returning the index of the space after it: a value that does not
// end in a space (or the record) is not a number.
func uintAt(b []byte, i int, max uint32) (uint32, int, bool) {
	start := i
	var v uint64
	for ; i < len(b) && i-start <= 10; i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + uint64(c)
	}
	if i == start || i-start > 10 || v > uint64(max) || i < len(b) && b[i] != ' ' {
		return 0, 0, false
	}
	return uint32(v), i, true
}

// addrAt reads the address at b[i:] as parseAddr reads a whole value,
// returning the index of the space after it. A dotted quad is read in
// place; anything else is left to parseAddr.
func addrAt(b []byte, i int) (netip.Addr, int, bool) {
	// The octets are gathered in a register: stored byte by byte and
	// loaded as one word, they would stall the load.
	var ip uint32
	j := i
	for k := range 4 {
		if k > 0 {
			if j >= len(b) || b[j] != '.' {
				goto general
			}
			j++
		}
		// One to three digits, no leading zero, at most 255.
		if j >= len(b) {
			goto general
		}
		v := uint(b[j] - '0')
		if v > 9 {
			goto general
		}
		j++
		if j < len(b) {
			if d := uint(b[j] - '0'); d <= 9 {
				if v == 0 {
					goto general
				}
				v = v*10 + d
				j++
				if j < len(b) {
					if d := uint(b[j] - '0'); d <= 9 {
						v = v*10 + d
						j++
						if v > 255 {
							goto general
						}
					}
				}
			}
		}
		ip = ip<<8 | uint32(v)
	}
	if j == len(b) || b[j] == ' ' {
		return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), j, true
	}
general:
	end := valueEnd(b, i)
	a, ok := parseAddr(b[i:end])
	return a, end, ok
}

// addrMemo is an address read at one place of records (see fields.fast),
// with the text it was read from.
type addrMemo struct {
	text [39]byte // an IPv6 address in full, the longest nf_log prints
	n    uint8    // the text's length; 0 when none is held
	addr netip.Addr
}

// addrAt is addrAt(b, i), for an address that is most often the same text
// as the last one it read: that text, followed by a space or the record's
// end, is that address without reading it again.
func (m *addrMemo) addrAt(b []byte, i int) (netip.Addr, int, bool) {
	if n := int(m.n); n > 0 && len(b)-i >= n && string(b[i:i+n]) == string(m.text[:n]) && (i+n == len(b) || b[i+n] == ' ') {
		return m.addr, i + n, true
	}
	a, j, ok := addrAt(b, i)
	if ok && j-i <= len(m.text) {
		m.n = uint8(copy(m.text[:], b[i:j]))
		m.addr = a
	}
	return a, j, ok
}
