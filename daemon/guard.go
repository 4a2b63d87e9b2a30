package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The checks every ban of this host passes, whoever asks for it: the
// daemon's own (when it puts one back from its state), a manual one
// (`sentry-nflog block`, when the command inserts it and whenever the
// daemon restores it). They live here, once, so the command and the
// daemon cannot disagree.

// Where an ignored prefix comes from (Ignored.From).
const (
	FromIgnoreList = "ignore" // a prefix written in the ignore list
	FromSelf       = "self"
	FromGateways   = "gateways"
	FromResolvers  = "resolvers"
)

// Ignored is one prefix this host never bans, with where it comes from: a
// prefix of the ignore list, or the word of it that resolved to it.
type Ignored struct {
	Prefix netip.Prefix
	From   string
}

// ResolveIgnore returns cfg's ignore list as this host has it: the fixed
// prefixes, then what the words self, gateways and resolvers resolve to on
// host (nil host: the prefixes alone). A word host cannot resolve is left
// out and named in errs (a *WordError each); the rest is returned all
// the same.
func ResolveIgnore(cfg *config.Config, host Host) (list []Ignored, errs []error) {
	for _, p := range cfg.Ignore.Prefixes {
		list = append(list, Ignored{Prefix: p, From: FromIgnoreList})
	}
	if host == nil {
		return list, nil
	}
	for _, w := range []struct {
		on   bool
		word string
		f    func() ([]netip.Prefix, error)
	}{
		{cfg.Ignore.Self, FromSelf, host.Self},
		{cfg.Ignore.Gateways, FromGateways, host.Gateways},
		{cfg.Ignore.Resolvers, FromResolvers, host.Resolvers},
	} {
		if !w.on {
			continue
		}
		ps, err := w.f()
		if err != nil {
			errs = append(errs, &WordError{Word: w.word, Err: err})
			continue
		}
		for _, p := range ps {
			list = append(list, Ignored{Prefix: p, From: w.word})
		}
	}
	return list, errs
}

// WordError is a word of the ignore list the host could not resolve.
type WordError struct {
	Word string
	Err  error
}

func (e *WordError) Error() string { return fmt.Sprintf("ignore word %s: %v", e.Word, e.Err) }
func (e *WordError) Unwrap() error { return e.Err }

// prefixesOf returns the prefixes of an ignore list.
func prefixesOf(list []Ignored) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, ig := range list {
		out[i] = ig.Prefix
	}
	return out
}

// MaxBlockKeys bounds the ban keys one manual ban may expand to (an IPv4
// prefix wider than bans.ipv4_prefix, with --force, is one key per
// network of that length), and the addresses one `block` takes.
const MaxBlockKeys = 10000

// Guard holds the checks a ban must pass on this host: the resolved
// ignore list and the ban key lengths. Its zero value refuses nothing but
// invalid keys; make it with NewGuard.
type Guard struct {
	ignore []Ignored
	v4, v6 int
	// agg4 and agg6 are the aggregates' wider key lengths, 0 when off.
	agg4, agg6 int
}

// NewGuard returns the checks for the resolved ignore list (ResolveIgnore)
// and the ban key lengths of the engine's config: its bans' and its
// aggregates'.
func NewGuard(ignore []Ignored, engine rules.Config) Guard {
	return Guard{ignore: ignore, v4: engine.Bans.IPv4Prefix, v6: engine.Bans.IPv6Prefix,
		agg4: engine.Aggregate.IPv4Prefix, agg6: engine.Aggregate.IPv6Prefix}
}

