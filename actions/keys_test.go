package actions

import "net/netip"

// v4Key returns the i-th distinct /32 in 10.0.0.0/8.
func v4Key(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
}

// v6Key returns the i-th distinct /64 in 2001:db8::/32.
func v6Key(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
}
