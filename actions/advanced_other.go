//go:build !linux

package actions

import "errors"

// errAdvancedNeedsLinux is returned by every Advanced method off Linux.
var errAdvancedNeedsLinux = errors.New("advanced: needs Linux (nftables)")

// Advanced is advanced mode; off Linux every method returns an error saying
// it needs Linux.
type Advanced struct{}

// OpenAdvanced validates cfg, then returns an error: advanced mode needs
// Linux.
func OpenAdvanced(cfg AdvancedConfig) (*Advanced, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return nil, errAdvancedNeedsLinux
}

// Setup returns an error: advanced mode needs Linux.
func (a *Advanced) Setup() error { return errAdvancedNeedsLinux }

// SetListening returns an error: advanced mode needs Linux.
func (a *Advanced) SetListening(tcp, udp []uint16) error { return errAdvancedNeedsLinux }

// Remove returns an error: advanced mode needs Linux.
func (a *Advanced) Remove() error { return errAdvancedNeedsLinux }

// Close does nothing.
func (a *Advanced) Close() error { return nil }
