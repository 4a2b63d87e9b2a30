//go:build !linux

package replay

import "io"

// isTerminal is false off Linux: no progress bar there.
func isTerminal(io.Writer) bool { return false }
