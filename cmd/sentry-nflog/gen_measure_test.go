//go:build measure

package main

import (
	"fmt"
	"os"
	"testing"
)

// TestGenerateReplayInput writes the benchmark input to $SENTRY_GEN
// (lines: $SENTRY_GEN_LINES, default 1,000,000), for timing the binary
// with /usr/bin/time -v. It is built only with the measure tag:
//
//	SENTRY_GEN=/tmp/kern.log go test -tags measure -run GenerateReplayInput ./cmd/sentry-nflog
func TestGenerateReplayInput(t *testing.T) {
	path := os.Getenv("SENTRY_GEN")
	if path == "" {
		t.Fatal("set SENTRY_GEN=FILE: where to write the generated kernel log")
	}
	n := 1000000
	fmt.Sscan(os.Getenv("SENTRY_GEN_LINES"), &n)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	genLog(f, n, 42)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
