package actions

import (
	"slices"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func TestAdvancedWatchRanges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ranges  []rules.PortRange
		exclude []uint16
		want    []rules.PortRange
	}{
		{"none", nil, []uint16{22}, nil},
		{"one", []rules.PortRange{{Lo: 1, Hi: 1023}}, nil, []rules.PortRange{{Lo: 1, Hi: 1023}}},
		{"overlapping and adjacent merge", []rules.PortRange{{Lo: 10, Hi: 20}, {Lo: 15, Hi: 30}, {Lo: 31, Hi: 40}, {Lo: 50, Hi: 50}}, nil,
			[]rules.PortRange{{Lo: 10, Hi: 40}, {Lo: 50, Hi: 50}}},
		{"exclude splits", []rules.PortRange{{Lo: 1, Hi: 1023}}, []uint16{1, 113, 114, 500, 1023, 2000},
			[]rules.PortRange{{Lo: 2, Hi: 112}, {Lo: 115, Hi: 499}, {Lo: 501, Hi: 1022}}},
		{"edges", []rules.PortRange{{Lo: 0, Hi: 0}, {Lo: 65534, Hi: 65535}}, nil, []rules.PortRange{{Lo: 0, Hi: 0}, {Lo: 65534, Hi: 65535}}},
		{"all excluded", []rules.PortRange{{Lo: 7, Hi: 7}}, []uint16{7}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := watchSet(tc.ranges, tc.exclude).Ranges(); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
