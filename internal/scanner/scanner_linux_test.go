//go:build linux

package scanner

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
)

const openPort = 80

type family struct {
	name                   string
	victim, attacker, void netip.Addr // void: on the link, but nobody has it
}

func families(p *netnstest.Pair) []family {
	return []family{
		{"ipv4", p.VictimIP4, p.AttackerIP4, netip.MustParseAddr("198.51.100.99")},
		{"ipv6", p.VictimIP6, p.AttackerIP6, netip.MustParseAddr("2001:db8:51::99")},
	}
}

// portRange returns lo through hi; an int counter, so hi may be 65535.
func portRange(lo, hi uint16) []uint16 {
	ports := make([]uint16, 0, int(hi)-int(lo)+1)
	for p := int(lo); p <= int(hi); p++ {
		ports = append(ports, uint16(p))
	}
	return ports
}

func TestScanInPair(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	p.Listen(t, openPort)

	for _, f := range families(p) {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			t.Run("ConnectScan", func(t *testing.T) {
				var res Result
				err := p.Attacker.Do(func() error {
					var err error
					res, err = ConnectScan(ctx, f.attacker, f.victim, []uint16{79, openPort, 81, 443}, 2*time.Second)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if got := res.Ports(Open); !slices.Equal(got, []uint16{openPort}) {
					t.Errorf("open = %v, want [%d]", got, openPort)
				}
				if got := res.Ports(Refused); !slices.Equal(got, []uint16{79, 81, 443}) {
					t.Errorf("refused = %v, want [79 81 443]; probes %+v", got, res.Probes)
				}
			})

			t.Run("ConnectScanAnySource", func(t *testing.T) {
				var res Result
				err := p.Attacker.Do(func() error {
					var err error
					res, err = ConnectScan(ctx, netip.Addr{}, f.victim, []uint16{openPort}, 2*time.Second)
					return err
				})
				if err != nil || len(res.Probes) != 1 || res.Probes[0].State != Open {
					t.Errorf("got %+v, %v; want port %d open", res, err, openPort)
				}
			})

			t.Run("ConnectScanFiltered", func(t *testing.T) {
				// Nobody answers address resolution for void, so the
				// attempts are still pending when the timeout ends.
				const timeout = 300 * time.Millisecond
				var res Result
				start := time.Now()
				err := p.Attacker.Do(func() error {
					var err error
					res, err = ConnectScan(ctx, f.attacker, f.void, portRange(1, 300), timeout)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if got := len(res.Ports(Filtered)); got != 300 {
					t.Errorf("%d filtered, want 300; first probe %+v", got, res.Probes[0])
				}
				// 256 at a time: two rounds of the timeout.
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("took %v, want about %v", d, 2*timeout)
				}
			})

			t.Run("SYNScan", func(t *testing.T) {
				var r Replies
				err := p.Attacker.Do(func() error {
					var err error
					r, err = SYNScan(ctx, f.attacker, f.victim, portRange(1, 1024), 0)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if r.Sent != 1024 {
					t.Errorf("sent %d, want 1024", r.Sent)
				}
				if !slices.Equal(r.Open, []uint16{openPort}) {
					t.Errorf("open = %v, want [%d]", r.Open, openPort)
				}
				if len(r.Closed) != 1023 || r.Resets < 1023 {
					t.Errorf("%d closed ports, %d resets, want 1023", len(r.Closed), r.Resets)
				}
				if len(r.Answers) != r.SynAcks+r.Resets {
					t.Errorf("%d answers, %d syn-acks + %d resets", len(r.Answers), r.SynAcks, r.Resets)
				}
				if len(r.Answers) > 0 {
					t.Logf("sent %d in %v, %d syn-acks, %d resets, last answer at %v",
						r.Sent, r.Sending, r.SynAcks, r.Resets, r.Answers[len(r.Answers)-1].At)
				}
			})

			t.Run("SYNScanAllPorts", func(t *testing.T) {
				// Nothing is lost locally even at full speed, so what a
				// scan learns measures the target, not the scanner.
				if testing.Short() {
					t.Skip("65535 probes")
				}
				var r Replies
				err := p.Attacker.Do(func() error {
					var err error
					r, err = SYNScan(ctx, f.attacker, f.victim, portRange(1, 65535), 0)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if r.Sent != 65535 || !slices.Equal(r.Open, []uint16{openPort}) || len(r.Closed) != 65534 {
					t.Errorf("sent %d, open %v, %d closed; want 65535, [%d], 65534", r.Sent, r.Open, len(r.Closed), openPort)
				}
				t.Logf("sent %d in %v", r.Sent, r.Sending)
			})

			t.Run("SYNScanRate", func(t *testing.T) {
				const n, rate = 100, 1000 // 99 intervals of 1 ms
				var r Replies
				err := p.Attacker.Do(func() error {
					var err error
					r, err = SYNScan(ctx, netip.Addr{}, f.victim, portRange(2001, 2000+n), rate)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if r.Sent != n || len(r.Closed) != n {
					t.Errorf("sent %d, %d closed, want %d", r.Sent, len(r.Closed), n)
				}
				if r.Sending < 90*time.Millisecond || r.Sending > 2*time.Second {
					t.Errorf("sending took %v at %d/s, want about 99ms", r.Sending, rate)
				}
			})

			t.Run("RawAndUDPProbes", func(t *testing.T) {
				tcpCap := capture(t, p.Victim, "tcp", f.victim)
				udpCap := capture(t, p.Victim, "udp", f.victim)
				want := map[uint16]uint8{1001: FIN, 1002: NULL, 1003: XMAS, 1004: SYN, 1005: ACK}
				err := p.Attacker.Do(func() error {
					for port, flags := range want {
						if err := RawProbe(ctx, f.attacker, f.victim, port, flags); err != nil {
							return err
						}
					}
					return UDPProbe(ctx, f.attacker, f.victim, []uint16{53, 123, 161})
				})
				if err != nil {
					t.Fatal(err)
				}
				got := map[uint16]uint8{}
				for _, seg := range read(t, tcpCap, len(want)) {
					h, ok := parseTCP(seg)
					if !ok {
						t.Fatalf("short tcp segment %x", seg)
					}
					got[h.dstPort] = h.flags
				}
				for port, flags := range want {
					if g, ok := got[port]; !ok || g != flags {
						t.Errorf("port %d: victim saw flags %#02x (seen %v), want %#02x", port, g, ok, flags)
					}
				}
				var udpPorts []uint16
				for _, d := range read(t, udpCap, 3) {
					udpPorts = append(udpPorts, binary.BigEndian.Uint16(d[2:]))
				}
				slices.Sort(udpPorts)
				if !slices.Equal(udpPorts, []uint16{53, 123, 161}) {
					t.Errorf("victim saw udp to %v, want [53 123 161]", udpPorts)
				}
			})

			t.Run("KernelChecksBadChecksums", func(t *testing.T) {
				// The victim answers our SYNs only because their
				// checksums are right: one made wrong on purpose gets
				// no reset back.
				err := p.Attacker.Do(func() error {
					c, err := dialRaw(f.attacker, f.victim)
					if err != nil {
						return err
					}
					defer c.Close()
					good := appendSegment(nil, f.attacker, f.victim, 45001, 3001, 1, 0, SYN)
					bad := appendSegment(nil, f.attacker, f.victim, 45001, 3002, 1, 0, SYN)
					bad[16] ^= 0x01
					for _, seg := range [][]byte{bad, good} {
						if _, err := c.Write(seg); err != nil {
							return err
						}
					}
					ports := map[uint16]bool{}
					buf := make([]byte, 1500)
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					for {
						n, _, err := c.ReadFrom(buf)
						if isTimeout(err) {
							break
						}
						if err != nil {
							return err
						}
						if h, ok := parseTCP(buf[:n]); ok && h.dstPort == 45001 && h.flags&RST != 0 {
							ports[h.srcPort] = true
						}
					}
					if !ports[3001] || ports[3002] {
						t.Errorf("resets from %v, want from 3001 only", ports)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestBounds(t *testing.T) {
	netnstest.Require(t)
	p := netnstest.NewPair(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	err := p.Attacker.Do(func() error {
		if _, err := SYNScan(cancelled, p.AttackerIP4, p.VictimIP4, []uint16{1}, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("SYNScan with a cancelled context: %v", err)
		}
		if err := RawProbe(cancelled, p.AttackerIP4, p.VictimIP4, 1, SYN); !errors.Is(err, context.Canceled) {
			t.Errorf("RawProbe with a cancelled context: %v", err)
		}
		if err := UDPProbe(cancelled, p.AttackerIP4, p.VictimIP4, []uint16{1}); !errors.Is(err, context.Canceled) {
			t.Errorf("UDPProbe with a cancelled context: %v", err)
		}

		// A deadline in the middle of a slow scan: partial result.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		res, err := ConnectScan(ctx, p.AttackerIP4, netip.MustParseAddr("198.51.100.99"), portRange(1, 1000), 250*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ConnectScan past its deadline: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("ConnectScan ran %v past a 300ms deadline", d)
		}
		if n := len(res.Probes); n == 0 || n >= 1000 {
			t.Errorf("%d probes finished, want some but not all", n)
		}

		ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		r, err := SYNScan(ctx, p.AttackerIP4, p.VictimIP4, portRange(1, 1000), 100)
		if !errors.Is(err, context.DeadlineExceeded) || r.Sent == 0 || r.Sent >= 100 {
			t.Errorf("SYNScan at 100/s for 200ms: sent %d, %v", r.Sent, err)
		}

		if _, err := ConnectScan(t.Context(), p.AttackerIP6, p.VictimIP4, []uint16{1}, time.Second); err == nil {
			t.Errorf("ConnectScan accepted mixed families")
		}
		if _, err := ConnectScan(t.Context(), netip.Addr{}, p.VictimIP4, []uint16{1}, 0); err == nil {
			t.Errorf("ConnectScan accepted a zero timeout")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// capture opens a raw socket in ns that receives a copy of every proto
// ("tcp" or "udp") packet to addr, IP header stripped.
func capture(t *testing.T, ns *netnstest.NS, proto string, addr netip.Addr) *net.IPConn {
	t.Helper()
	network := "ip6:" + proto
	if addr.Is4() {
		network = "ip4:" + proto
	}
	var c *net.IPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenIP(network, &net.IPAddr{IP: addr.AsSlice()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// read returns the next n packets from c, failing the test if they do not
// arrive within two seconds.
func read(t *testing.T, c *net.IPConn, n int) [][]byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var pkts [][]byte
	buf := make([]byte, 1500)
	for len(pkts) < n {
		m, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read %d of %d packets: %v", len(pkts), n, err)
		}
		pkts = append(pkts, slices.Clone(buf[:m]))
	}
	return pkts
}
