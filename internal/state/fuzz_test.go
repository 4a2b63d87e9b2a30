package state

import (
	"bytes"
	"testing"
)

// FuzzParseOffence: an offence line never panics the loader, and what it
// reads writes back to a line that reads the same.
func FuzzParseOffence(f *testing.F) {
	for _, s := range []string{
		`["203.0.113.7/32",2,1764000000000000000,1764003600000000000,0]`,
		`["2001:db8:bad:1::/64",1,0,0,1764000000000000000]`,
		`["::/0",4294967295,-1,9223372036854775807,0]`,
		`["1.2.3.4/33",1,0,0,0]`, `[`, `["",,,,]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOffence(b)
		if err != nil {
			return
		}
		line := appendOffence(nil, &o)
		again, err := parseOffence(bytes.TrimSpace(line))
		if err != nil || again != o {
			t.Fatalf("%q read as %+v, written as %q, read back as %+v (%v)", b, o, line, again, err)
		}
	})
}
