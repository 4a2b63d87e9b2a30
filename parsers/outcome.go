package parsers

// Outcome says what a parser made of one input: an event, a line that is not
// firewall evidence (Skipped), or a firewall record that is broken, with the
// reason. Malformed records are counted, never taken as data.
type Outcome uint8

// The outcomes. Every value from BadTime on is a malformed record.
const (
	// Parsed: the Event was filled in.
	Parsed Outcome = iota
	// Skipped: not a firewall log record (another kernel or daemon message).
	Skipped
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
	// Truncated: a required field (SRC, DST, PROTO, or the ports of TCP/UDP)
	// is missing, as when a line was cut short.
	Truncated
	// ReservedSource: the source is unspecified, multicast, broadcast or
	// otherwise one no real scanner can send from.
	ReservedSource

	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	Parsed:         "parsed",
	Skipped:        "skipped",
	BadTime:        "bad-time",
	BadAddress:     "bad-address",
	BadPort:        "bad-port",
	BadProto:       "bad-proto",
	BadField:       "bad-field",
	Truncated:      "truncated",
	ReservedSource: "reserved-source",
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
