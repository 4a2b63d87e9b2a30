package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

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
	var since time.Time
	if *sinceStr != "" {
		d, err := config.ParseDuration(*sinceStr)
		if err != nil {
			fmt.Fprintf(e.stderr, "history: --since: %v\n", err)
			return exitUsage
		}
		since = time.Now().Add(-d)
	}
	var source netip.Prefix
	if *sourceStr != "" {
		p, err := parseKey(*sourceStr)
		if err != nil {
			fmt.Fprintf(e.stderr, "history: --source: %v\n", err)
			return exitUsage
		}
		source = p
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	}
	n := 0
	skipped, err := daemon.ReadJournal(cfg.StateDir, func(j *daemon.JournalEntry) error {
		if j.Time.Before(since) || (source.IsValid() && !j.Source.Overlaps(source)) {
			return nil
		}
		if n == 0 && tw != nil {
			fmt.Fprintln(tw, "TIME\tACTION\tSOURCE\tORIGIN\tRULE\tBAN\tEVIDENCE")
		}
		n++
		if tw == nil {
			b, err := json.Marshal(j)
			if err != nil {
				return err
			}
			out.Write(b)
			return out.WriteByte('\n')
		}
		writeHistoryLine(tw, j)
		return nil
	})
	if tw != nil {
		tw.Flush()
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "history: %v\n", err)
		return exitFailure
	}
	if skipped > 0 {
		fmt.Fprintf(e.stderr, "history: %d unreadable lines skipped (cut short by a crash?)\n", skipped)
	}
	if n == 0 && !*asJSON {
		fmt.Fprintf(e.stderr, "history: no decision in the journal of %s matches\n", cfg.StateDir)
	}
	return exitOK
}

// writeHistoryLine writes one journal entry as a table row.
func writeHistoryLine(w io.Writer, j *daemon.JournalEntry) {
	rule, ban := dash(j.Rule), "-"
	if j.BanSeconds > 0 {
		ban = actions.FormatDuration(time.Duration(j.BanSeconds) * time.Second)
	}
	var ev []string
	if j.Address.IsValid() {
		ev = append(ev, "addr="+j.Address.String())
	}
	if j.Hits > 0 {
		ev = append(ev, "hits="+strconv.FormatUint(uint64(j.Hits), 10))
	}
	if len(j.Ports) > 0 {
		ps := make([]string, len(j.Ports))
		for i, p := range j.Ports {
			ps[i] = strconv.Itoa(int(p))
		}
		s := "ports=" + strings.Join(ps, ",")
		if int(j.Distinct) > len(j.Ports) {
			s += ",..."
		}
		ev = append(ev, fmt.Sprintf("%s (%d distinct)", s, j.Distinct))
	}
	if j.Flags != "" {
		ev = append(ev, "flags="+strings.ReplaceAll(j.Flags, " ", ","))
	}
	if j.Proto != "" {
		ev = append(ev, "proto="+j.Proto)
	}
	if j.Offence > 0 {
		ev = append(ev, "offence="+strconv.FormatUint(uint64(j.Offence), 10))
	}
	if j.Reason != "" {
		ev = append(ev, strconv.Quote(j.Reason))
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Time.Format(time.RFC3339), j.Action, j.Source, j.Origin, rule, ban, strings.Join(ev, " "))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
