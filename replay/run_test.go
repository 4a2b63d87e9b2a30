package replay

import (
	"strings"
	"testing"
	"time"
)

func TestParseZone(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		offset  int // seconds east of UTC at 2026-11-24
		wantErr string
	}{
		{"+02:00", 2 * 3600, ""},
		{"-0500", -5 * 3600, ""},
		{"+01", 3600, ""},
		{"+05:30", 5*3600 + 30*60, ""},
		{"UTC", 0, ""},
		{"Europe/Berlin", 3600, ""},
		{"+25:00", 0, "not an offset"},
		{"+2", 0, "not an offset"},
		{"+02:60", 0, "not an offset"},
		{"+0-:00", 0, "not an offset"},
		{"Mars/Olympus", 0, "Mars/Olympus"},
		{"", 0, "not a zone"},
	} {
		loc, err := ParseZone(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if _, off := at.In(loc).Zone(); off != tc.offset {
			t.Errorf("%q: offset %d, want %d", tc.in, off, tc.offset)
		}
	}
}
