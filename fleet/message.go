package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Kind says what a Message asks of the hosts that receive it.
type Kind uint8

// The kinds of Message.
const (
	// KindBan asks every host to drop Key until Until.
	KindBan Kind = iota + 1
	// KindPardon asks every host to lift its bans of Key decided before
	// Decided, and to forget the evidence behind them.
	KindPardon
)

// String returns "ban" or "pardon".
func (k Kind) String() string {
	switch k {
	case KindBan:
		return "ban"
	case KindPardon:
		return "pardon"
	}
	return "unknown"
}

// Message is one ban or pardon as it travels between hosts: one message a
// key, on the subject Subject(bucket, Origin, Key).
type Message struct {
	Kind Kind
	// Origin names the host that decided (fleet.name).
	Origin string
	// Key is the banned or pardoned prefix, masked; IPv4 keys are IPv4,
	// never IPv4-mapped.
	Key netip.Prefix
	// Address is the address that crossed the threshold (a ban's).
	Address netip.Addr
	// Rule is the rule whose threshold was crossed (a ban's).
	Rule string
	// Ban is the ban's full length as the origin decided it.
	Ban time.Duration
	// Decided is when the origin decided, by its clock.
	Decided time.Time
	// Until is when the ban ends; for a pardon, when the pardon may be
	// forgotten (no ban it overrides outlives it).
	Until time.Time
	// Offence counts the origin's bans of the key, this one included.
	Offence uint32
	// Ports are the first destination ports of the evidence, Hits its
	// packets.
	Ports []uint16
	Hits  uint32

	// Set by Receive from the server's metadata; zero on a message built
	// locally.

	// Stored is when the server stored the message: a time the
	// publisher cannot forge, which the remote valve counts by.
	Stored time.Time
	// Seq is the message's stream sequence.
	Seq uint64
	// Pending is how many messages the receiver still had to be
	// delivered when this one arrived: 0 once it has caught up.
	Pending uint64
}

// Limits of what a message may carry; anything beyond is invalid.
const (
	// MaxNameLen bounds an origin name: the element comment
	// "sentry-nflog fleet:<name>" stays far below the kernel's 128-byte
	// comment limit, and the name is one subject token.
	MaxNameLen = 64
	// maxMessageSize bounds a message's encoding.
	maxMessageSize = 2048
	maxPorts       = 64
	maxRuleLen     = 64
	wireVersion    = 1
)

// DefaultBucket is the stream's name when fleet.bucket is not set.
const DefaultBucket = "sentry_bans"

var (
	reName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	reBucket = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	reRule   = regexp.MustCompile(`^[\x21-\x7e]{1,64}$`)
)

// CheckName returns an error unless name can be an origin: 1-64 letters,
// digits, '-' or '_' (one NATS subject token, which per-host permissions
// select on).
func CheckName(name string) error {
	if !reName.MatchString(name) {
		return fmt.Errorf("%q is not a valid origin name: want 1-%d letters, digits, '-' or '_'", name, MaxNameLen)
	}
	return nil
}

// CheckBucket returns an error unless name can name the stream: 1-32
// letters, digits, '-' or '_'. It is also the first token of every
// subject.
func CheckBucket(name string) error {
	if !reBucket.MatchString(name) {
		return fmt.Errorf("%q is not a valid bucket name: want 1-32 letters, digits, '-' or '_'", name)
	}
	return nil
}

// Subject is where the message of origin about key lives: one subject per
// (origin, key), "<bucket>.<origin>.<key token>", so that the stream keeps
// the last message of each, and per-host credentials can allow publishing
// under "<bucket>.<origin>.>" only.
func Subject(bucket, origin string, key netip.Prefix) string {
	return bucket + "." + origin + "." + KeyToken(key)
}

// KeyToken writes key as one subject token: "203-0-113-7_32",
// "2001-db8-bad-1--_64". It is injective over masked keys: an IPv4 token
// never holds "--", an IPv6 one with three dashes or fewer always does.
func KeyToken(key netip.Prefix) string {
	a := key.Addr().String()
	if key.Addr().Is4() {
		a = strings.ReplaceAll(a, ".", "-")
	} else {
		a = strings.ReplaceAll(a, ":", "-")
	}
	return a + "_" + strconv.Itoa(key.Bits())
}

// msgID is the id JetStream deduplicates a publish by: the same decision
// always carries the same id, so a publish retried after a lost ack, a
// server restart or a leader change is stored once.
func msgID(m *Message) string {
	return m.Kind.String() + "." + m.Origin + "." + KeyToken(m.Key) + "." + strconv.FormatInt(m.Decided.UnixNano(), 10)
}

// FromDecision is the message of one of the daemon's own ban decisions,
// decided at now.
func FromDecision(origin string, d *rules.Decision, now time.Time) Message {
	return Message{
		Kind: KindBan, Origin: origin, Key: d.Key, Address: d.Source, Rule: d.Rule,
		Ban: d.Ban, Decided: now, Until: now.Add(d.Ban), Offence: d.Offence,
		Ports: d.PortList(), Hits: d.Hits,
	}
}

