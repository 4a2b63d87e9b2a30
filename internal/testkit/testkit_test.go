package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeT records what a test helper did to its test.
type fakeT struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Skip(args ...any)          { f.skipped = true; f.msg = args[0].(string) }
func (f *fakeT) Fatal(args ...any)         { f.failed = true; f.msg = args[0].(string) }
func (f *fakeT) Errorf(string, ...any)     { f.failed = true }
func (f *fakeT) Fatalf(s string, _ ...any) { f.failed = true; f.msg = s }

func TestUnavailableFailsInCI(t *testing.T) {
	for _, c := range []struct {
		ci           string
		skip, failed bool
	}{{"", true, false}, {"false", true, false}, {"true", false, true}} {
		t.Setenv("CI", c.ci)
		f := &fakeT{}
		Unavailable(f, "no frobnicator")
		if f.skipped != c.skip || f.failed != c.failed {
			t.Errorf("CI=%q: skipped %v, failed %v; want %v, %v", c.ci, f.skipped, f.failed, c.skip, c.failed)
		}
	}
}

func TestNeed(t *testing.T) {
	t.Setenv("CI", "true")
	f := &fakeT{}
	if p := Need(f, "sentry-nflog-no-such-tool", "sh"); p == "" || f.failed {
		t.Errorf("Need found %q (failed %v), want sh's path", p, f.failed)
	}
	f = &fakeT{}
	Need(f, "sentry-nflog-no-such-tool")
	if !f.failed {
		t.Error("Need of a missing tool under CI=true did not fail")
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.txt")
	os.WriteFile(path, []byte("same\n"), 0o644)
	f := &fakeT{}
	Golden(f, path, []byte("same\n"))
	if f.failed {
		t.Error("equal contents failed")
	}
	Golden(f, path, []byte("other\n"))
	if !f.failed {
		t.Error("different contents passed")
	}
	f = &fakeT{}
	Golden(f, filepath.Join(t.TempDir(), "missing"), nil)
	if !f.failed {
		t.Error("a missing golden file passed")
	}
}
