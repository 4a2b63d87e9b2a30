package main

import (
	"context"
	"fmt"

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
	opts, err := replay.ParseLineOptions(*tz, *boot)
	if err != nil {
		fmt.Fprintf(e.stderr, "replay: %v\n", err)
		return exitUsage
	}
	engine, err := rules.NewEngine(cfg.Engine)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	err = replay.Run(ctx, replay.RunOptions{Engine: engine, Line: opts, Year: *year, Files: fs.Args(), Stdin: e.stdin,
		Out: e.stdout, Stderr: e.stderr, JSON: *asJSON, ReportPath: *reportPath,
		Summary: replay.SummaryOptions{ConfigFile: cfg.File, IgnoreWords: cfg.Ignore.Words(), Top: *top}})
	if err != nil {
		fmt.Fprintf(e.stderr, "replay: %v\n", err)
		return exitFailure
	}
	return exitOK
}