// wire is the JSON a message travels as; times are RFC 3339 with
// nanoseconds, readable with the nats tool.
type wire struct {
	V       int      `json:"v"`
	Kind    string   `json:"kind"`
	Origin  string   `json:"origin"`
	Key     string   `json:"key"`
	Address string   `json:"address,omitempty"`
	Rule    string   `json:"rule,omitempty"`
	BanMS   int64    `json:"ban_ms,omitempty"`
	Decided string   `json:"decided"`
	Until   string   `json:"until"`
	Offence uint32   `json:"offence,omitempty"`
	Ports   []uint16 `json:"ports,omitempty"`
	Hits    uint32   `json:"hits,omitempty"`
}

// Encode returns the message's JSON.
func (m *Message) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	w := wire{
		V: wireVersion, Kind: m.Kind.String(), Origin: m.Origin, Key: m.Key.String(), Rule: m.Rule,
		BanMS: m.Ban.Milliseconds(), Decided: m.Decided.UTC().Format(time.RFC3339Nano),
		Until: m.Until.UTC().Format(time.RFC3339Nano), Offence: m.Offence, Ports: m.Ports, Hits: m.Hits,
	}
	if m.Address.IsValid() {
		w.Address = m.Address.String()
	}
	return json.Marshal(&w)
}

// ErrInvalid is wrapped by every error of Decode: a message no host acts
// on.
var ErrInvalid = errors.New("invalid fleet message")

// Decode reads a message published on subject of the stream bucket. The
// origin inside must be the subject's origin token and the key its key
// token: credentials that allow a host to publish only under its own
// origin then also bind what it can claim.
func Decode(bucket, subject string, data []byte) (Message, error) {
	var m Message
	if len(data) > maxMessageSize {
		return m, fmt.Errorf("%w: %d bytes", ErrInvalid, len(data))
	}
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if w.V != wireVersion {
		return m, fmt.Errorf("%w: version %d", ErrInvalid, w.V)
	}
	switch w.Kind {
	case "ban":
		m.Kind = KindBan
	case "pardon":
		m.Kind = KindPardon
	default:
		return m, fmt.Errorf("%w: kind %q", ErrInvalid, w.Kind)
	}
	key, err := netip.ParsePrefix(w.Key)
	if err != nil {
		return m, fmt.Errorf("%w: key %q", ErrInvalid, w.Key)
	}
	m.Origin, m.Key, m.Rule, m.Offence, m.Hits = w.Origin, key, w.Rule, w.Offence, w.Hits
	m.Ban = time.Duration(w.BanMS) * time.Millisecond
	if w.Address != "" {
		if m.Address, err = netip.ParseAddr(w.Address); err != nil {
			return m, fmt.Errorf("%w: address %q", ErrInvalid, w.Address)
		}
	}
	if m.Decided, err = time.Parse(time.RFC3339Nano, w.Decided); err != nil {
		return m, fmt.Errorf("%w: decided %q", ErrInvalid, w.Decided)
	}
	if m.Until, err = time.Parse(time.RFC3339Nano, w.Until); err != nil {
		return m, fmt.Errorf("%w: until %q", ErrInvalid, w.Until)
	}
	if len(w.Ports) > 0 {
		m.Ports = w.Ports
	}
	if err := m.check(); err != nil {
		return m, err
	}
	if want := Subject(bucket, m.Origin, m.Key); subject != want {
		return m, fmt.Errorf("%w: %s %s from %s published on %s, want %s", ErrInvalid, m.Kind, m.Key, m.Origin, subject, want)
	}
	return m, nil
}

// check validates a message, in what it says and in its bounds.
func (m *Message) check() error {
	if err := CheckName(m.Origin); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	k := m.Key
	if !k.IsValid() || k.Addr().Zone() != "" || k.Addr().Is4In6() || k.Masked() != k {
		return fmt.Errorf("%w: key %v: want a masked prefix, IPv4 as IPv4", ErrInvalid, k)
	}
	if m.Address.IsValid() && !k.Contains(m.Address) {
		return fmt.Errorf("%w: address %s outside key %s", ErrInvalid, m.Address, k)
	}
	if m.Rule != "" && !reRule.MatchString(m.Rule) {
		return fmt.Errorf("%w: rule name: want 1-%d printable characters", ErrInvalid, maxRuleLen)
	}
	if len(m.Ports) > maxPorts {
		return fmt.Errorf("%w: %d ports", ErrInvalid, len(m.Ports))
	}
	if m.Decided.IsZero() || !m.Until.After(m.Decided) {
		return fmt.Errorf("%w: until %v not after decided %v", ErrInvalid, m.Until, m.Decided)
	}
	if m.Kind == KindBan && m.Ban <= 0 {
		return fmt.Errorf("%w: ban length %v", ErrInvalid, m.Ban)
	}
	return nil
}
