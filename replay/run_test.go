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
		loc, err := parseZone(tc.in)
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

func TestParseLineOptions(t *testing.T) {
	o, err := ParseLineOptions("", "")
	if err != nil || o.Location != time.Local || !o.Boot.IsZero() {
		t.Errorf("no flags: %+v, %v", o, err)
	}
	o, err = ParseLineOptions("UTC", "2026-11-24T10:00:00Z")
	if err != nil || o.Location != time.UTC || !o.Boot.Equal(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("both flags: %+v, %v", o, err)
	}
	if _, err := ParseLineOptions("+25:00", ""); err == nil || !strings.HasPrefix(err.Error(), "--tz: ") {
		t.Errorf("bad --tz: %v", err)
	}
	if _, err := ParseLineOptions("", "yesterday"); err == nil || !strings.HasPrefix(err.Error(), "--boot-time: ") {
		t.Errorf("bad --boot-time: %v", err)
	}
}
