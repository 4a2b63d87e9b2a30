package rules

import (
	"fmt"
	"strings"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// FlagClass is a class of TCP flag combinations a rule can match. Every
// combination of the six flags FIN SYN RST PSH ACK URG is in exactly one
// class (ECE and CWR are ignored: they only say the sender speaks ECN), and
// the kernel's first strike matches the same combinations, derived from
// the same table (FlagCombinations), so the daemon and the kernel never
// disagree on what a probe is.
//
// The classes follow what a closed port answers and who else sends such a
// segment. Every segment without RST gets an answer from a closed port (a
// reset), so each class but rst maps ports. Only the first SYN and RST are
// sent without ACK by a real TCP stack, so the classes without ACK (null,
// fin, xmas, synfin, odd) are forged probes and nothing else; segments with
// ACK (ack, finack, synack) also come late from connections the firewall
// has forgotten, so they need a few distinct ports before they ban.
type FlagClass uint16

// The flag classes. Their names in sentry.yaml are given by String.
const (
	// ClassSYN: SYN without FIN, RST or ACK (PSH and URG allowed): a
	// connection attempt, as nmap -sS and -sT send, and the SYN probes
	// with extra flags (--scanflags SYNPSH, SYN+URG, SYN+ECE+CWR).
	ClassSYN FlagClass = 1 << iota
	// ClassNull: no flag at all (nmap -sN).
	ClassNull
	// ClassFIN: FIN alone (nmap -sF).
	ClassFIN
	// ClassXmas: FIN, PSH and URG, nothing else (nmap -sX).
	ClassXmas
	// ClassACK: ACK without SYN, FIN or RST (PSH, URG allowed): nmap -sA
	// and -sW, and late segments of connections the firewall forgot.
	ClassACK
	// ClassSYNFIN: SYN and FIN together, without RST (--scanflags SYNFIN):
	// no TCP stack sends it.
	ClassSYNFIN
	// ClassOdd: no SYN, ACK or RST, and not null, fin or xmas: PSH alone,
	// URG alone, FIN+URG, FIN+PSH, PSH+URG (--scanflags PSH, FINURG). No
	// TCP stack sends one.
	ClassOdd
	// ClassFINACK: FIN and ACK without SYN or RST (PSH, URG allowed):
	// Maimon's scan (nmap -sM), and late FINs of forgotten connections.
	ClassFINACK
	// ClassSYNACK: SYN and ACK without FIN or RST: --scanflags SYNACK, and
	// the backscatter of connections forged in this host's name.
	ClassSYNACK
	// ClassRST: any combination with RST. No port answers a reset, so it
	// maps nothing; resets come late from forgotten connections and as
	// backscatter. No default rule uses it.
	ClassRST

	numClasses = 10
	// AllClasses is every class.
	AllClasses FlagClass = 1<<numClasses - 1
)

// FlagMask is the six flags classes are made of; ECE and CWR are outside.
const FlagMask = parsers.FIN | parsers.SYN | parsers.RST | parsers.PSH | parsers.ACK | parsers.URG

var classNames = [numClasses]string{"syn", "null", "fin", "xmas", "ack", "synfin", "odd", "finack", "synack", "rst"}

// classTable is the classification itself, one entry per combination of
// the six flags. Classify reads it; FlagCombinations inverts it for the
// kernel. It is built once and never written after.
var classTable = func() (t [FlagMask + 1]FlagClass) {
	for f := range t {
		t[f] = classOf(parsers.TCPFlags(f))
	}
	return t
}()

// classOf is the one definition of the classes (see FlagClass).
func classOf(f parsers.TCPFlags) FlagClass {
	has := func(b parsers.TCPFlags) bool { return f&b != 0 }
	switch {
	case has(parsers.RST):
		return ClassRST
	case has(parsers.SYN) && has(parsers.FIN):
		return ClassSYNFIN
	case has(parsers.SYN) && has(parsers.ACK):
		return ClassSYNACK
	case has(parsers.SYN):
		return ClassSYN
	case has(parsers.FIN) && has(parsers.ACK):
		return ClassFINACK
	case has(parsers.ACK):
		return ClassACK
	case f == 0:
		return ClassNull
	case f == parsers.FIN:
		return ClassFIN
	case f == parsers.FIN|parsers.PSH|parsers.URG:
		return ClassXmas
	}
	return ClassOdd
}

// Classify returns the class of a TCP flags byte. ECE and CWR are ignored.
func Classify(f parsers.TCPFlags) FlagClass { return classTable[f&FlagMask] }

// FlagCombinations returns, in ascending order, every combination of the
// six flags (ECE and CWR clear) whose class is in c: what the kernel must
// match, under the mask FlagMask, to select the same probes as a rule with
// classes c.
func FlagCombinations(c FlagClass) []parsers.TCPFlags {
	var out []parsers.TCPFlags
	for f, cl := range classTable {
		if cl&c != 0 {
			out = append(out, parsers.TCPFlags(f))
		}
	}
	return out
}

// ParseFlagClass returns the class named name (see String).
func ParseFlagClass(name string) (FlagClass, error) {
	for i, n := range classNames {
		if n == name {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("unknown TCP flag class %q (want %s)", name, strings.Join(classNames[:], ", "))
}

// String returns the class names in the set, comma separated: syn, null,
// fin, xmas, ack, synfin, odd, finack, synack, rst.
func (c FlagClass) String() string {
	var names []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}
