//go:build linux

package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// Addresses of a Pair: documentation addresses (RFC 5737, RFC 3849) that exist
// only inside the pair's namespaces.
const (
	victimIP4   = "198.51.100.1"
	attackerIP4 = "198.51.100.2"
	victimIP6   = "2001:db8:51::1"
	attackerIP6 = "2001:db8:51::2"

	prefixLen4 = 24
	prefixLen6 = 64

	// ipTimeout bounds each ip(8) invocation made by this package.
	ipTimeout = 30 * time.Second
)

// Require skips the test, with the reason, when it cannot create network
// namespaces: not root, no ip(8) in PATH, or no netns support. When the
// environment variable CI is "true" it fails the test instead, because in CI
// a skipped end-to-end test hides a broken setup.
func Require(t testing.TB) {
	t.Helper()
	if reason := unavailable(); reason != "" {
		testkit.Unavailable(t, "netnstest: network namespaces unavailable: "+reason)
	}
}

// unavailable returns why namespaces cannot be used here, or "".
func unavailable() string {
	if os.Geteuid() != 0 {
		return "not root (need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip(8) not found in PATH (install iproute2)"
	}
	if _, err := os.Stat("/proc/thread-self/ns/net"); err != nil {
		return fmt.Sprintf("kernel without network namespaces: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns list: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// NS is a named network namespace created by NewPair. Its methods may be
// called from any goroutine until the test's cleanup runs.
type NS struct {
	// Name is the namespace's name under /run/netns, as ip-netns(8) knows it.
	Name string

	fd  int             // open fd of /run/netns/Name
	ctx context.Context // cancelled at cleanup: kills commands started in the namespace
}

// Fd returns an open file descriptor of the namespace (/run/netns/Name), for
// nftables.WithNetNSFd or go-nflog's Config.NetNS. It stays valid until the
// test's cleanup, which closes it; callers must not close it.
func (n *NS) Fd() int { return n.fd }

// Do runs fn on a locked OS thread that has been switched into the namespace
// with setns(CLONE_NEWNET), switches the thread back afterwards and returns
// fn's error.
//
// Sockets created by fn itself stay in the namespace after Do returns and may
// be used from any goroutine. Goroutines that fn starts are NOT in the
// namespace: they run on other threads, so every socket must be created on
// fn's own goroutine. fn runs on a goroutine of its own, so it must report
// failures by returning an error, not by calling t.Fatal.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		// Sent from a defer so that a runtime.Goexit in fn cannot hang Do.
		defer func() { errc <- err }()
		// No deferred UnlockOSThread: if the thread cannot be switched
		// back, the goroutine exits still locked and the runtime
		// terminates the thread instead of reusing it in the wrong
		// namespace.
		runtime.LockOSThread()
		orig, oerr := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if oerr != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("netnstest: open current namespace: %w", oerr)
			return
		}
		defer unix.Close(orig)
		if serr := unix.Setns(n.fd, unix.CLONE_NEWNET); serr != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("netnstest: enter namespace %s: %w", n.Name, serr)
			return
		}
		restore := func() {
			if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
				err = errors.Join(err, fmt.Errorf("netnstest: leave namespace %s: %w", n.Name, serr))
				return
			}
			runtime.UnlockOSThread()
		}
		defer restore()
		err = fn()
	}()
	return <-errc
}

// Command returns a command that runs argv inside the namespace through
// `ip netns exec`. It runs in a process group of its own, which is killed when
// ctx ends or at the test's cleanup, whichever comes first; WaitDelay bounds
// how long Wait waits for output pipes after that.
func (n *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(n.ctx, cancel)
	cmd := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// ip netns exec execs argv in place, so the group is argv's.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs argv inside the namespace, bounded by the test's context and one
// minute, fails the test if it does not succeed and returns its combined
// output.
func (n *NS) Run(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("netnstest: in %s: %q: %v\n%s", n.Name, argv, err, out)
	}
	return string(out)
}

