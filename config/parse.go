package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// parsePrefix takes a CIDR or a single address; an address with host bits
// set under its mask is refused, since it usually hides a typo.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set beyond /%d (did you mean %s?)", s, p.Bits(), p.Masked())
	}
	return p, nil
}

func parseProto(s string) (uint8, bool) {
	switch strings.ToLower(s) {
	case "tcp":
		return parsers.ProtoTCP, true
	case "udp":
		return parsers.ProtoUDP, true
	case "icmp":
		return parsers.ProtoICMP, true
	case "icmpv6", "ipv6-icmp":
		return parsers.ProtoICMPv6, true
	case "sctp":
		return parsers.ProtoSCTP, true
	case "udplite":
		return parsers.ProtoUDPLite, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}

// parsePorts reads "22", "1-1023" or a comma list of those.
func parsePorts(s string) ([]rules.PortRange, error) {
	var out []rules.PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not a port (0-65535) or range such as 1-1023", part)
		}
		if a > b {
			return nil, fmt.Errorf("range %q runs backwards", part)
		}
		out = append(out, rules.PortRange{Lo: uint16(a), Hi: uint16(b)})
	}
	return out, nil
}

// addPorts adds the ports of s (as parsePorts reads them) to set.
func addPorts(set *rules.PortSet, s string) error {
	rs, err := parsePorts(s)
	for _, r := range rs {
		set.Add(r.Lo, r.Hi)
	}
	return err
}

// duration parses a Go duration, also taking days ("7d", "1d12h").
func (l *loader) duration(path, s string) (time.Duration, bool) {
	d, err := ParseDuration(s)
	if err != nil {
		l.addAt(path, "%v", err)
		return 0, false
	}
	return d, true
}

// ParseDuration parses a duration such as "90s", "1h30m" or "7d".
func ParseDuration(s string) (time.Duration, error) {
	rest := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want a number and a unit: 90s, 15m, 1h, 7d)", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = s[i+1:]
		if rest == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a number and a unit: 90s, 15m, 1h, 7d)", s)
	}
	return days + d, nil
}

// parseSize parses a byte size: a number with an optional KiB, MiB or GiB.
func parseSize(s string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > math.MaxInt32/mult {
		return 0, fmt.Errorf("invalid size")
	}
	return n * mult, nil
}
