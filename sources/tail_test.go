package sources

import "testing"

// TestFileStuckWatch: only two checks in a row without activity while a
// complete line is pending mean tail is asleep; activity or an empty file
// in between starts the count again.
func TestFileStuckWatch(t *testing.T) {
	type step struct {
		active, pending, stuck bool
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"pending twice", []step{{pending: true}, {pending: true, stuck: true}}},
		{"activity resets", []step{{pending: true}, {active: true, pending: true}, {pending: true}, {pending: true, stuck: true}}},
		{"nothing pending resets", []step{{pending: true}, {}, {pending: true}, {pending: true, stuck: true}}},
		{"busy tail with lines pending", []step{{active: true, pending: true}, {active: true, pending: true}, {active: true, pending: true}}},
		{"quiet file", []step{{}, {}, {}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w fileStuckWatch
			for i, s := range c.steps {
				if s.active {
					w.activity()
				}
				asked := false
				got := w.check(func() bool { asked = true; return s.pending })
				if got != s.stuck {
					t.Fatalf("check %d = %v, want %v", i, got, s.stuck)
				}
				if s.active && asked {
					t.Errorf("check %d looked at the file although tail was active", i)
				}
			}
		})
	}
}

// TestFileReread: after tail reopened the file it follows, the lines it
// delivers again up to the offset read are skipped, the first new one ends
// the skipping, and a reset (new or truncated file) skips nothing.
func TestFileReread(t *testing.T) {
	r := newFileReread()
	if r.skip(10) {
		t.Fatal("skipped a line before any reopening")
	}
	r.reopened(30)
	r.reopened(20) // a second reopening read less: keep the furthest
	for _, off := range []int64{10, 20, 30} {
		if !r.skip(off) {
			t.Errorf("line ending at %d delivered twice", off)
		}
	}
	if r.skip(40) {
		t.Error("new line at 40 skipped")
	}
	if r.skip(10) {
		t.Error("skipping went on after the first new line")
	}
	r.reopened(30)
	r.reset()
	if r.skip(10) {
		t.Error("skipped a line after reset")
	}
}
