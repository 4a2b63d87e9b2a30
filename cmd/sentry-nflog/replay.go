package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/replay"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

func cmdReplay(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "replay", "[--config FILE] [--json] FILE...", `Run the rules over saved kernel logs, in the logs' own time, and print each
decision as it would have happened: which source, when, for how long and why.
Nothing is banned. Use it to tune rules before enforcing them.

FILE is a kernel or firewall log: syslog (classic, RFC 3339, <PRI>, RFC 5424,
localized month names), journalctl -k (short, short-iso, short-precise,
short-monotonic, json, json-seq), OpenWrt logread, dmesg (plain, -T, -r),
/dev/kmsg records, Proxmox VE's pve-firewall.log, and records relayed by
UniFi, EdgeOS, Shorewall or ulogd; .gz is read transparently; - is standard
input. Decisions go to standard output, a summary to standard error.

Examples:
  sentry-nflog replay /var/log/kern.log /var/log/kern.log.1.gz
  journalctl -k -o json --since yesterday | sentry-nflog replay -
  sentry-nflog replay --tz Europe/Berlin /var/log/pve-firewall.log
  sentry-nflog replay --json --config my.yaml ufw.log | jq .source`)
	cfgPath := fs.String("config", "", "config `FILE` (default: the embedded sentry.yaml)")
	asJSON := fs.Bool("json", false, "print one JSON object per decision")
	year := fs.Int("year", 0, "year of the first classic-syslog line, which carries none (default: inferred from the file's modification time)")
	boot := fs.String("boot-time", "", "wall time of boot (RFC 3339) for dmesg and kmsg lines, which carry only time since boot")
	tz := fs.String("tz", "", "time `ZONE` of timestamps that carry none (classic syslog, logread, dmesg -T, zone-less templates): a name such as Europe/Berlin or UTC, or an offset such as +02:00 (default: local time)")
	top := fs.Int("top", 10, "how many top sources the summary lists")
	reportPath := fs.String("report", "", "also write a self-contained HTML report with charts to `FILE`")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "replay: no input files (use - for standard input)")
		fs.Usage()
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	opts := parsers.LineOptions{Location: time.Local}
	if *tz != "" {
		if opts.Location, err = parseZone(*tz); err != nil {
			fmt.Fprintf(e.stderr, "replay: --tz: %v\n", err)
			return exitUsage
		}
	}
	if *boot != "" {
		if opts.Boot, err = time.Parse(time.RFC3339Nano, *boot); err != nil {
			fmt.Fprintf(e.stderr, "replay: --boot-time: %v\n", err)
			return exitUsage
		}
	}
	engine, err := rules.NewEngine(cfg.Engine)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	// Decisions are written in blocks, not one write each: a replay can
	// decide thousands of times a second. (The report flushes after each
	// decision into this buffer.) Standard input may be a live stream
	// (journalctl -f): its decisions are written as they are made.
	out := &blockWriter{w: bufio.NewWriterSize(e.stdout, 64<<10)}
	ro := replay.Options{Engine: engine, Act: actions.NewReport(out, *asJSON), Progress: e.stderr}
	var html *replayReport
	if *reportPath != "" {
		if html, err = openReplayReport(*reportPath, engine); err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
		defer html.discard()
		ro.Collector = html.Collector
	}
	ro.Line = opts
	if *year != 0 {
		ro.Line.Reference = time.Date(*year, 12, 31, 23, 59, 59, 0, opts.Location)
	}
	r := replay.New(ro)
	start := time.Now()
	for _, name := range fs.Args() {
		if err := ctx.Err(); err != nil {
			break
		}
		out.live = name == "-"
		err := r.File(ctx, name, e.stdin)
		if ferr := out.w.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("report: %w", ferr)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
	}
	r.Summary(e.stderr, replay.SummaryOptions{ConfigFile: cfg.File, IgnoreWords: ignoreWords(cfg), Top: *top, Elapsed: time.Since(start)})
	if html != nil {
		if err := html.finish(cfg, engine, r.Stats(), fs.Args()); err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

// parseZone reads --tz: a zone name (Europe/Berlin, UTC, Local) or a fixed
// offset (+02:00, -0500, +01).
func parseZone(s string) (*time.Location, error) {
	if s[0] == '+' || s[0] == '-' {
		digits := strings.ReplaceAll(s[1:], ":", "")
		if len(digits) == 2 {
			digits += "00"
		}
		h, errh := strconv.Atoi(digits[:min(2, len(digits))])
		m, errm := strconv.Atoi(digits[min(2, len(digits)):])
		if len(digits) != 4 || errh != nil || errm != nil || h > 23 || m > 59 || strings.ContainsAny(digits, "+-") {
			return nil, fmt.Errorf("%q is not an offset such as +02:00", s)
		}
		off := h*3600 + m*60
		if s[0] == '-' {
			off = -off
		}
		return time.FixedZone(s, off), nil
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return loc, nil
}

// blockWriter buffers decisions, or passes each on at once while live.
type blockWriter struct {
	w    *bufio.Writer
	live bool
}

func (b *blockWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	if err == nil && b.live {
		err = b.w.Flush()
	}
	return n, err
}
