//go:build !unix

package daemon

// lockFile takes no lock where flock(2) does not exist: the daemon needs
// Linux, and this only keeps the package building elsewhere.
func lockFile(path string) (func(), error) { return func() {}, nil }
