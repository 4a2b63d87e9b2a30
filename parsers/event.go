package parsers

import (
	"net/netip"
	"time"
)

// IP protocol numbers carried in Event.Proto.
const (
	ProtoICMP    uint8 = 1
	ProtoTCP     uint8 = 6
	ProtoUDP     uint8 = 17
	ProtoICMPv6  uint8 = 58
	ProtoSCTP    uint8 = 132
	ProtoUDPLite uint8 = 136
)

// TCPFlags is the TCP flags byte, bit for bit as in the TCP header, so a
// decoded header can be stored without translation.
type TCPFlags uint8

// The TCP flag bits, in header order.
const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

var flagWords = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String lists the set flags in the order nf_log prints them
// (CWR ECE URG ACK PSH RST SYN FIN), space separated; "" for none.
func (f TCPFlags) String() string {
	var b []byte
	for i := 7; i >= 0; i-- {
		if f&(1<<i) != 0 {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = append(b, flagWords[i]...)
		}
	}
	return string(b)
}

// Event is one packet seen by the firewall's logging rule, from whichever
// input. It is a small value: copy it freely. Strings in it (Prefix, InIface)
// are interned by the parser that made them and safe to keep.
type Event struct {
	// Time is when the kernel logged the packet (wall clock).
	Time time.Time
	// Src and Dst are the packet's addresses. IPv4 addresses are plain 4-byte
	// addresses, never IPv4-mapped IPv6.
	Src, Dst netip.Addr
	// Prefix is the log prefix of the rule that logged the packet, with
	// trailing spaces and the colon firewalld adds removed ("SENTRY",
	// "[UFW BLOCK]", "filter_IN_public_REJECT"); "" when the rule set none.
	Prefix string
	// InIface is the input interface name, "" when unknown.
	InIface string
	// SrcPort and DstPort are the TCP/UDP/SCTP ports, 0 for other protocols.
	SrcPort, DstPort uint16
	// Length is the IP packet length (total length, header included).
	Length uint16
	// Proto is the IP protocol number (ProtoTCP, ProtoUDP, ...).
	Proto uint8
	// Flags holds the TCP flags; 0 for other protocols.
	Flags TCPFlags
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	// ICMPType and ICMPCode are set for ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
	// NoL4Header is set when the packet's transport header was not seen: a
	// fragment after the first, or a header the kernel could not read
	// ("INCOMPLETE [8 bytes]"). SrcPort, DstPort, Flags, ICMPType and
	// ICMPCode are then unknown rather than zero, so such an event must not
	// be taken for port 0 or for a TCP packet without flags (a NULL scan).
	NoL4Header bool
}

// HasPorts reports whether the IP protocol's packets carry ports (TCP, UDP,
// UDP-Lite, SCTP): an event of another protocol has none, and a rule on
// ports cannot match it.
func HasPorts(p uint8) bool {
	return p == ProtoTCP || p == ProtoUDP || p == ProtoUDPLite || p == ProtoSCTP
}

// IsIPv6 reports whether the event's source is an IPv6 address.
func (e *Event) IsIPv6() bool { return e.Src.Is6() }

// ProtoName returns the nf_log spelling of an IP protocol number
// ("TCP", "UDP", "ICMP", "ICMPv6", ...) or "" for one without a name.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	case ProtoSCTP:
		return "SCTP"
	case ProtoUDPLite:
		return "UDPLITE"
	}
	return ""
}
