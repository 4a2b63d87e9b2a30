package parsers

// Outcome says what a parser made of one input: an event, a line that is not
// firewall evidence (Skipped), a record of normal traffic that is no evidence
// either (UnspecifiedSource), or a firewall record that is broken, with the
// reason. Malformed records are counted, never taken as data.
type Outcome uint8

// The outcomes. Every value from BadTime on is a malformed record.
const (
	// Parsed: the Event was filled in.
	Parsed Outcome = iota
	// Skipped: not a firewall log record (another kernel or daemon message).
	Skipped
	// UnspecifiedSource: a well-formed record whose source is 0.0.0.0 or ::,
	// as a DHCP discover, an IGMP report or an IPv6 duplicate address probe
	// carries before its sender has an address. Normal traffic, but no
	// address to hold to account: counted apart, neither evidence nor broken.
	UnspecifiedSource
	// BadTime: the timestamp could not be read.
	BadTime
	// BadAddress: SRC or DST is not a valid IP address, or they are of
	// different families.
	BadAddress
	// BadPort: SPT or DPT is not a number in 0-65535.
	BadPort
	// BadProto: PROTO is neither a known name nor a number in 0-255.
	BadProto
	// BadField: another numeric field (LEN, TTL, HOPLIMIT, TYPE, CODE) is out
	// of range or not a number.
	BadField
	// Truncated: a required field is missing, as when a line was cut short:
	// SRC, DST, PROTO, the ports of TCP/UDP, ICMP's TYPE and CODE, or the
	// end of TCP's flags (URGP), without which a cut record would pass for a
	// NULL scan.
	Truncated
	// ReservedSource: the source is multicast, broadcast, in 0.0.0.0/8 but
	// not 0.0.0.0, or otherwise one no sender can use.
	ReservedSource

	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	Parsed:            "parsed",
	Skipped:           "skipped",
	UnspecifiedSource: "unspecified-source",
	BadTime:           "bad-time",
	BadAddress:        "bad-address",
	BadPort:           "bad-port",
	BadProto:          "bad-proto",
	BadField:          "bad-field",
	Truncated:         "truncated",
	ReservedSource:    "reserved-source",
}

// NumOutcomes is the number of distinct outcomes, for counter arrays indexed
// by Outcome.
const NumOutcomes = int(numOutcomes)

// Malformed reports whether o is one of the malformed reasons.
func (o Outcome) Malformed() bool { return o >= BadTime && o < numOutcomes }

// String returns the outcome's stable name, used in summaries and metrics.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}
