package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// maxCountedSources bounds the per-source event counts of the summary, so
// a replay of a forged flood stays small too.
const maxCountedSources = 100000

// replayStats is what the summary reports.
type replayStats struct {
	lines     uint64
	outcomes  [parsers.NumOutcomes]uint64
	tooLong   uint64
	undated   uint64
	bySource  map[netip.Prefix]*sourceCount
	uncounted uint64
	bytes     int64
	// html collects for --report; nil without it.
	html *replayReport
}

type sourceCount struct {
	events    uint64
	decisions map[string]int
}

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
	report := actions.NewReport(e.stdout, *asJSON)
	st := &replayStats{bySource: map[netip.Prefix]*sourceCount{}}
	if *reportPath != "" {
		if st.html, err = openReplayReport(*reportPath, engine); err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
		defer st.html.discard()
	}
	start := time.Now()
	for _, name := range fs.Args() {
		if err := ctx.Err(); err != nil {
			break
		}
		o := opts
		if *year != 0 {
			o.Reference = time.Date(*year, 12, 31, 23, 59, 59, 0, opts.Location)
		}
		if err := replayFile(ctx, e, name, o, engine, report, st); err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
	}
	writeSummary(e.stderr, cfg, engine, st, *top, time.Since(start))
	if st.html != nil {
		if err := st.html.finish(cfg, engine, st, fs.Args()); err != nil {
			fmt.Fprintf(e.stderr, "replay: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

func replayFile(ctx context.Context, e *env, name string, opts parsers.LineOptions, engine *rules.Engine, report *actions.Report, st *replayStats) error {
	var in io.Reader
	var size int64
	if name == "-" {
		in = e.stdin
		// A record without a timestamp before any dated line takes the
		// file's modification time; a pipe's is now.
		opts.Undated = time.Now()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
		if opts.Reference.IsZero() {
			opts.Reference = fi.ModTime()
		}
		opts.Undated = fi.ModTime()
		in = f
	}
	counted := &countingReader{r: in}
	br := bufio.NewReaderSize(counted, 1<<20)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	bar := newProgress(e.stderr, name, size, counted)
	defer bar.done()

	// Reading and parsing run on their own goroutine, the engine on this
	// one, with batches of events passed between them: two cores replay
	// about twice as fast as one, and the engine still sees events in file
	// order.
	free := make(chan *lineBatch, 4)
	full := make(chan *lineBatch, 4)
	for i := 0; i < cap(free); i++ {
		free <- &lineBatch{events: make([]parsers.Event, 0, batchEvents)}
	}
	var readErr error
	parser := parsers.NewLineParser(opts)
	go func() {
		defer close(full)
		readErr = readBatches(ctx, br, parser, bar, free, full)
	}()
	var actErr error
	for b := range full {
		st.lines += b.lines
		st.tooLong += b.tooLong
		for i, n := range b.outcomes {
			st.outcomes[i] += n
		}
		for i := range b.events {
			ev := &b.events[i]
			st.count(engine.Key(ev.Src))
			if st.html != nil {
				st.html.Event(ev)
			}
			if d, ok := engine.Step(ev); ok && actErr == nil {
				if actErr = report.Act(&d); actErr == nil {
					st.decided(&d)
				}
			}
		}
		free <- b
	}
	// The reader has returned (full is closed), so its parser is ours now.
	st.undated += parser.UndatedRecords()
	if actErr != nil {
		return actErr
	}
	if readErr != nil {
		return fmt.Errorf("%s: %w", name, readErr)
	}
	st.bytes += counted.n
	return nil
}

// batchEvents is how many events a batch carries between the reader and
// the engine.
const batchEvents = 512

// lineBatch is a run of lines read and parsed: their events and counts.
type lineBatch struct {
	events   []parsers.Event
	lines    uint64
	tooLong  uint64
	outcomes [parsers.NumOutcomes]uint64
}

// readBatches reads lines from br, parses them and sends full batches until
// the input ends (nil) or fails. It stops early, without error, when ctx
// ends.
func readBatches(ctx context.Context, br *bufio.Reader, parser *parsers.LineParser, bar *progress, free <-chan *lineBatch, full chan<- *lineBatch) error {
	b := <-free
	*b = lineBatch{events: b.events[:0]}
	flush := func() bool {
		full <- b
		if ctx.Err() != nil {
			return false
		}
		bar.tick()
		b = <-free
		*b = lineBatch{events: b.events[:0]}
		return true
	}
	var ev parsers.Event
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line over 1 MiB is no kernel log line: skip to its end.
			b.lines++
			b.tooLong++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		if len(line) > 0 {
			b.lines++
			out := parser.Parse(line, &ev)
			b.outcomes[out]++
			if out == parsers.Parsed {
				b.events = append(b.events, ev)
			}
			if (len(b.events) == cap(b.events) || b.lines >= 8*batchEvents) && !flush() {
				return nil
			}
		}
		if err == io.EOF {
			full <- b
			return nil
		}
		if err != nil {
			full <- b
			return err
		}
	}
}

func (st *replayStats) count(k netip.Prefix) {
	c := st.bySource[k]
	if c == nil {
		if len(st.bySource) >= maxCountedSources {
			st.uncounted++
			return
		}
		c = &sourceCount{}
		st.bySource[k] = c
	}
	c.events++
}

func (st *replayStats) decided(d *rules.Decision) {
	c := st.bySource[d.Key]
	if c == nil {
		// The key can be narrower than the event's (an ignored address
		// inside the /64), or uncounted.
		c = &sourceCount{}
		st.bySource[d.Key] = c
	}
	if c.decisions == nil {
		c.decisions = map[string]int{}
	}
	c.decisions[d.Action.String()+" "+d.Rule]++
	if st.html != nil {
		st.html.Decision(d)
	}
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func writeSummary(w io.Writer, cfg *config.Config, engine *rules.Engine, st *replayStats, top int, elapsed time.Duration) {
	es := engine.Stats()
	var malformed uint64
	var reasons []string
	for o := parsers.Outcome(0); int(o) < parsers.NumOutcomes; o++ {
		if o.Malformed() && st.outcomes[o] > 0 {
			malformed += st.outcomes[o]
			reasons = append(reasons, fmt.Sprintf("%s %d", o, st.outcomes[o]))
		}
	}
	unspecified := st.outcomes[parsers.UnspecifiedSource]
	firewall := st.outcomes[parsers.Parsed] + unspecified + malformed
	fmt.Fprintf(w, "replay summary (%s)\n", cfg.File)
	fmt.Fprintf(w, "  lines read      %d\n", st.lines)
	fmt.Fprintf(w, "  firewall lines  %d\n", firewall)
	fmt.Fprintf(w, "  skipped         %d (not firewall log lines", st.outcomes[parsers.Skipped])
	if st.tooLong > 0 {
		fmt.Fprintf(w, "; %d over 1 MiB", st.tooLong)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "  unspecified     %d (from 0.0.0.0 or ::, as DHCP, IGMP and address probes send: not evidence)\n", unspecified)
	if st.undated > 0 {
		fmt.Fprintf(w, "  undated         %d (firewall lines without a timestamp: each took the time of the line before, or the file's)\n", st.undated)
	}
	fmt.Fprintf(w, "  malformed       %d", malformed)
	if len(reasons) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  events          %d (accepted-prefix %d, no rule %d, while banned %d)\n", es.Events, es.Accepted, es.Unmatched, es.WhileBanned)
	fmt.Fprint(w, "  events per rule")
	for i, r := range engine.Rules() {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, r.Name, es.RuleEvents[i])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  decisions       ban %d, ignored %d, rate-limited %d\n", es.Decisions[rules.Ban], es.Decisions[rules.Ignored], es.Decisions[rules.RateLimited])
	fmt.Fprintf(w, "  sources         %d (evicted %d, expired %d)\n", len(st.bySource), es.Evicted, es.Expired)
	if cfg.Ignore.Self || cfg.Ignore.Gateways || cfg.Ignore.Resolvers {
		fmt.Fprintf(w, "  note            the ignore words (%s) are resolved by `run` on the live host, not in replay\n", ignoreWords(cfg))
	}
	type row struct {
		key netip.Prefix
		c   *sourceCount
	}
	rows := make([]row, 0, len(st.bySource))
	for k, c := range st.bySource {
		rows = append(rows, row{k, c})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].c.events != rows[j].c.events {
			return rows[i].c.events > rows[j].c.events
		}
		if c := rows[i].key.Addr().Compare(rows[j].key.Addr()); c != 0 {
			return c < 0
		}
		return rows[i].key.Bits() < rows[j].key.Bits()
	})
	if len(rows) > top {
		rows = rows[:top]
	}
	if len(rows) > 0 {
		fmt.Fprintln(w, "  top sources")
	}
	for _, r := range rows {
		var ds []string
		for d, n := range r.c.decisions {
			ds = append(ds, fmt.Sprintf("%s x%d", d, n))
		}
		sort.Strings(ds)
		desc := "no decision"
		if len(ds) > 0 {
			desc = strings.Join(ds, ", ")
		}
		fmt.Fprintf(w, "    %-24s %8d events  %s\n", r.key, r.c.events, desc)
	}
	if st.uncounted > 0 {
		fmt.Fprintf(w, "  (%d events from sources beyond the first %d not counted per source)\n", st.uncounted, maxCountedSources)
	}
	rate := float64(st.lines) / elapsed.Seconds()
	fmt.Fprintf(w, "  elapsed         %s, %.0f lines/s\n", elapsed.Round(time.Millisecond), rate)
}
