package actions

import (
	"fmt"
	"net/netip"
	"slices"
)

// TableSpec is the whole desired state of the table: its sets, the ban
// chains, first strike, advanced mode and the sets they read. Table.Apply
// makes the kernel match it in one batch. It is a plain value, so two specs
// compare with reflect.DeepEqual, and Table.Spec returns it with its
// defaults filled in.
type TableSpec struct {
	// Table is the name of the inet table; DefaultTable if empty. Nothing
	// outside it is ever read or changed.
	Table string
	// Hooks lists the hooks the ban chains drop at, HookInput and/or
	// HookForward; HookInput only if empty. Used only with ManageChain.
	Hooks []string
	// Priority of the ban chains; zero selects DefaultPriority (priority 0
	// itself cannot be expressed: use -1 or 1).
	Priority int32
	// ManageChain makes Apply own one base chain per hook with the drop
	// rules. Without it the table holds the sets, and the user's own
	// ruleset refers to them; Apply then never touches a chain named after
	// a hook.
	ManageChain bool
	// IPv4Prefix is the length of every IPv4 ban key, 1 to 32; zero
	// selects 32. blocked4 is a plain set of addresses, so a shorter key
	// is stored as its network address and the IPv4 rule masks the source
	// before the lookup (`ip saddr & 255.255.255.0 @blocked4` for 24). It
	// must match the rules engine's bans.ipv4_prefix: Ban refuses other
	// lengths.
	IPv4Prefix int
	// IPv6Prefix is the length of the IPv6 keys first strike counts and
	// bans (in strike6), 1 to 128; zero selects 64. The strike6 drop rule
	// masks the source to it. Ban takes IPv6 keys of any length.
	IPv6Prefix int
	// Allow lists sources first strike never strikes (loopback, this
	// host, gateways, resolvers, the ignore list): the sets allow4 and
	// allow6, checked before anything is counted.
	Allow []netip.Prefix
	// FirstStrike is first strike; nil for none, and Apply then removes
	// its chains and sets (the bans it made stay until they expire).
	FirstStrike *FirstStrikeConfig
	// Advanced is advanced mode; nil for none, and Apply then removes its
	// chain and watch sets.
	Advanced *AdvancedConfig
	// Listen are the ports something listens on, which first strike never
	// counts and advanced mode never logs. Apply writes them in the same
	// batch as the chains that read them; Table.SetListening keeps them
	// current between Applies. Unused without first strike and advanced
	// mode.
	Listen ListenPorts
}

// ListenPorts are the TCP and UDP ports with a listener reachable from
// outside (hostinfo.Paths.Listening).
type ListenPorts struct {
	TCP, UDP []uint16
}

// maxTableName is NFT_TABLE_MAXNAMELEN less the terminating NUL.
const maxTableName = 255

// normalize validates s and returns it with its defaults filled in, sharing
// no slice or pointer with s.
func (s TableSpec) normalize() (TableSpec, error) {
	out := s
	if out.Table == "" {
		out.Table = DefaultTable
	}
	if len(out.Table) > maxTableName {
		return TableSpec{}, fmt.Errorf("nftables: table name %q longer than %d bytes", out.Table, maxTableName)
	}
	hooks, err := normalizeHooks(s.Hooks)
	if err != nil {
		return TableSpec{}, err
	}
	out.Hooks = hooks
	if out.Priority == 0 {
		out.Priority = DefaultPriority
	}
	if out.IPv4Prefix == 0 {
		out.IPv4Prefix = 32
	}
	if out.IPv4Prefix < 1 || out.IPv4Prefix > 32 {
		return TableSpec{}, fmt.Errorf("nftables: IPv4 ban prefix length %d out of range 1-32", out.IPv4Prefix)
	}
	if out.IPv6Prefix == 0 {
		out.IPv6Prefix = 64
	}
	if out.IPv6Prefix < 1 || out.IPv6Prefix > 128 {
		return TableSpec{}, fmt.Errorf("nftables: IPv6 strike prefix length %d out of range 1-128", out.IPv6Prefix)
	}
	out.Allow = nil
	for _, p := range s.Allow {
		n, err := normalizeKey(p)
		if err != nil {
			return TableSpec{}, fmt.Errorf("first strike: allow: %w", err)
		}
		out.Allow = append(out.Allow, n)
	}
	if s.FirstStrike != nil {
		fs := s.FirstStrike.clone()
		if err := fs.check(); err != nil {
			return TableSpec{}, err
		}
		out.FirstStrike = &fs
	}
	if s.Advanced != nil {
		a := s.Advanced.clone()
		if err := a.check(); err != nil {
			return TableSpec{}, err
		}
		out.Advanced = &a
	}
	out.Listen = s.Listen.normalize()
	return out, nil
}

// clone returns a copy of s (normalised or not) sharing nothing with it.
func (s TableSpec) clone() TableSpec {
	out := s
	out.Hooks = slices.Clone(s.Hooks)
	out.Allow = slices.Clone(s.Allow)
	if s.FirstStrike != nil {
		fs := s.FirstStrike.clone()
		out.FirstStrike = &fs
	}
	if s.Advanced != nil {
		a := s.Advanced.clone()
		out.Advanced = &a
	}
	out.Listen = ListenPorts{TCP: slices.Clone(s.Listen.TCP), UDP: slices.Clone(s.Listen.UDP)}
	return out
}

// usesListen reports whether a chain of s reads the listen sets.
func (s *TableSpec) usesListen() bool { return s.FirstStrike != nil || s.Advanced != nil }

func normalizeHooks(in []string) ([]string, error) {
	if len(in) == 0 {
		return []string{HookInput}, nil
	}
	var out []string
	for _, h := range in {
		if err := CheckHook(h); err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// normalize returns the ports sorted without duplicates, in new slices (nil
// when empty, so that equal port lists compare equal).
func (l ListenPorts) normalize() ListenPorts {
	return ListenPorts{TCP: sortedPorts(l.TCP), UDP: sortedPorts(l.UDP)}
}

func sortedPorts(ps []uint16) []uint16 {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

// portDiff returns the ports of want missing from have and those of have
// not in want; both lists must be sorted without duplicates.
func portDiff(have, want []uint16) (add, del []uint16) {
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want) || (i < len(have) && have[i] < want[j]):
			del = append(del, have[i])
			i++
		case i == len(have) || want[j] < have[i]:
			add = append(add, want[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, del
}
