//go:build !linux

package actions

import (
	"errors"
	"net/netip"
	"time"
)

// errNeedsLinux is returned by every NFTables method off Linux.
var errNeedsLinux = errors.New("nftables: needs Linux")

// NFTables enforces bans in one nftables table; off Linux every method
// returns an error saying nftables needs Linux.
type NFTables struct{}

// OpenNFTables returns an error: nftables needs Linux.
func OpenNFTables(cfg NFTablesConfig) (*NFTables, error) { return nil, errNeedsLinux }

// Setup returns an error: nftables needs Linux.
func (n *NFTables) Setup() error { return errNeedsLinux }

// Ban returns an error: nftables needs Linux.
func (n *NFTables) Ban(key netip.Prefix, timeout time.Duration) error { return errNeedsLinux }

// Unblock returns an error: nftables needs Linux.
func (n *NFTables) Unblock(key netip.Prefix) ([]netip.Prefix, error) { return nil, errNeedsLinux }

// List returns an error: nftables needs Linux.
func (n *NFTables) List() ([]BanEntry, error) { return nil, errNeedsLinux }

// Counters returns an error: nftables needs Linux.
func (n *NFTables) Counters() (Counters, error) { return Counters{}, errNeedsLinux }

// Present returns an error: nftables needs Linux.
func (n *NFTables) Present() (ok bool, missing []string, err error) { return false, nil, errNeedsLinux }

// Close does nothing.
func (n *NFTables) Close() error { return nil }
