// Package actions carries out the engine's decisions: it owns the nftables
// table that drops banned sources, and the user's alert command.
//
// # nftables
//
// NFTables owns one table, inet <Table> (default "sentry"), and nothing
// else: it never reads or changes another table. The table holds two sets,
//
//	set blocked4 { type ipv4_addr; flags interval,timeout; }
//	set blocked6 { type ipv6_addr; flags interval,timeout; }
//
// and, when the chain is managed, one base chain per hook ("input",
// "forward"; type filter, priority -10 by default, policy accept) holding
// exactly
//
//	ip saddr @blocked4 counter drop
//	ip6 saddr @blocked6 counter drop
//
// Both sets are interval sets, so a ban key of any prefix length (/32 and /64
// by default, /24 or /48 if configured) is one range: a start element that
// carries the timeout and an interval-end element, the first address after
// the prefix, without one. A single IPv4 address costs two elements instead
// of one, which buys one code path for both families and correct overlap
// handling for shorter IPv4 prefixes. The price, measured on kernel 6.18:
// an insert into an interval (rbtree) set costs time linear in the set's
// size (about 70 us median at 5,000 ranges, 1.1 ms at 30,000), where a
// plain hash set stays near 11 us; the rules engine's rate valve bounds how
// many bans arrive per minute.
//
// The kernel is the truth. NFTables keeps a small record of what it has
// banned and until when, only to decide whether a ban can take the fast path
// (one batch, one flush, no read) or must first read the set: re-banning a
// present key never shortens it, a key inside an active range extends that
// range, and a key around active ranges replaces them in one batch. The
// record is loaded from the kernel by Setup, List and the first Ban; a ban
// another process adds later with exactly the same key is not seen by the
// fast path, and on kernels that refresh timeouts on re-add it can be
// shortened (an overlapping, not equal, key is caught by the kernel's
// EEXIST and resolved).
//
// Every method talks to the kernel over one lasting netlink connection and is
// safe for concurrent use. Errors keep their cause: errors.Is(err,
// syscall.EEXIST) and errors.Is(err, os.ErrPermission) work, and a missing
// privilege names CAP_NET_ADMIN.
//
// # Exec
//
// Exec runs the user's command (an argv, never a shell) with placeholders
// substituted per argument, under a timeout and a bound on concurrent runs,
// so that a flood of decisions cannot fork-bomb the host.
package actions
