package sources

import "testing"

// TestSourceNames: names are what logs and metrics have always used for the
// inputs, so dashboards keep working.
func TestSourceNames(t *testing.T) {
	for _, c := range []struct {
		src  Source
		want string
	}{
		{NewNFLOGSource(NFLOGConfig{Group: 5}), "nflog:5"},
		{NewFileSource(FileConfig{Path: "/var/log/kern.log"}), "file:/var/log/kern.log"},
		{NewKmsgSource(KmsgConfig{}), "kmsg"},
	} {
		if got := c.src.Name(); got != c.want {
			t.Errorf("Name() = %q, want %q", got, c.want)
		}
		select {
		case <-c.src.Ready():
			t.Errorf("%s: Ready closed before Run", c.want)
		default:
		}
	}
}