// ListenTCP starts a TCP listener inside the namespace on port (0 picks one)
// of every address, IPv4 and IPv6, and closes it at the test's cleanup.
// Nothing accepts from it: the kernel completes handshakes into the backlog
// (somaxconn, 4096 by default), which is enough for scans to see the port
// open; accept from the listener when a test makes more connections than that.
func (n *NS) ListenTCP(t testing.TB, port uint16) *net.TCPListener {
	t.Helper()
	var ln *net.TCPListener
	err := n.Do(func() error {
		var err error
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{Port: int(port)})
		return err
	})
	if err != nil {
		t.Fatalf("netnstest: listen on tcp port %d in %s: %v", port, n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Pair is a victim and an attacker network namespace joined by a veth pair.
// The victim end has 198.51.100.1/24 and 2001:db8:51::1/64, the attacker end
// 198.51.100.2/24 and 2001:db8:51::2/64; the IPv6 addresses are added without
// duplicate address detection, so they are usable at once.
type Pair struct {
	Victim, Attacker *NS
	// VictimIf and AttackerIf name the veth ends. They are unique on the
	// host, so kernel log lines (IN=...) of one pair can be told apart from
	// another's.
	VictimIf, AttackerIf                           string
	VictimIP4, AttackerIP4, VictimIP6, AttackerIP6 netip.Addr
}

// NewPair creates a Pair with unique names ("snt-<id>-v" and "snt-<id>-a"),
// loopback up in both namespaces. It registers a cleanup, run even when the
// test fails, that kills every process still in either namespace, closes the
// namespace fds and deletes the namespaces. It fails the test if any step
// fails; call Require first.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	id := uniqueID(t)
	p := &Pair{
		VictimIf:    "snt" + id + "v",
		AttackerIf:  "snt" + id + "a",
		VictimIP4:   netip.MustParseAddr(victimIP4),
		AttackerIP4: netip.MustParseAddr(attackerIP4),
		VictimIP6:   netip.MustParseAddr(victimIP6),
		AttackerIP6: netip.MustParseAddr(attackerIP6),
	}
	p.Victim = newNS(t, "snt-"+id+"-v")
	p.Attacker = newNS(t, "snt-"+id+"-a")

	v, a := p.Victim.Name, p.Attacker.Name
	// The veth pair is created inside the victim with its peer moved
	// straight into the attacker: the host namespace never sees it.
	ipCmd(t, "-n", v, "link", "add", p.VictimIf, "type", "veth", "peer", "name", p.AttackerIf, "netns", a)
	for _, end := range []struct {
		ns, ifname string
		ip4, ip6   netip.Addr
	}{
		{v, p.VictimIf, p.VictimIP4, p.VictimIP6},
		{a, p.AttackerIf, p.AttackerIP4, p.AttackerIP6},
	} {
		ipBatch(t, end.ns, []string{
			"link set lo up",
			fmt.Sprintf("addr add %s dev %s", netip.PrefixFrom(end.ip4, prefixLen4), end.ifname),
			fmt.Sprintf("addr add %s dev %s nodad", netip.PrefixFrom(end.ip6, prefixLen6), end.ifname),
			fmt.Sprintf("link set %s up", end.ifname),
		})
	}
	return p
}

// Listen starts a TCP listener inside the victim on port (0 picks one), on
// every address; see NS.ListenTCP.
func (p *Pair) Listen(t testing.TB, port uint16) *net.TCPListener {
	t.Helper()
	return p.Victim.ListenTCP(t, port)
}

// AddAttackerAddrs adds addrs to the attacker's veth: IPv4 addresses as /32,
// IPv6 addresses as /128 without duplicate address detection, so they can be
// used as scan sources at once. For an address outside the pair's subnets it
// also adds a host route to the victim, so replies find their way back. Use
// documentation ranges (198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24,
// 2001:db8::/32). All addresses are added by one ip -batch per namespace, so
// thousands are cheap.
func (p *Pair) AddAttackerAddrs(t testing.TB, addrs ...netip.Addr) {
	t.Helper()
	subnet4 := netip.PrefixFrom(p.AttackerIP4, prefixLen4).Masked()
	subnet6 := netip.PrefixFrom(p.AttackerIP6, prefixLen6).Masked()
	var attacker, victim []string
	for _, addr := range addrs {
		addr = addr.Unmap()
		if !addr.IsValid() {
			t.Fatalf("netnstest: AddAttackerAddrs: invalid address")
		}
		host := netip.PrefixFrom(addr, addr.BitLen())
		line := fmt.Sprintf("addr add %s dev %s", host, p.AttackerIf)
		if addr.Is6() {
			line += " nodad"
		}
		attacker = append(attacker, line)
		if !subnet4.Contains(addr) && !subnet6.Contains(addr) {
			victim = append(victim, fmt.Sprintf("route add %s dev %s", host, p.VictimIf))
		}
	}
	ipBatch(t, p.Attacker.Name, attacker)
	ipBatch(t, p.Victim.Name, victim)
}

// uniqueID returns 8 hex digits naming a pair or a LAN: 4 from the pid,
// 4 random, retried while a namespace of that name exists.
func uniqueID(t testing.TB) string {
	t.Helper()
	for range 16 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatalf("netnstest: random id: %v", err)
		}
		id := fmt.Sprintf("%04x", os.Getpid()&0xffff) + hex.EncodeToString(b[:])
		matches, _ := filepath.Glob("/run/netns/snt-" + id + "-*")
		if len(matches) == 0 {
			return id
		}
	}
	t.Fatalf("netnstest: no unused namespace name found")
	return ""
}

// newNS creates a namespace and registers its cleanup before anything else
// can fail.
func newNS(t testing.TB, name string) *NS {
	t.Helper()
	ipCmd(t, "netns", "add", name)
	ctx, cancel := context.WithCancel(context.Background())
	n := &NS{Name: name, fd: -1, ctx: ctx}
	t.Cleanup(func() {
		cancel() // kills what Command started
		killAll(t, name)
		if n.fd >= 0 {
			unix.Close(n.fd)
		}
		if err := ipRun("netns", "del", name); err != nil {
			t.Errorf("netnstest: cleanup: %v", err)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("netnstest: open namespace %s: %v", name, err)
	}
	n.fd = fd
	return n
}

// killAll SIGKILLs every process left in the namespace, by pid, and waits
// briefly for them to go, so the namespace is really gone after deletion.
func killAll(t testing.TB, name string) {
	t.Helper()
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
		cancel()
		if err != nil {
			t.Errorf("netnstest: cleanup: ip netns pids %s: %v", name, err)
			return
		}
		var pids []int
		for _, s := range strings.Fields(string(out)) {
			// Our own pid shows up while a Do runs on the main thread.
			if pid, err := strconv.Atoi(s); err == nil && pid > 1 && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("netnstest: cleanup: processes still in %s after SIGKILL", name)
}

// ipCmd runs ip with args and fails the test on error.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if err := ipRun(args...); err != nil {
		t.Fatalf("netnstest: %v", err)
	}
}

// ipBatch runs lines as one `ip -n ns -batch -`, failing the test on error.
func ipBatch(t testing.TB, ns string, lines []string) {
	t.Helper()
	if len(lines) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netnstest: ip -n %s -batch: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
}

func ipRun(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
