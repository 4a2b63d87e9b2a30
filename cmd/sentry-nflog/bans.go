package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// configAndTable loads the config and opens its table for a command,
// reporting failures on stderr with the exit status to return (-1: go on).
func configAndTable(e *env, cmd, path string) (*config.Config, *actions.Table, int) {
	cfg, err := loadConfig(path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return nil, nil, exitUsage
	}
	t, code := openTable(e, cmd, cfg)
	return cfg, t, code
}

// openTable opens cfg's table for a command, as configAndTable does.
func openTable(e *env, cmd string, cfg *config.Config) (*actions.Table, int) {
	spec := daemon.TableSpec(cfg)
	// First strike's provisional timeout tells its bans in blocked4 (no
	// comment: the packet path cannot write one) from an administrator's.
	if fc, _, ok := daemon.StrikeConfig(cfg); ok {
		spec.FirstStrike = &fc
	}
	t, err := actions.OpenTable(spec, 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", cmd, err)
		return nil, exitFailure
	}
	return t, -1
}

func cmdList(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "list", "[--config FILE] [--json] [--fleet]", `Show the active bans, read from the kernel's sets (inet sentry by default):
each banned prefix with the time left, its full ban and where it came from
(daemon; kernel for first strike's provisional bans; fleet:<origin> for a
ban another host decided; manual for a ban made with block, with its
reason, and for an element added by hand with nft, which the daemon never
changes; in JSON, "by" tells them apart: block, or nft), then the packets
and bytes the drop rules have stopped. With --fleet, show instead the fleet's active bans and pardons,
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
	if *fromFleet {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitUsage
		}
		return listFleet(ctx, e, cfg, *asJSON)
	}
	cfg, nft, code := configAndTable(e, "list", *cfgPath)
	if code >= 0 {
		return code
	}
	defer nft.Close()
	bans, err := nft.List()
	if errors.Is(err, syscall.ENOENT) {
		// No table yet: the daemon has not run in this namespace.
		fmt.Fprintf(e.stderr, "list: table inet %s does not exist: the daemon has not run here, nothing is banned\n", cfg.NFTables.Table)
		bans, err = nil, nil
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "list: %v\n", err)
		return exitFailure
	}
	sort.Slice(bans, func(i, j int) bool { return bans[i].Expires > bans[j].Expires })
	reasons := readReasons(cfg.StateDir)
	counters, cerr := nft.Counters()
	strikeSets := strikeSetsOf(nft.StrikeSets) // strikesets.go
	if *asJSON {
		type ban struct {
			Source      string `json:"source"`
			LeftSeconds int64  `json:"left_seconds"`
			BanSeconds  int64  `json:"ban_seconds"`
			Origin      string `json:"origin"`
			By          string `json:"by,omitempty"`
			Reason      string `json:"reason,omitempty"`
		}
		type dropped struct {
			Packets4 uint64 `json:"packets4"`
			Bytes4   uint64 `json:"bytes4"`
			Packets6 uint64 `json:"packets6"`
			Bytes6   uint64 `json:"bytes6"`
		}
		out := struct {
			Table      string          `json:"table"`
			Bans       []ban           `json:"bans"`
			Counters   *dropped        `json:"counters,omitempty"`
			StrikeSets []strikeSetJSON `json:"first_strike_full,omitempty"`
		}{Table: "inet " + cfg.NFTables.Table, Bans: []ban{}, StrikeSets: strikeSets}
		for _, b := range bans {
			jb := ban{Source: b.Key.String(), LeftSeconds: int64(b.Expires / time.Second), BanSeconds: int64(b.Timeout / time.Second), Origin: b.Origin}
			switch b.Origin {
			case actions.OriginBlock:
				jb.Origin, jb.By, jb.Reason = actions.OriginManual, "block", reasons.of(b.Key)
			case actions.OriginManual:
				jb.By = "nft"
			}
			out.Bans = append(out.Bans, jb)
		}
		if cerr == nil && cfg.NFTables.ManageChain {
			out.Counters = &dropped{counters.Packets4, counters.Bytes4, counters.Packets6, counters.Bytes6}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%d active bans in inet %s\n", len(bans), cfg.NFTables.Table)
	if len(bans) > 0 {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tTIME LEFT\tBAN\tBY")
		for _, b := range bans {
			by := b.Origin
			switch b.Origin {
			case actions.OriginKernel:
				by = "kernel (first strike, provisional)"
			case actions.OriginManual:
				by = "manual (added with nft; never changed by sentry-nflog)"
			case actions.OriginBlock:
				by = "manual (block)"
				if r := reasons.of(b.Key); r != "" {
					by = fmt.Sprintf("manual (block: %s)", r)
				}
			}
			left, full := actions.FormatDuration(b.Expires.Round(time.Second)), actions.FormatDuration(b.Timeout)
			if b.Timeout == 0 {
				left, full = "-", "no timeout"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Key, left, full, by)
		}
		tw.Flush()
	}
	if cerr == nil && cfg.NFTables.ManageChain {
		fmt.Fprintf(e.stdout, "dropped: IPv4 %d packets (%d bytes), IPv6 %d packets (%d bytes)\n",
			counters.Packets4, counters.Bytes4, counters.Packets6, counters.Bytes6)
	}
	writeStrikeSets(e.stdout, strikeSets)
	return exitOK
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
	var keys []netip.Prefix
	for _, a := range fs.Args() {
		p, err := parseKey(a)
		if err != nil {
			fmt.Fprintf(e.stderr, "unblock: %v\n", err)
			return exitUsage
		}
		keys = append(keys, p)
	}
	cfg, nft, code := configAndTable(e, "unblock", *cfgPath)
	if code >= 0 {
		return code
	}
	defer nft.Close()
	if *toFleet && cfg.Fleet == nil {
		fmt.Fprintf(e.stderr, "unblock: --fleet: %s has no fleet section\n", cfg.File)
		return exitUsage
	}
	at := time.Now()
	code = exitOK
	for _, k := range keys {
		// The record first: the daemon must not put back what this lifts.
		lifted, err := daemon.RemoveBlocks(cfg.StateDir, k, at)
		if err != nil {
			fmt.Fprintf(e.stderr, "unblock: manual bans in %s: %v\n", cfg.StateDir, err)
			return exitFailure
		}
		for _, b := range lifted {
			if b.Key != k {
				// The whole manual ban goes: an IPv4 prefix is banned as
				// its keys, which k alone would not lift.
				if _, err := nft.Unblock(b.Key); err != nil && !errors.Is(err, actions.ErrNotBanned) && !errors.Is(err, syscall.ENOENT) {
					fmt.Fprintf(e.stderr, "unblock: %v\n", err)
				}
			}
			fmt.Fprintf(e.stdout, "%s: manual ban %s lifted\n", k, b.Key)
		}
		removed, err := nft.Unblock(k)
		switch {
		case (errors.Is(err, actions.ErrNotBanned) || errors.Is(err, syscall.ENOENT)) && len(lifted) > 0:
			// Lifted above, or not in the kernel (no table yet).
		case errors.Is(err, actions.ErrNotBanned), errors.Is(err, syscall.ENOENT):
			fmt.Fprintf(e.stdout, "%s: not banned\n", k)
			if !*toFleet { // the fleet may hold it elsewhere
				code = exitFailure
			}
		case err != nil:
			fmt.Fprintf(e.stderr, "unblock: %v\n", err)
			return exitFailure
		default:
			var s []string
			for _, r := range removed {
				s = append(s, r.String())
			}
			fmt.Fprintf(e.stdout, "%s: unblocked %s\n", k, strings.Join(s, ", "))
		}
		// Stale first-strike counters must not strike the source again
		// before the daemon has read the pardon.
		if err := nft.Forget(k); err != nil && !errors.Is(err, syscall.ENOENT) {
			fmt.Fprintf(e.stderr, "unblock: first strike: %v\n", err)
		}
		// Pardon even what was not banned: the daemon may hold evidence
		// about to cross a threshold, or a rate-limited decision.
		if err := daemon.AppendPardon(cfg.StateDir, k, at); err != nil {
			fmt.Fprintf(e.stderr, "unblock: cannot tell the daemon (%v): it may ban %s again on the same evidence\n", err, k)
			code = exitFailure
		}
	}
	if *toFleet {
		if c := pardonFleet(ctx, e, cfg, keys, at); c != exitOK {
			return c
		}
	}
	return code
}

// parseKey takes an address or a prefix.
func parseKey(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// blockReasons finds the reason of a manual ban's element: the record of
// its key, or of a prefix holding it (a forced IPv4 prefix is banned as
// its keys).
type blockReasons map[netip.Prefix]string

// readReasons reads the manual bans' reasons from stateDir; without them
// (unreadable as this user), list shows manual bans without reasons.
func readReasons(stateDir string) blockReasons {
	bs, err := daemon.ReadBlocks(stateDir)
	if err != nil {
		return nil
	}
	r := blockReasons{}
	for _, b := range bs {
		r[b.Key] = b.Reason
	}
	return r
}

func (r blockReasons) of(key netip.Prefix) string {
	if len(r) == 0 {
		return ""
	}
	for bits := key.Bits(); bits >= 0; bits-- {
		p, _ := key.Addr().Prefix(bits)
		if reason, ok := r[p]; ok {
			return reason
		}
	}
	return ""
}
