//go:build !linux

package actions

import (
	"errors"
	"net/netip"
	"time"
)

// errNeedsLinux is returned by every Table method off Linux.
var errNeedsLinux = errors.New("nftables: needs Linux")

// Table owns one nftables table; off Linux every method returns an error
// saying nftables needs Linux.
type Table struct{}

// OpenTable validates spec, then returns an error: nftables needs Linux.
func OpenTable(spec TableSpec, netnsFd int) (*Table, error) {
	if _, err := spec.normalize(); err != nil {
		return nil, err
	}
	return nil, errNeedsLinux
}

// Apply returns an error: nftables needs Linux.
func (t *Table) Apply(spec TableSpec) error { return errNeedsLinux }

// Spec returns the zero spec: no table is ever opened off Linux.
func (t *Table) Spec() TableSpec { return TableSpec{} }

// Missing returns an error: nftables needs Linux.
func (t *Table) Missing() ([]string, error) { return nil, errNeedsLinux }

// Ban returns an error: nftables needs Linux.
func (t *Table) Ban(key netip.Prefix, timeout time.Duration) error { return errNeedsLinux }

// BanFrom returns an error: nftables needs Linux.
func (t *Table) BanFrom(key netip.Prefix, timeout time.Duration, origin string) error {
	return errNeedsLinux
}

// BanFromMany returns an error for each ban: nftables needs Linux.
func (t *Table) BanFromMany(bans []RemoteBan) []error { return needLinux(len(bans)) }

// BanMany returns an error for each ban: nftables needs Linux.
func (t *Table) BanMany(bans []KeyBan) []error { return needLinux(len(bans)) }

// needLinux returns errNeedsLinux n times.
func needLinux(n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = errNeedsLinux
	}
	return errs
}

// BanManual returns an error: nftables needs Linux.
func (t *Table) BanManual(key netip.Prefix, timeout time.Duration) error { return errNeedsLinux }

// Unblock returns an error: nftables needs Linux.
func (t *Table) Unblock(key netip.Prefix) ([]netip.Prefix, error) { return nil, errNeedsLinux }

// Pardon returns an error: nftables needs Linux.
func (t *Table) Pardon(key netip.Prefix) ([]netip.Prefix, error) { return nil, errNeedsLinux }

// List returns an error: nftables needs Linux.
func (t *Table) List() ([]BanEntry, error) { return nil, errNeedsLinux }

// Counters returns an error: nftables needs Linux.
func (t *Table) Counters() (Counters, error) { return Counters{}, errNeedsLinux }

// Forget returns an error: nftables needs Linux.
func (t *Table) Forget(key netip.Prefix) error { return errNeedsLinux }

// SetListening returns an error: nftables needs Linux.
func (t *Table) SetListening(tcp, udp []uint16) error { return errNeedsLinux }

// Close does nothing.
func (t *Table) Close() error { return nil }

// Snapshot returns an error: nftables needs Linux.
func (t *Table) Snapshot() ([]BanEntry, error) { return nil, errNeedsLinux }
