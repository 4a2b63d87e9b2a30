// Package hostinfo finds the addresses a port-scan blocker must never ban:
// this host's own addresses, its default-route gateways and its DNS
// resolvers. Readers of /proc and /etc are split from pure parsers, which
// are tested on fixture copies.
package hostinfo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Paths roots the files read, so tests and containers can point elsewhere.
type Paths struct {
	// Proc is the procfs mount, "/proc" by default.
	Proc string
	// ResolvConf lists the files searched for nameservers, in order; by
	// default /etc/resolv.conf and, for systemd-resolved's stub at
	// 127.0.0.53, the upstream list in /run/systemd/resolve/resolv.conf.
	ResolvConf []string
}

// DefaultPaths are the host's real files.
func DefaultPaths() Paths {
	return Paths{Proc: "/proc", ResolvConf: []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}}
}

// Self is the package function Self, as a method so that Paths carries
// every fact the daemon asks of the host.
func (p Paths) Self() ([]netip.Prefix, error) { return Self() }

// Self returns every address of this host's interfaces as a single-address
// prefix. Interface addresses are read over rtnetlink, no socket to the
// network is opened.
func Self() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("hostinfo: interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// Gateways returns the next hops of the default routes, IPv4 and IPv6.
func (p Paths) Gateways() ([]netip.Prefix, error) {
	var out []netip.Prefix
	v4, err := os.ReadFile(filepath.Join(p.Proc, "net/route"))
	if err != nil {
		return nil, fmt.Errorf("hostinfo: %w", err)
	}
	gws, err := ParseRoute(v4)
	if err != nil {
		return nil, fmt.Errorf("hostinfo: %s: %w", filepath.Join(p.Proc, "net/route"), err)
	}
	out = append(out, gws...)
	// IPv6 may be disabled; then there is simply no IPv6 gateway.
	if v6, err := os.ReadFile(filepath.Join(p.Proc, "net/ipv6_route")); err == nil {
		gws, err := ParseIPv6Route(v6)
		if err != nil {
			return nil, fmt.Errorf("hostinfo: %s: %w", filepath.Join(p.Proc, "net/ipv6_route"), err)
		}
		out = append(out, gws...)
	}
	return dedup(out), nil
}

// Resolvers returns the nameservers of the first resolv.conf found, and
// those of the next ones too when the first names only a local stub (so
// the upstream servers behind systemd-resolved are protected as well).
func (p Paths) Resolvers() ([]netip.Prefix, error) {
	var out []netip.Prefix
	found := false
	for _, path := range p.ResolvConf {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		found = true
		ns := ParseResolvConf(data)
		out = append(out, ns...)
		if !allLoopback(ns) {
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("hostinfo: no resolv.conf among %v", p.ResolvConf)
	}
	return dedup(out), nil
}

func allLoopback(ps []netip.Prefix) bool {
	for _, p := range ps {
		if !p.Addr().IsLoopback() {
			return false
		}
	}
	return true
}

// ParseRoute reads /proc/net/route and returns the gateways of default
// routes (destination and mask 0).
func ParseRoute(data []byte) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 0; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if n == 0 || len(f) < 8 {
			continue // header
		}
		dst, gw, mask := f[1], f[2], f[7]
		if dst != "00000000" || mask != "00000000" {
			continue
		}
		v, err := strconv.ParseUint(gw, 16, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: gateway %q: %w", n+1, gw, err)
		}
		if v == 0 {
			continue
		}
		// The kernel prints the address in host byte order (little-endian
		// on every machine we run on).
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], uint32(v))
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	return out, sc.Err()
}

// ParseIPv6Route reads /proc/net/ipv6_route and returns the next hops of
// default routes (::/0).
func ParseIPv6Route(data []byte) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		if f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("line %d: next hop %q is not 32 hex digits", n, f[4])
		}
		a := netip.AddrFrom16([16]byte(b))
		if a.IsUnspecified() {
			continue
		}
		out = append(out, netip.PrefixFrom(a, 128))
	}
	return out, sc.Err()
}

// ParseResolvConf returns the nameserver addresses of a resolv.conf.
// Zones (fe80::1%eth0) are dropped: a ban key never carries one.
func ParseResolvConf(data []byte) []netip.Prefix {
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		a = a.WithZone("").Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func dedup(ps []netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
