package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
)

// maxReason bounds a manual ban's reason: it is kept in state_dir, shown by
// list and written to the journal.
const maxReason = 200

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
	if err := checkReason(*reason); err != nil {
		fmt.Fprintf(e.stderr, "block: --reason: %v\n", err)
		return exitUsage
	}
	targets, err := blockTargets(e, fs.Args(), *file)
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
	dur, err := blockDuration(e, cfg, *forStr)
	if err != nil {
		fmt.Fprintf(e.stderr, "block: --for: %v\n", err)
		return exitUsage
	}

	// The daemon's checks, with this host's ignore list as the daemon
	// resolves it. A word that cannot be resolved refuses everything:
	// the ban could cover what it stands for.
	ignore, errs := daemon.ResolveIgnore(cfg, host)
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintf(e.stderr, "block: cannot resolve the %v: refusing, since a ban could cover it (fix it, or remove the word from ignore in %s)\n", err, cfg.File)
		}
		return exitFailure
	}
	guard := daemon.NewGuard(ignore, cfg.Engine)
	type planned struct {
		asked netip.Prefix
		block daemon.Block
		keys  []netip.Prefix
	}
	var plan []planned
	refused, total := 0, 0
	for _, t := range targets {
		key, keys, err := guard.ManualKey(t.key, *force)
		if err != nil {
			refused++
			msg := err.Error()
			if t.line > 0 {
				msg = fmt.Sprintf("%s line %d: %s", *file, t.line, msg)
			}
			fmt.Fprintf(e.stderr, "block: refused: %s\n", msg)
			continue
		}
		total += len(keys)
		plan = append(plan, planned{asked: t.key, keys: keys,
			block: daemon.Block{Key: key, Reason: *reason, Force: key.Bits() < want(cfg, key)}})
	}
	if refused > 0 {
		fmt.Fprintf(e.stderr, "block: %d of %d refused: nothing banned\n", refused, len(targets))
		return exitFailure
	}
	if total > daemon.MaxBlockKeys {
		fmt.Fprintf(e.stderr, "block: %d bans, more than the %d one block takes: nothing banned; split the list\n", total, daemon.MaxBlockKeys)
		return exitUsage
	}

	// Recorded first, so the daemon puts back whatever the kernel does not
	// take now (no table yet, a flush racing this).
	now := time.Now()
	var bs []daemon.Block
	for _, p := range plan {
		p.block.Until = now.Add(dur)
		bs = append(bs, p.block)
	}
	recorded, err := daemon.AddBlocks(cfg.StateDir, bs, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "block: cannot record the bans in %s: %v: nothing banned\n", cfg.StateDir, err)
		return exitFailure
	}
	nft, code := openTable(e, "block", cfg)
	if code >= 0 {
		fmt.Fprintf(e.stderr, "block: recorded in %s: the daemon inserts the bans when it runs\n", cfg.StateDir)
		return code
	}
	defer nft.Close()
	code = exitOK
	noTable := false
	for i, p := range plan {
		rec := recorded[i]
		left := time.Until(rec.Until).Round(time.Second)
		var failed error
		for _, k := range p.keys {
			err := nft.BanManual(k, left)
			if errors.Is(err, syscall.ENOENT) {
				noTable = true
				break
			}
			if err != nil {
				failed = err
				break
			}
		}
		what := rec.Key.String()
		if rec.Key.Bits() < p.asked.Bits() {
			what = fmt.Sprintf("%s (its ban key, bans.ipv4_prefix)", rec.Key)
		}
		if len(p.keys) > 1 {
			what = fmt.Sprintf("%s (as %d bans of /%d)", rec.Key, len(p.keys), p.keys[0].Bits())
		}
		switch {
		case failed != nil:
			fmt.Fprintf(e.stderr, "block: %s: %v (recorded: the daemon retries within 10 s)\n", rec.Key, failed)
			code = exitFailure
		default:
			asked := p.asked.String()
			if p.asked.IsSingleIP() {
				asked = p.asked.Addr().String()
			}
			fmt.Fprintf(e.stdout, "%s: blocked %s for %s, until %s\n", asked, what, actions.FormatDuration(left), rec.Until.Format(time.RFC3339))
		}
	}
	if noTable {
		fmt.Fprintf(e.stderr, "block: table inet %s does not exist (the daemon has not run since boot): recorded in %s; the daemon inserts the bans when it starts\n", cfg.NFTables.Table, cfg.StateDir)
	}
	return code
}

// want returns the ban key length of key's family.
func want(cfg *config.Config, key netip.Prefix) int {
	if key.Addr().Is4() {
		return cfg.Engine.Bans.IPv4Prefix
	}
	return cfg.Engine.Bans.IPv6Prefix
}

// blockDuration is --for, or bans.manual_ban; either is capped at
// bans.max_ban, with a note.
func blockDuration(e *env, cfg *config.Config, s string) (time.Duration, error) {
	if s == "" {
		return cfg.ManualBan, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < time.Second {
		return 0, fmt.Errorf("%s: want 1s or more", s)
	}
	if m := cfg.Engine.Bans.MaxBan; m > 0 && d > m {
		fmt.Fprintf(e.stderr, "block: --for %s is longer than bans.max_ban: banning for %s\n", s, actions.FormatDuration(m))
		d = m
	}
	return d, nil
}

func checkReason(s string) error {
	if len(s) > maxReason {
		return fmt.Errorf("%d bytes, at most %d", len(s), maxReason)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("control characters (a newline?) are not allowed")
	}
	return nil
}

// target is one address or prefix to block, with its line in --file.
type target struct {
	key  netip.Prefix
	line int
}

// blockTargets reads the arguments, then --file: at most
// daemon.MaxBlockKeys in all.
func blockTargets(e *env, args []string, file string) ([]target, error) {
	var out []target
	for _, a := range args {
		p, err := parseKey(a)
		if err != nil {
			return nil, err
		}
		out = append(out, target{key: p})
	}
	if file == "" {
		return out, nil
	}
	var r io.Reader = e.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(out) == daemon.MaxBlockKeys {
			return nil, fmt.Errorf("%s: more than %d addresses and prefixes: nothing banned; split the list", file, daemon.MaxBlockKeys)
		}
		p, err := parseKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %v", file, n, err)
		}
		out = append(out, target{key: p, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(out) > daemon.MaxBlockKeys {
		return nil, fmt.Errorf("more than %d addresses and prefixes: nothing banned; split the list", daemon.MaxBlockKeys)
	}
	return out, nil
}
