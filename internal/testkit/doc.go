// Package testkit holds what the tests of several packages share: how a
// test that cannot run here says so, and golden files.
//
// A test that needs something this machine lacks (root, a tool) calls
// Unavailable or Need: it skips with the reason, except under CI=true,
// where it fails, because CI installs everything (make deps) and a test
// that skipped there would pass without having run. Golden compares output
// with a file under testdata, rewritten with -update.
//
// It is imported by tests only.
package testkit
