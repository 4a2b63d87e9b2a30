// Package actions carries out the engine's decisions: it owns the nftables
// table that drops banned sources, the user's alert command, and the report
// that prints decisions instead of acting on them.
//
// # The table
//
// Table owns one table, inet <TableSpec.Table> (default "sentry"), and
// nothing else: it never reads or changes another table. It is the only
// type that talks to nf_tables, over one lasting netlink connection, and
// the table's whole desired state is one value, TableSpec: the ban sets and
// chains, first strike, advanced mode, the sources first strike never
// strikes and the ports something listens on. Apply makes the kernel match
// a spec in one batch sent with one flush, so there is never a moment with
// half of it; at start, after a reload and after the table was tampered
// with (Missing names what is gone) the daemon does the same thing: apply
// the spec again. Apply keeps the bans, rewrites every chain of ours (a
// second Apply leaves one copy of each rule) and deletes what the spec no
// longer has. A batch that fails while being built is never sent: the
// connection, with what it queued, is replaced.
//
// The table always holds three sets,
//
//	set blocked4 { type ipv4_addr; size 16777216; flags dynamic,timeout; }
//	set blocked6 { type ipv6_addr; flags interval,timeout; }
//	set strike6 { type ipv6_addr; size 65536; flags dynamic,timeout; }
//
// and, with TableSpec.ManageChain, one base chain per hook ("input",
// "forward"; type filter, priority -10 by default, policy accept) holding
// exactly
//
//	ip saddr @blocked4 counter drop
//	ip6 saddr @blocked6 counter drop
//	ip6 saddr & ffff:ffff:ffff:ffff:: @strike6 counter drop
//
// blocked4 and strike6 have flags dynamic so that first strike (below) can
// ban from the packet path; strike6 holds first strike's IPv6 bans as
// network addresses of TableSpec.IPv6Prefix bits, because blocked6 is an
// interval set, which the packet path cannot add to. Ban comments its
// elements BanComment; an element of blocked4 without it, and every
// element of strike6, is a provisional kernel ban (BanEntry.Origin
// "kernel"). Ban of a key the kernel struck replaces that element in one
// batch (add, delete, add), so it carries the daemon's timeout and
// comment, even a shorter timeout: a kernel ban is provisional. The
// daemon's own bans are never shortened.
//
// BanFrom is Ban for a ban another host decided (fleet mode): its element
// carries the comment "sentry-nflog fleet:<origin>" (FleetComment), which
// List reports as Origin "fleet:<origin>"; it is the daemon's all the same,
// never a provisional one. BanManual is Ban for a manual ban
// (`sentry-nflog block`): its element carries "sentry-nflog manual"
// (BlockComment), Origin "block"; it takes over the daemon's element of
// the same key (keeping the longer time), and Unblock lifts it, unlike an
// administrator's element.
//
// blocked4 is a plain hash set, one element per ban, so that an insert
// costs the same however many bans it holds (measured on kernel 6.18: about
// 8-9 us median and 40-70 us p99 at 5,000 and 30,000 elements, where an
// interval set reached 1.1 ms median at 30,000) and so that the packet path
// can add to it (`add @blocked4 { ip saddr timeout T }`). IPv4 ban keys
// shorter than /32 (TableSpec.IPv4Prefix, from bans.ipv4_prefix) are
// stored as their network address, and the rule masks the source before
// the lookup, for /24:
//
//	ip saddr & 255.255.255.0 @blocked4 counter drop
//
// A user ruleset that refers to blocked4 without the managed chain must
// mask the same way. Apply replaces a blocked4 left by an earlier version
// (an interval set, or a plain set without flags dynamic), carrying its
// bans over, and realigns the elements when the prefix was shortened.
//
// blocked6 stays an interval set, because a /64 (the default IPv6 key) is
// one range: a start element that carries the timeout and an interval-end
// element, the first address after the prefix, without one. Its inserts
// grow with its size (about 80 us median at 5,000 ranges); the rules
// engine's rate valve bounds how many bans arrive per minute.
//
// The kernel is the truth. Table keeps a small record of what it has
// banned and until when, only to decide whether a ban can take the fast path
// (one batch, one flush, no read) or must first read the set: re-banning a
// present key never shortens it (an extension is a delete and an add in one
// batch), an IPv6 key inside an active range extends that range, and one
// around active ranges replaces them in one batch. Reading a set costs time
// in its size (about 150 ms for 30,000 IPv4 elements), so only re-bans of
// known keys, Unblock and List pay it. The record is loaded from the kernel
// by List and the first Ban after OpenTable or Apply. A ban another process
// adds later with exactly the same key is not seen by the fast path, and
// since this kernel sets the new timeout when a present element is added
// again, it can be shortened (an overlapping, not equal, IPv6 key is caught
// by the kernel's EEXIST and resolved).
//
// Every method is safe for concurrent use. Errors keep their cause:
// errors.Is(err, syscall.EEXIST) and errors.Is(err, os.ErrPermission) work,
// and a missing privilege names CAP_NET_ADMIN.
//
// # First strike
//
// TableSpec.FirstStrike adds a base chain "firststrike" (hook input,
// priority -7: after the ban chains, before advanced mode), a regular chain
// per rule ("fs<i>") with its counting sets ("fs<i>_probes4",
// "fs<i>_rate4", ...), a chain "strike" and the sets allow4 and allow6
// (TableSpec.Allow). It counts each rule's probes per source in the kernel
// and, at the threshold, adds the source to blocked4 or strike6 with a
// provisional timeout, logs the probe to NFLOG (prefix "SENTRY-FS") and
// drops it, so a fast scanner learns at most threshold-1 answers. Ports
// something listens on (the sets listen_tcp and listen_udp, from
// TableSpec.Listen and SetListening, read by advanced mode too) are never
// counted. A valve bounds strikes per minute; every counting set is bounded
// in size and times out. Forget clears a source's counting state.
//
// # Advanced mode
//
// TableSpec.Advanced adds a base chain "advanced" (hook input, priority -5)
// and the sets watch_tcp and watch_udp: it logs to NFLOG the probes of
// watched ports nothing listens on, without a socket, and leaves the
// verdict to the user's firewall.
//
// # Exec
//
// Exec runs the user's command (an argv, never a shell) with placeholders
// substituted per argument, under a timeout and a bound on concurrent runs,
// so that a flood of decisions cannot fork-bomb the host. {source} is the
// ban key as a prefix and {address} the single address, as "source" and
// "address" are in a decision's JSON.
//
// # Report
//
// Report is the action of a dry run (`run --dry-run`) and of replay: it bans
// nothing and writes each decision as it happens, as one readable line
// (AppendText) or as one JSON object a line (DecisionJSON, the public
// shape of `replay --json`).
package actions
