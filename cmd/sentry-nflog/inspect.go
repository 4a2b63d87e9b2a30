package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/ops"
)

// The commands that read what the daemon leaves in state_dir.

func cmdHistory(_ context.Context, e *env, args []string) int {
	fs := flags(e, "history", "[--config FILE] [--since DURATION] [--source ADDR|PREFIX] [--json]", `Show past decisions, oldest first, from the decision journal the daemon
keeps in state_dir: each with its evidence (rule, ports, hits, offence),
the ban's length, its origin (daemon for this host's rules, fleet:<host>
for a ban another host decided and this one applied, manual for block and
unblock) and the action (ban, ignored, rate-limited, block, pardon). The
time is the decision's: the kernel's or the log's time of the packet that
crossed the threshold. The journal keeps the last 16 to 32 MiB of
decisions (tens of thousands).

Examples:
  sentry-nflog history --since 7d
  sentry-nflog history --source 203.0.113.7
  sentry-nflog history --json | jq -r 'select(.action == "ban") | .source'`)
	cfgPath := fs.String("config", "", "config `FILE` naming state_dir (default: the embedded sentry.yaml)")
	sinceStr := fs.String("since", "", "only decisions of the last `DURATION` (90m, 12h, 7d); default all the journal holds")
	sourceStr := fs.String("source", "", "only decisions about `ADDR|PREFIX` (an address inside a banned prefix matches it)")
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	filter, err := ops.ParseHistoryFilter(*sinceStr, *sourceStr, time.Now())
	if err != nil {
		fmt.Fprintf(e.stderr, "history: %v\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	return exitCode(ops.New("history", e.stdout, e.stderr, nil).History(cfg.StateDir, filter, *asJSON))
}

func cmdStatus(_ context.Context, e *env, args []string) int {
	fs := flags(e, "status", "[--config FILE] [--json]", `Show what the running daemon is doing, on one screen: its inputs and their
health, events and decisions per minute, the bans in the kernel by origin,
first strike (applied, or degraded when the kernel refused it) and fleet
state, and its last errors and warnings. The daemon rewrites a status file
in state_dir every 5 seconds (no socket); this reads it, and says when it
is stale: the daemon stopped, was killed, or no longer runs. Exit status
0 when the daemon runs, 1 when it does not.

Examples:
  sentry-nflog status
  sentry-nflog status --json | jq .bans.active`)
	cfgPath := fs.String("config", "", "config `FILE` naming state_dir (default: the embedded sentry.yaml)")
	asJSON := fs.Bool("json", false, "print JSON: the status file, with running and note")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	return exitCode(ops.New("status", e.stdout, e.stderr, nil).Status(cfg.StateDir, *asJSON))
}
