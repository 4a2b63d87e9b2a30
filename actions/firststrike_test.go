package actions

import (
	"testing"
	"time"
)

func TestBucketFor(t *testing.T) {
	for _, tc := range []struct {
		n      int
		window time.Duration
		want   bucket
	}{
		{5, time.Minute, bucket{rate: 4, unit: 60, burst: 4}},
		{5, 10 * time.Second, bucket{rate: 24, unit: 60, burst: 4}},
		{2, time.Second, bucket{rate: 1, unit: 1, burst: 1}},
		{10, 500 * time.Millisecond, bucket{rate: 18, unit: 1, burst: 9}},
		{3, 90 * time.Second, bucket{rate: 80, unit: 3600, burst: 2}},
		{3, 7 * time.Second, bucket{rate: 18, unit: 60, burst: 2}},        // 17.1 rounded up
		{4, 30 * 24 * time.Hour, bucket{rate: 1, unit: 604800, burst: 3}}, // beyond a week: the largest unit
	} {
		if got := bucketFor(tc.n, tc.window); got != tc.want {
			t.Errorf("bucketFor(%d, %v) = %+v, want %+v", tc.n, tc.window, got, tc.want)
		}
	}
}

func TestFlagMatchString(t *testing.T) {
	for m, want := range map[FlagMatch]string{
		MatchSYN:                   "syn",
		MatchStealth:               "null|fin|xmas",
		MatchSYN | MatchXMAS:       "syn|xmas",
		MatchSYN | FlagMatch(0x40): "syn|0x40",
	} {
		if got := m.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint8(m), got, want)
		}
	}
}