// RefusedError is why a ban is refused. Ignored is set when the key covers
// an address of the ignore list, a refusal no --force lifts.
type RefusedError struct {
	Key    netip.Prefix
	Reason string
	// Ignored is the ignore list's entry the key covers, if that is why.
	Ignored *Ignored
	wide    bool // refused only for being wider than the ban keys
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s: %s", e.Key, e.Reason) }

// ErrTooWide is wrapped by a RefusedError for a prefix wider than the ban
// keys, which a manual ban may still have with force.
var ErrTooWide = errors.New("wider than the ban keys")

// Unwrap lets errors.Is(err, ErrTooWide) tell a refusal force lifts.
func (e *RefusedError) Unwrap() error {
	if e.wide {
		return ErrTooWide
	}
	return nil
}

// covers returns the first ignored entry key covers, or nil.
func (g Guard) covers(key netip.Prefix) *Ignored {
	for i := range g.ignore {
		if g.ignore[i].Prefix.Overlaps(key) {
			return &g.ignore[i]
		}
	}
	return nil
}

// ignoredError says, in words an operator reads, which address of this
// host's a key covers.
func ignoredError(key netip.Prefix, ig *Ignored) *RefusedError {
	what := ig.Prefix.String()
	if ig.Prefix.IsSingleIP() {
		what = ig.Prefix.Addr().String()
	}
	var why string
	switch ig.From {
	case FromSelf:
		why = fmt.Sprintf("%s, an address of this host (ignore: self)", what)
	case FromGateways:
		why = fmt.Sprintf("%s, this host's gateway (ignore: gateways)", what)
	case FromResolvers:
		why = fmt.Sprintf("%s, this host's DNS resolver (ignore: resolvers)", what)
	default:
		why = fmt.Sprintf("%s, in the ignore list", what)
	}
	verb := "covers"
	switch {
	case key.Masked() == ig.Prefix.Masked():
		verb = "is"
	case key.Bits() > ig.Prefix.Bits():
		verb = "is inside"
	}
	return &RefusedError{Key: key, Reason: fmt.Sprintf("%s %s: never banned", verb, why), Ignored: ig}
}

// want returns the ban key length of key's family.
func (g Guard) want(key netip.Prefix) int {
	if key.Addr().Is4() {
		return g.v4
	}
	return g.v6
}

// Admissible says why the daemon must not hold key as one of its bans
// here, or nil: a ban put back from saved state goes through the checks a
// new one does. Its length must be one the engine makes (the configured
// key length, an aggregate's wider one, or a single address when the key
// was narrowed around an ignored address) and it must cover no address of
// the ignore list.
func (g Guard) Admissible(key netip.Prefix) error {
	if !key.IsValid() {
		return &RefusedError{Key: key, Reason: "invalid key"}
	}
	want, agg := g.want(key), g.agg6
	if key.Addr().Is4() {
		agg = g.agg4
	}
	if b := key.Bits(); b != want && b != key.Addr().BitLen() && (agg == 0 || b != agg) {
		return &RefusedError{Key: key, Reason: fmt.Sprintf("a /%d key where bans are /%d or single addresses", b, want)}
	}
	if ig := g.covers(key); ig != nil {
		return ignoredError(key, ig)
	}
	return nil
}

// Manual checks a manual ban of prefix (`sentry-nflog block`) and returns
// the ban keys to insert for it:
//
//   - an address or a prefix covering any address of the ignore list
//     (this host's own, its gateways and resolvers included) is refused,
//     force or not, as is the whole address space;
//   - a prefix wider than the ban keys (bans.ipv4_prefix, bans.ipv6_prefix)
//     is refused unless force; with force an IPv6 prefix is one key (the
//     set holds ranges) and an IPv4 one the networks of bans.ipv4_prefix
//     bits it holds (the set holds single keys), at most MaxBlockKeys;
//   - an IPv4 address or prefix narrower than bans.ipv4_prefix is widened
//     to its ban key, which the checks above then apply to, the way the
//     daemon bans an address; an IPv6 one is kept as it is.
//
// Every refusal is a *RefusedError; errors.Is(err, ErrTooWide) tells the
// one force lifts.
func (g Guard) Manual(prefix netip.Prefix, force bool) ([]netip.Prefix, error) {
	_, keys, err := g.manual(prefix, force)
	return keys, err
}

// ManualKey is Manual, and returns besides the manual ban's key as it is
// recorded: prefix masked, unmapped, an IPv4 one narrower than the ban
// keys widened to its ban key.
func (g Guard) ManualKey(prefix netip.Prefix, force bool) (netip.Prefix, []netip.Prefix, error) {
	return g.manual(prefix, force)
}

func (g Guard) manual(prefix netip.Prefix, force bool) (netip.Prefix, []netip.Prefix, error) {
	if !prefix.IsValid() {
		return prefix, nil, &RefusedError{Key: prefix, Reason: "invalid prefix"}
	}
	key := prefix.Masked()
	if a := key.Addr(); a.Is4In6() && key.Bits() >= 96 {
		key = netip.PrefixFrom(a.Unmap(), key.Bits()-96)
	}
	if key.Bits() == 0 {
		return key, nil, &RefusedError{Key: key, Reason: "the whole address space: never banned"}
	}
	want := g.want(key)
	if key.Addr().Is4() && key.Bits() > want {
		key, _ = key.Addr().Prefix(want)
	}
	if ig := g.covers(key); ig != nil {
		return key, nil, ignoredError(key, ig)
	}
	if key.Bits() >= want {
		return key, []netip.Prefix{key}, nil
	}
	if !force {
		return key, nil, &RefusedError{Key: key, wide: true, Reason: fmt.Sprintf("a /%d is wider than the /%d bans here (bans.%s_prefix); --force bans it all", key.Bits(), want, family6(key))}
	}
	if key.Addr().Is6() {
		return key, []netip.Prefix{key}, nil
	}
	if n := 1 << (want - key.Bits()); n > MaxBlockKeys {
		return key, nil, &RefusedError{Key: key, Reason: fmt.Sprintf("a /%d is %d bans of /%d (bans.ipv4_prefix), more than the %d one manual ban may be", key.Bits(), n, want, MaxBlockKeys)}
	}
	var keys []netip.Prefix
	step := uint32(1) << (32 - want)
	a4 := key.Addr().As4()
	base := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
	for i := uint32(0); i < 1<<(want-key.Bits()); i++ {
		v := base + i*step
		keys = append(keys, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), want))
	}
	return key, keys, nil
}

func family6(key netip.Prefix) string {
	if key.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}
