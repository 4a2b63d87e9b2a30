package testkit

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"testing"
)

// Unavailable stops t, which cannot run here for reason: a skip, or a
// failure when CI=true.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason + " (CI=true: failing instead of skipping)")
		return
	}
	t.Skip(reason)
}

// Need returns the path of the first of names in PATH. When there is
// none, t is Unavailable.
func Need(t testing.TB, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, names[0]+" not installed (make deps installs it)")
	return ""
}

var update = flag.Bool("update", false, "rewrite golden files")

// Golden compares got with the file at path; with -update it writes got
// there first. A difference shows both when they are short enough to read.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	if len(got)+len(want) > 64<<10 {
		t.Errorf("%s differs from what the test made (run it with -update to accept)", path)
		return
	}
	t.Errorf("%s differs from what the test made (run it with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
}
