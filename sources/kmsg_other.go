//go:build !linux

package sources

import (
	"context"
	"errors"
)

// Run fails: /dev/kmsg is a Linux device. The type exists on other systems
// so that configuration and replay code build everywhere.
func (s *KmsgSource) Run(ctx context.Context, out chan<- Item) error {
	return errors.New("kmsg: the /dev/kmsg input is only available on Linux")
}
