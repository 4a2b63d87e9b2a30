//go:build linux

package netnstest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPair(t *testing.T) {
	Require(t)
	p := NewPair(t)
	ln := p.Listen(t, 0)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	extra := []netip.Addr{
		netip.MustParseAddr("198.51.100.77"),   // inside the /24
		netip.MustParseAddr("203.0.113.9"),     // outside: needs the victim's host route
		netip.MustParseAddr("2001:db8:51::77"), // inside the /64
		netip.MustParseAddr("2001:db8:99::9"),  // outside
	}
	p.AddAttackerAddrs(t, extra...)

	for _, src := range append([]netip.Addr{p.AttackerIP4, p.AttackerIP6}, extra...) {
		dst := p.VictimIP4
		if src.Is6() {
			dst = p.VictimIP6
		}
		err := p.Attacker.Do(func() error {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := d.Dial("tcp", netip.AddrPortFrom(dst, port).String())
			if err != nil {
				return err
			}
			return c.Close()
		})
		if err != nil {
			t.Fatalf("connect %s -> %s port %d: %v", src, dst, port, err)
		}
		ln.SetDeadline(time.Now().Add(2 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accept from %s: %v", src, err)
		}
		got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c.Close()
		if got != src {
			t.Errorf("victim saw connection from %s, want %s", got, src)
		}
	}

	out := p.Victim.Run(t, "ip", "-o", "addr", "show", "dev", p.VictimIf)
	for _, want := range []string{"198.51.100.1/24", "2001:db8:51::1/64"} {
		if !strings.Contains(out, want) {
			t.Errorf("victim addresses lack %s:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "scope global") && strings.Contains(line, "tentative") {
			t.Errorf("victim address still tentative: %s", line)
		}
	}
}

func TestFdAndDo(t *testing.T) {
	Require(t)
	p := NewPair(t)
	for _, n := range []*NS{p.Victim, p.Attacker} {
		var fdStat, fileStat, inside unix.Stat_t
		if err := unix.Fstat(n.Fd(), &fdStat); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat("/run/netns/"+n.Name, &fileStat); err != nil {
			t.Fatal(err)
		}
		err := n.Do(func() error { return unix.Stat("/proc/thread-self/ns/net", &inside) })
		if err != nil {
			t.Fatal(err)
		}
		if fdStat.Ino != fileStat.Ino || inside.Ino != fileStat.Ino {
			t.Errorf("%s: Fd inode %d, file inode %d, inside Do %d: want all equal", n.Name, fdStat.Ino, fileStat.Ino, inside.Ino)
		}
	}

	wantErr := errors.New("from fn")
	if err := p.Victim.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	for range 20 {
		if err := p.Victim.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Every thread of the process is back in the host namespace.
	var host unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat(task, &st); err != nil {
			continue // the thread exited
		}
		if st.Ino != host.Ino {
			t.Errorf("%s is in namespace %d after Do, want host %d", task, st.Ino, host.Ino)
		}
	}
}

func TestCleanup(t *testing.T) {
	Require(t)
	var names []string
	var sleeper interface{ Wait() error }
	t.Run("pair", func(t *testing.T) {
		p := NewPair(t)
		names = []string{p.Victim.Name, p.Attacker.Name}
		p.Listen(t, 0)
		cmd := p.Attacker.Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sleeper = cmd
		// A process not started by Command is killed too.
		p.Victim.Run(t, "sh", "-c", "sleep 60 >/dev/null 2>&1 &")
	})
	for _, name := range names {
		if _, err := os.Stat("/run/netns/" + name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after cleanup (stat: %v)", name, err)
		}
	}
	if sleeper == nil {
		t.Fatal("subtest did not start the command")
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("command exited cleanly, want killed")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("command still running 10s after cleanup")
	}
}

// TestLAN: every host reaches every other; a cut host is unreachable
// without any error coming back (a connect times out rather than being
// refused), the others still reach each other, and a mended host is
// reachable again.
func TestLAN(t *testing.T) {
	Require(t)
	lan := NewLAN(t, 3)
	extra := netip.MustParseAddr("203.0.113.9")
	lan.Hosts[0].AddAddrs(t, extra)
	lns := make([]*net.TCPListener, 3)
	for i, h := range lan.Hosts {
		lns[i] = h.ListenTCP(t, 0)
	}
	dial := func(from *Host, src netip.Addr, to int) error {
		port := lns[to].Addr().(*net.TCPAddr).Port
		return from.Do(func() error {
			d := net.Dialer{Timeout: time.Second}
			if src.IsValid() {
				d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
			}
			c, err := d.Dial("tcp", netip.AddrPortFrom(lan.Hosts[to].IP4, uint16(port)).String())
			if err != nil {
				return err
			}
			return c.Close()
		})
	}
	for i, h := range lan.Hosts {
		for j := range lan.Hosts {
			if i != j {
				if err := dial(h, netip.Addr{}, j); err != nil {
					t.Errorf("host %d -> host %d: %v", i, j, err)
				}
			}
		}
	}
	if err := dial(lan.Hosts[0], extra, 2); err != nil {
		t.Errorf("from an added address: %v", err)
	}
	lan.Hosts[2].Cut(t)
	err := dial(lan.Hosts[0], netip.Addr{}, 2)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("host 0 -> cut host 2: %v, want a timeout (a silent partition)", err)
	}
	if err := dial(lan.Hosts[0], netip.Addr{}, 1); err != nil {
		t.Errorf("host 0 -> host 1 during the cut: %v", err)
	}
	lan.Hosts[2].Mend(t)
	deadline := time.Now().Add(5 * time.Second)
	for dial(lan.Hosts[0], netip.Addr{}, 2) != nil {
		if time.Now().After(deadline) {
			t.Fatal("host 2 unreachable 5s after the mend")
		}
	}
}
