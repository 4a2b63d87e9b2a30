//go:build linux

package sources

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

const nflogTestGroup = 4242

// nflogTestStart runs src in the background and waits until it delivers
// events, by sending UDP probes to port 9 from the attacker until one
// arrives. Warm-up events are drained. It returns the channel and a stop
// function that cancels Run and returns its result.
func nflogTestStart(t *testing.T, n *nflogTestNet, src *NFLOGSource, buf int) (<-chan Item, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Item, buf)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })

	deadline := time.Now().Add(5 * time.Second)
	for {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no warm-up event within 5 s")
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if err := n.InAttacker(func() error { return nflogTestSendUDP(nflogTestVictim4, 9, 1, 0) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-out:
			// Drain what else the warm-up produced.
			for {
				select {
				case <-out:
				case <-time.After(50 * time.Millisecond):
					return out, stop
				}
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nflogTestSendUDP sends count datagrams of size bytes to addr:port.
func nflogTestSendUDP(addr string, port, count, size int) error {
	c, err := net.Dial("udp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	b := make([]byte, size)
	for range count {
		c.Write(b) // refused (ICMP unreachable) errors are expected
	}
	return nil
}

// nflogTestSYN makes one connect attempt to a closed port: a SYN, answered
// by a RST.
func nflogTestSYN(addr string, port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), time.Second)
	if err == nil {
		c.Close()
		return errors.New("connect to " + addr + " succeeded; want a closed port")
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return err
	}
	return nil
}

func TestNFLOGSource(t *testing.T) {
	n := newNFLOGTestNet(t)
	n.InstallLogRule(t, nflogTestGroup, 0)
	src := NewNFLOGSource(NFLOGConfig{Group: nflogTestGroup, NetNS: n.VictimFd})
	out, stop := nflogTestStart(t, n, src, 64)

	t.Run("events", func(t *testing.T) {
		type key struct {
			proto uint8
			src   netip.Addr
			dport uint16
		}
		want := map[key]bool{}
		a4, a6 := netip.MustParseAddr(nflogTestAttacker4), netip.MustParseAddr(nflogTestAttacker6)
		err := n.InAttacker(func() error {
			for _, p := range []int{1001, 1002, 1003} {
				want[key{parsers.ProtoTCP, a4, uint16(p)}] = true
				if err := nflogTestSYN(nflogTestVictim4, p); err != nil {
					return err
				}
			}
			for _, p := range []int{2001, 2002} {
				want[key{parsers.ProtoUDP, a4, uint16(p)}] = true
				if err := nflogTestSendUDP(nflogTestVictim4, p, 1, 16); err != nil {
					return err
				}
			}
			want[key{parsers.ProtoTCP, a6, 3001}] = true
			return nflogTestSYN(nflogTestVictim6, 3001)
		})
		if err != nil {
			t.Fatalf("attacker: %v", err)
		}
		deadline := time.After(5 * time.Second)
		for len(want) > 0 {
			var ev parsers.Event
			select {
			case it := <-out:
				ev = it.Event
			case <-deadline:
				t.Fatalf("missing events: %v", want)
			}
			k := key{ev.Proto, ev.Src, ev.DstPort}
			if !want[k] {
				continue // a retransmitted SYN, or an IPv6 neighbour's packet
			}
			delete(want, k)
			wantDst := netip.MustParseAddr(nflogTestVictim4)
			if ev.Src.Is6() {
				wantDst = netip.MustParseAddr(nflogTestVictim6)
			}
			if ev.Dst != wantDst {
				t.Errorf("%v: Dst = %v, want %v", k, ev.Dst, wantDst)
			}
			if ev.Prefix != nflogTestPrefix {
				t.Errorf("%v: Prefix = %q, want %q", k, ev.Prefix, nflogTestPrefix)
			}
			if ev.InIface != n.VictimIf {
				t.Errorf("%v: InIface = %q, want %q", k, ev.InIface, n.VictimIf)
			}
			if d := time.Since(ev.Time); d < 0 || d > 2*time.Second {
				t.Errorf("%v: Time %v is %v from now", k, ev.Time, d)
			}
			if ev.SrcPort == 0 || ev.TTL == 0 || ev.Length == 0 {
				t.Errorf("%v: incomplete event %+v", k, ev)
			}
			if ev.Proto == parsers.ProtoTCP && ev.Flags != parsers.SYN {
				t.Errorf("%v: Flags = %v, want SYN", k, ev.Flags)
			}
		}
		st := src.Stats()
		if st.Events == 0 || st.Received < st.Events || st.Overruns != 0 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("second reader fails", func(t *testing.T) {
		second := NewNFLOGSource(NFLOGConfig{Group: nflogTestGroup, NetNS: n.VictimFd})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := second.Run(ctx, make(chan Item))
		if !errors.Is(err, ErrNFLOGGroupBusy) {
			t.Fatalf("second Run = %v, want ErrNFLOGGroupBusy", err)
		}
		t.Log(err)
		for _, s := range []string{"another process", "group 4242", "this network namespace"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
		if errors.Is(err, os.ErrPermission) {
			t.Errorf("a busy group must not read as a missing capability: %v", err)
		}
	})

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}

	t.Run("group free after stop", func(t *testing.T) {
		again := NewNFLOGSource(NFLOGConfig{Group: nflogTestGroup, NetNS: n.VictimFd})
		_, stop := nflogTestStart(t, n, again, 64)
		if err := stop(); err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	})
}

// TestNFLOGSourceNoCapability drops CAP_NET_ADMIN from one thread (Linux
// capabilities are per thread) and runs Run there: every netlink request is
// made from the calling goroutine, so the kernel sees the missing capability.
func TestNFLOGSourceNoCapability(t *testing.T) {
	nflogTestRequireRoot(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A group nobody uses, in the test's own namespace: the bind fails
		// before anything is changed.
		errc <- NewNFLOGSource(NFLOGConfig{Group: 65001}).Run(ctx, make(chan Item))
	}()
	err := <-errc
	t.Log(err)
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("Run without CAP_NET_ADMIN = %v, want os.ErrPermission naming CAP_NET_ADMIN", err)
	}
	if errors.Is(err, ErrNFLOGGroupBusy) {
		t.Errorf("a missing capability must not read as a busy group: %v", err)
	}
}

func TestNFLOGHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"SENTRY":                    "SENTRY",
		"SENTRY ":                   "SENTRY",
		"filter_IN_public_REJECT: ": "filter_IN_public_REJECT",
		"[UFW BLOCK] ":              "[UFW BLOCK]",
		"a::":                       "a:",
		"":                          "",
		" : ":                       "",
	} {
		if got := nflogTrimPrefix(in); got != want {
			t.Errorf("nflogTrimPrefix(%q) = %q, want %q", in, got, want)
		}
	}
	for d, want := range map[time.Duration]uint32{0: 0, time.Millisecond: 1, 10 * time.Millisecond: 1, 11 * time.Millisecond: 2, time.Second: 100} {
		if got := nflogTimeoutUnits(d); got != want {
			t.Errorf("nflogTimeoutUnits(%v) = %d, want %d", d, got, want)
		}
	}
	in := newNFLOGIntern(2)
	a := in.get("A: ")
	if in.get("A") != a || in.get("A ") != a || len(in.m) != 1 {
		t.Errorf("intern did not share %q: %v", a, in.m)
	}
	in.get("B")
	if got := in.get("C "); got != "C" || len(in.m) != 2 {
		t.Errorf("intern past its bound: %q, %d entries", got, len(in.m))
	}
}
