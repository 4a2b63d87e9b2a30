//go:build linux

package actions

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// nsSeq makes namespace names unique within one test process; the pid makes
// them unique across processes.
var nsSeq atomic.Int64

// requireRoot skips a test that needs root, or fails it under CI, where a
// skip would hide the test.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err != nil {
			testkit.Unavailable(tb, "needs the ip command (iproute2) to create network namespaces")
		}
		return
	}
	testkit.Unavailable(tb, "needs root: creates network namespaces and nftables tables in them")
}

// netNS is a network namespace made for one test.
type netNS struct {
	name string
	fd   int
}

// newNetNS creates a named network namespace (snt-nft-<pid>-<n>) with lo up,
// opens it, and deletes it in Cleanup, also when the test fails.
func newNetNS(tb testing.TB) netNS {
	tb.Helper()
	requireRoot(tb)
	name := fmt.Sprintf("snt-nft-%d-%d", os.Getpid(), nsSeq.Add(1))
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("open netns %s: %v", name, err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	ns := netNS{name: name, fd: fd}
	ns.ip(tb, "link", "set", "lo", "up")
	return ns
}

// ip runs `ip -n <ns> args...`.
func (ns netNS) ip(tb testing.TB, args ...string) {
	tb.Helper()
	run(tb, "ip", append([]string{"-n", ns.name}, args...)...)
}

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// do runs f on an OS thread switched into ns. Sockets created by f stay in
// ns after the thread switches back. If switching back fails the thread is
// left locked, so the runtime retires it instead of reusing it in ns.
func (ns netNS) do(tb testing.TB, f func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open current netns: %v", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("setns %s: %v", ns.name, err)
	}
	defer func() {
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			tb.Errorf("setns back from %s: %v", ns.name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// vethPair joins a and b with a veth pair named va (in a) and vb (in b),
// both up.
func vethPair(tb testing.TB, a, b netNS, va, vb string) {
	tb.Helper()
	run(tb, "ip", "-n", a.name, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name)
	a.ip(tb, "link", "set", va, "up")
	b.ip(tb, "link", "set", vb, "up")
}
