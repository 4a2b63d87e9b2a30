package main

import (
	"context"
	"fmt"

	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/internal/ops"
)

func cmdList(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "list", "[--config FILE] [--json] [--fleet]", `Show the active bans, read from the kernel's sets (inet sentry by default):
each banned prefix with the time left, its full ban and where it came from
(daemon; kernel for first strike's provisional bans; fleet:<origin> for a
ban another host decided; manual for a ban made with block, with its
reason, and for an element added by hand with nft, which the daemon never
changes; in JSON, "by" tells them apart: block, or nft); then the manual
bans held by a wider ban of the daemon's that outlives them, with that ban
(JSON: "manual_inside"); then the packets and bytes the drop rules have
stopped. With --fleet, show instead the fleet's active bans and pardons,
read from its stream, with origin and time left.

Examples:
  sentry-nflog list
  sentry-nflog list --json | jq -r '.bans[].source'
  sentry-nflog list --fleet`)
	cfgPath := fs.String("config", "", "config `FILE` naming the table (default: the embedded sentry.yaml)")
	asJSON := fs.Bool("json", false, "print JSON")
	fromFleet := fs.Bool("fleet", false, "list the fleet's active bans from its stream (needs a fleet section)")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	c := ops.New("list", e.stdout, e.stderr, nil)
	if *fromFleet {
		return exitCode(c.ListFleet(ctx, cfg, *asJSON))
	}
	return exitCode(c.List(cfg, *asJSON))
}

func cmdBlock(_ context.Context, e *env, args []string) int {
	return block(e, args, hostinfo.DefaultPaths())
}

// block is the block command with the host whose addresses are never
// banned (the real one, or a test's).
func block(e *env, args []string, host daemon.Host) int {
	fs := flags(e, "block", "[--config FILE] [--for DURATION] [--reason TEXT] [--force] [--file FILE] ADDR|PREFIX...", `Ban addresses or prefixes by hand, now, for --for (default bans.manual_ban,
1d; at most bans.max_ban). They pass the daemon's own checks: never this
host's addresses, its gateways, its resolvers or anything in the ignore
list, and nothing wider than the ban keys (bans.ipv4_prefix,
bans.ipv6_prefix) without --force, which lifts that check alone. An IPv4
prefix forced past bans.ipv4_prefix is banned as the ban keys it holds
(at most 10000). If any address is refused, nothing is banned.

A manual ban is listed as manual by list, with its reason; it is kept in
state_dir and put back by the daemon with its time left after a restart,
a reboot or a flush of the sets, like the daemon's own bans. It never
counts as an offence and is never published to the fleet. unblock lifts
it. It works whether the daemon runs or not: the command inserts the ban
itself, and a running daemon takes note of it within a second or two.

Examples:
  sentry-nflog block 203.0.113.7 --for 7d --reason "ssh brute force"
  sentry-nflog block 2001:db8:bad:1::/64
  sentry-nflog block --force --reason "hosting range" 198.51.100.0/24
  sentry-nflog block --file scanners.txt   # one address or prefix a line, # comments`)
	cfgPath := fs.String("config", "", "config `FILE` naming the table, the ignore list and state_dir (default: the embedded sentry.yaml)")
	forStr := fs.String("for", "", "how long to ban (`DURATION`: 90m, 12h, 7d); default bans.manual_ban")
	reason := fs.String("reason", "", "why, kept with the ban and shown by list and history (`TEXT`)")
	force := fs.Bool("force", false, "allow a prefix wider than the ban keys (never an ignored address)")
	file := fs.String("file", "", "read addresses and prefixes from `FILE`, one a line, # comments ('-': standard input)")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if err := ops.CheckReason(*reason); err != nil {
		fmt.Fprintf(e.stderr, "block: --reason: %v\n", err)
		return exitUsage
	}
	targets, err := ops.ReadTargets(fs.Args(), *file, e.stdin)
	if err != nil {
		fmt.Fprintf(e.stderr, "block: %v\n", err)
		return exitUsage
	}
	if len(targets) == 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	req := ops.BlockRequest{Targets: targets, File: *file, For: *forStr, Reason: *reason, Force: *force}
	return exitCode(ops.New("block", e.stdout, e.stderr, host).Block(cfg, req))
}

func cmdUnblock(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "unblock", "[--config FILE] [--fleet] ADDR|PREFIX...", `Remove bans now. An address inside a banned range (an IPv6 /64) lifts that
range, and an address inside a manual ban (block) lifts that manual ban,
which the daemon then no longer puts back. The running daemon is told
(through state_dir) and pardons the evidence: the same packets will not
ban the source again, and this offence does not count towards a longer
ban next time. Elements added by hand with nft are left as they are. With --fleet, also publish
a pardon that every host of the fleet applies: each lifts its bans of the
key, whoever decided them, and forgets the evidence.

Examples:
  sentry-nflog unblock 203.0.113.7
  sentry-nflog unblock 2001:db8:bad:1::/64
  sentry-nflog unblock --fleet 203.0.113.7`)
	cfgPath := fs.String("config", "", "config `FILE` naming the table and state_dir (default: the embedded sentry.yaml)")
	toFleet := fs.Bool("fleet", false, "also publish a pardon every host of the fleet applies (needs a fleet section)")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	keys, err := ops.ParseKeys(fs.Args())
	if err != nil {
		fmt.Fprintf(e.stderr, "unblock: %v\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	return exitCode(ops.New("unblock", e.stdout, e.stderr, nil).Unblock(ctx, cfg, keys, *toFleet))
}
