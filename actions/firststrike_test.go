//go:build linux

package actions

import (
	"testing"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The kernel's flag match of a class set holds exactly the combinations
// the engine classifies into it.
func TestFlagElementsFollowTheClassifier(t *testing.T) {
	for c := rules.FlagClass(1); c <= rules.AllClasses; c <<= 1 {
		in := map[byte]bool{}
		for _, e := range flagElements(c) {
			if len(e.Key) != 1 {
				t.Fatalf("%v: element %v", c, e.Key)
			}
			in[e.Key[0]] = true
		}
		for f := 0; f < 256; f++ {
			want := rules.Classify(parsers.TCPFlags(f)) == c
			// The kernel matches the flags byte under the mask, so ECE
			// and CWR never change the answer.
			if got := in[byte(f)&byte(rules.FlagMask)]; got != want {
				t.Errorf("class %v, flags %#02x: kernel %v, engine %v", c, f, got, want)
			}
		}
	}
}
