//go:build !linux

package actions

import (
	"errors"
	"net/netip"
)

// errFirstStrikeNeedsLinux is returned by every FirstStrike method off Linux.
var errFirstStrikeNeedsLinux = errors.New("first strike: needs Linux (nftables)")

// FirstStrike is first strike; off Linux every method returns an error
// saying it needs Linux.
type FirstStrike struct{}

// OpenFirstStrike validates cfg, then returns an error: first strike needs
// Linux.
func OpenFirstStrike(cfg FirstStrikeConfig) (*FirstStrike, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return nil, errFirstStrikeNeedsLinux
}

// Setup returns an error: first strike needs Linux.
func (f *FirstStrike) Setup() error { return errFirstStrikeNeedsLinux }

// SetAllow returns an error: first strike needs Linux.
func (f *FirstStrike) SetAllow(allow []netip.Prefix) error { return errFirstStrikeNeedsLinux }

// SetListening returns an error: first strike needs Linux.
func (f *FirstStrike) SetListening(tcp, udp []uint16) error { return errFirstStrikeNeedsLinux }

// Forget returns an error: first strike needs Linux.
func (f *FirstStrike) Forget(key netip.Prefix) error { return errFirstStrikeNeedsLinux }

// Remove returns an error: first strike needs Linux.
func (f *FirstStrike) Remove() error { return errFirstStrikeNeedsLinux }

// Close does nothing.
func (f *FirstStrike) Close() error { return nil }
