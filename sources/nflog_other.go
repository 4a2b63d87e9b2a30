//go:build !linux

package sources

import (
	"context"
	"errors"
)

// Run fails: NFLOG is a Linux netfilter interface. The type exists on other
// systems so that configuration and replay code build everywhere.
func (s *NFLOGSource) Run(ctx context.Context, out chan<- Item) error {
	return errors.New("nflog: the NFLOG input is only available on Linux")
}
