package scanner

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"
)

// Resets captured from Linux 6.18 answering a SYN to a closed port. The
// IPv4 checksum is the kernel's own; the IPv6 reset left the kernel with a
// partial checksum (pseudo-header only, for offload), completed here the way
// a NIC does, by summing the segment.
var knownSegments = []struct {
	name     string
	src, dst string
	hex      string
	checksum uint16
}{
	{"ipv4 rst", "198.51.100.1", "198.51.100.2", "0007b41c0000000006a7a9b250140000f6e80000", 0xf6e8},
	{"ipv4 rst 2", "198.51.100.1", "198.51.100.2", "0007a6f0000000001be073a05014000024ee0000", 0x24ee},
	{"ipv6 rst", "2001:db8:51::1", "2001:db8:51::2", "0007c10f000000004d72bae0501400008a500000", 0x8a50},
}

func TestChecksumKnownSegments(t *testing.T) {
	for _, tc := range knownSegments {
		t.Run(tc.name, func(t *testing.T) {
			seg, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
			if got := tcpChecksum(src, dst, seg); got != 0 {
				t.Errorf("checksum over the whole segment = %#04x, want 0", got)
			}
			binary.BigEndian.PutUint16(seg[16:], 0)
			if got := tcpChecksum(src, dst, seg); got != tc.checksum {
				t.Errorf("tcpChecksum = %#04x, want %#04x", got, tc.checksum)
			}
			// The pseudo-header matters: swapped addresses sum the
			// same, another address does not.
			if got := tcpChecksum(dst, src, seg); got != tc.checksum {
				t.Errorf("swapped addresses: %#04x, want %#04x", got, tc.checksum)
			}
			if got := tcpChecksum(src.Next(), dst, seg); got == tc.checksum {
				t.Errorf("another source gave the same checksum %#04x", got)
			}
		})
	}
}

// RFC 1071 section 3 works this example: the one's complement sum of
// 0001 f203 f4f5 f6f7 is ddf2.
func TestSum16RFC1071(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := fold(sum16(b, 0)); got != 0xddf2 {
		t.Errorf("sum = %#04x, want 0xddf2", got)
	}
	// An odd trailing byte is padded with zero.
	if got, want := fold(sum16([]byte{0x12, 0x34, 0x56}, 0)), uint16(0x1234+0x5600); got != want {
		t.Errorf("odd sum = %#04x, want %#04x", got, want)
	}
}

func TestAppendSegment(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"198.51.100.2", "198.51.100.1"},
		{"2001:db8:51::2", "2001:db8:51::1"},
	} {
		src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
		for _, flags := range []uint8{SYN, FIN, NULL, XMAS, ACK | RST} {
			prefix := []byte{0xaa}
			b := appendSegment(prefix, src, dst, 40001, 22, 0x01020304, 0x0a0b0c0d, flags)
			if len(b) != 1+tcpHeaderLen || b[0] != 0xaa {
				t.Fatalf("appendSegment returned %x, want the prefix and 20 bytes", b)
			}
			seg := b[1:]
			h, ok := parseTCP(seg)
			if !ok || h != (tcpHeader{srcPort: 40001, dstPort: 22, flags: flags}) {
				t.Errorf("%s flags %#02x: parsed %+v, %v", tc.src, flags, h, ok)
			}
			if seq, ack := binary.BigEndian.Uint32(seg[4:]), binary.BigEndian.Uint32(seg[8:]); seq != 0x01020304 || ack != 0x0a0b0c0d {
				t.Errorf("seq %#x ack %#x", seq, ack)
			}
			if seg[12] != 5<<4 {
				t.Errorf("data offset byte %#02x, want 0x50", seg[12])
			}
			if got := tcpChecksum(src, dst, seg); got != 0 {
				t.Errorf("%s flags %#02x: checksum does not verify (%#04x)", tc.src, flags, got)
			}
		}
	}
	if _, ok := parseTCP(make([]byte, tcpHeaderLen-1)); ok {
		t.Errorf("parseTCP accepted a short segment")
	}
}

func TestXMASIsFINPSHURG(t *testing.T) {
	if XMAS != 0x29 || NULL != 0 || SYN != 0x02 || RST != 0x04 || ACK != 0x10 || CWR != 0x80 {
		t.Errorf("flag values differ from the TCP header: XMAS=%#x", XMAS)
	}
}
