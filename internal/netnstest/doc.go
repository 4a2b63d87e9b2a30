// Package netnstest builds throwaway network namespaces for end-to-end tests
// and benchmarks: a victim and an attacker joined by a veth pair (Pair), or
// any number of hosts on one segment through a bridge in a switch
// namespace (LAN, whose Cut makes a silent partition), with documentation
// addresses (198.51.100.0/24, 2001:db8:51::/64).
//
// It owns nothing outside the namespaces it creates: it never touches the
// firewall, routes or sysctls of the host namespace, every namespace gets a
// unique name, and t.Cleanup kills the processes left in them and deletes
// them even when the test fails. It needs root and the ip(8) tool; Require
// skips a test without them, or fails it when CI=true.
package netnstest
