//go:build linux

package netnstest

import (
	"fmt"
	"net/netip"
	"testing"
)

// LAN is hosts on one Ethernet segment: a "switch" namespace holding a
// bridge, and one namespace per host joined to it by a veth pair. Host i
// has 198.51.100.(10+i)/24 and 2001:db8:51::(10+i)/64 (without duplicate
// address detection). Cut takes a host off the segment without telling
// either side: a silent partition.
type LAN struct {
	// Switch is the namespace of the bridge.
	Switch *NS
	// Hosts are the namespaces on the segment, in order.
	Hosts []*Host

	id, bridge string
}

// Host is one namespace of a LAN.
type Host struct {
	*NS
	// If is the host's interface; Port the switch's end of its link.
	If, Port string
	// IP4 and IP6 are the host's addresses.
	IP4, IP6 netip.Addr

	lan *LAN
}

// maxLANHosts bounds a LAN: the last octet of the addresses, and
// interface names within the kernel's 15 characters.
const maxLANHosts = 200

// NewLAN creates a LAN of n hosts ("snt-<id>-s" for the switch,
// "snt-<id>-h<i>" for the hosts), loopback up everywhere. Cleanup, run
// even when the test fails, kills what runs in them and deletes them. It
// fails the test if any step fails; call Require first.
func NewLAN(t testing.TB, n int) *LAN {
	t.Helper()
	if n < 1 || n > maxLANHosts {
		t.Fatalf("netnstest: NewLAN(%d): want 1-%d hosts", n, maxLANHosts)
	}
	id := uniqueID(t)
	l := &LAN{id: id, bridge: "snt" + id + "br"}
	l.Switch = newNS(t, "snt-"+id+"-s")
	ipBatch(t, l.Switch.Name, []string{
		"link set lo up",
		fmt.Sprintf("link add %s type bridge", l.bridge),
		fmt.Sprintf("link set %s up", l.bridge),
	})
	for range n {
		l.AddHost(t)
	}
	return l
}

// AddHost adds one more host to the segment and returns it.
func (l *LAN) AddHost(t testing.TB) *Host {
	t.Helper()
	i := len(l.Hosts)
	if i >= maxLANHosts {
		t.Fatalf("netnstest: a LAN holds at most %d hosts", maxLANHosts)
	}
	h := &Host{
		If: fmt.Sprintf("snt%sh%d", l.id, i), Port: fmt.Sprintf("snt%sp%d", l.id, i),
		IP4: netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}),
		IP6: netip.MustParseAddr(fmt.Sprintf("2001:db8:51::%x", 0x10+i)),
		lan: l,
	}
	h.NS = newNS(t, fmt.Sprintf("snt-%s-h%d", l.id, i))
	// Created in the switch with the peer moved straight into the host:
	// the host namespace of the machine never sees either end.
	ipCmd(t, "-n", l.Switch.Name, "link", "add", h.Port, "type", "veth", "peer", "name", h.If, "netns", h.Name)
	ipBatch(t, l.Switch.Name, []string{
		fmt.Sprintf("link set %s master %s", h.Port, l.bridge),
		fmt.Sprintf("link set %s up", h.Port),
	})
	ipBatch(t, h.Name, []string{
		"link set lo up",
		fmt.Sprintf("addr add %s dev %s", netip.PrefixFrom(h.IP4, prefixLen4), h.If),
		fmt.Sprintf("addr add %s dev %s nodad", netip.PrefixFrom(h.IP6, prefixLen6), h.If),
		fmt.Sprintf("link set %s up", h.If),
	})
	l.Hosts = append(l.Hosts, h)
	return h
}

// Cut takes h off the segment silently: the switch's port goes down, so
// what h sends and what is sent to it vanishes, and no side gets an error
// or a reset. Mend puts it back.
func (h *Host) Cut(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", h.lan.Switch.Name, "link", "set", h.Port, "down")
}

// Mend puts h back on the segment after Cut.
func (h *Host) Mend(t testing.TB) {
	t.Helper()
	ipCmd(t, "-n", h.lan.Switch.Name, "link", "set", h.Port, "up")
}

// AddAddrs adds addrs to h's interface (IPv4 as /32, IPv6 as /128 without
// duplicate address detection), to use as extra sources on the segment;
// every other host gets a route to them through h.
func (h *Host) AddAddrs(t testing.TB, addrs ...netip.Addr) {
	t.Helper()
	subnet4 := netip.PrefixFrom(h.IP4, prefixLen4).Masked()
	subnet6 := netip.PrefixFrom(h.IP6, prefixLen6).Masked()
	var own []string
	var routes []string
	for _, a := range addrs {
		a = a.Unmap()
		line := fmt.Sprintf("addr add %s dev %s", netip.PrefixFrom(a, a.BitLen()), h.If)
		if a.Is6() {
			line += " nodad"
		}
		own = append(own, line)
		if !subnet4.Contains(a) && !subnet6.Contains(a) {
			via := h.IP4
			if a.Is6() {
				via = h.IP6
			}
			routes = append(routes, fmt.Sprintf("route add %s via %s", netip.PrefixFrom(a, a.BitLen()), via))
		}
	}
	ipBatch(t, h.Name, own)
	for _, o := range h.lan.Hosts {
		if o != h {
			ipBatch(t, o.Name, routes)
		}
	}
}
