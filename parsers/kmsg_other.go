//go:build !linux

package parsers

import (
	"context"
	"errors"
	"log/slog"
)

// DefaultKmsgPath is the kernel log device.
const DefaultKmsgPath = "/dev/kmsg"

// KmsgConfig configures a KmsgSource (see the Linux version).
type KmsgConfig struct {
	Path   string
	Logger *slog.Logger
}

// KmsgStats are the counters of a KmsgSource (see the Linux version).
type KmsgStats struct {
	Records, Events uint64
	Outcomes        [NumOutcomes]uint64
	Lost            uint64
}

// KmsgSource reads /dev/kmsg on Linux. The type exists on other systems so
// that configuration and replay code build everywhere.
type KmsgSource struct{ cfg KmsgConfig }

// NewKmsgSource returns a source for cfg.
func NewKmsgSource(cfg KmsgConfig) *KmsgSource {
	if cfg.Path == "" {
		cfg.Path = DefaultKmsgPath
	}
	return &KmsgSource{cfg: cfg}
}

// Stats returns zero counters.
func (s *KmsgSource) Stats() KmsgStats { return KmsgStats{} }

// Run fails: /dev/kmsg is a Linux device.
func (s *KmsgSource) Run(ctx context.Context, out chan<- Event) error {
	return errors.New("kmsg needs Linux")
}
