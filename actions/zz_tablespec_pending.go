package actions

import "net/netip"

// TableSpec is the whole desired state of the table (pending: the table
// owner lands it).
type TableSpec struct {
	Table                  string
	Hooks                  []string
	Priority               int32
	ManageChain            bool
	IPv4Prefix, IPv6Prefix int
	Allow                  []netip.Prefix
	FirstStrike            *FirstStrikeConfig
	Advanced               *AdvancedConfig
	Listen                 ListenPorts
}

// ListenPorts are the ports something listens on.
type ListenPorts struct{ TCP, UDP []uint16 }
