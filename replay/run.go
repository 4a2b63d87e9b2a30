package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/report"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// RunOptions are one `sentry-nflog replay`: the files, where decisions,
// the summary and the HTML page go.
type RunOptions struct {
	// Engine decides.
	Engine *rules.Engine
	// Line configures the line parser (Options.Line). Year, when not 0,
	// replaces its Reference: the year of the first classic-syslog line.
	Line parsers.LineOptions
	Year int
	// Files are replayed in order; "-" is Stdin.
	Files []string
	Stdin io.Reader
	// Out receives the decisions, one line or JSON object each; Stderr
	// the progress bar and the summary.
	Out, Stderr io.Writer
	JSON        bool
	// Summary names the config and how many sources the summary lists;
	// Run measures Elapsed.
	Summary SummaryOptions
	// ReportPath, when set, is where the HTML report is written.
	ReportPath string
}

// Run replays o.Files one after the other, writes the summary and, with
// o.ReportPath, the HTML page. When ctx ends it stops between files and
// still writes both. An error reading or reporting stops it: the summary
// is not written, nor is the page (a page already created is removed).
func Run(ctx context.Context, o RunOptions) error {
	// Decisions are written in blocks, not one write each: a replay can
	// decide thousands of times a second. (The report flushes after each
	// decision into this buffer.) Standard input may be a live stream
	// (journalctl -f): its decisions are written as they are made.
	out := &blockWriter{w: bufio.NewWriterSize(o.Out, 64<<10)}
	ro := Options{Engine: o.Engine, Line: o.Line, Act: actions.NewReport(out, o.JSON), Progress: o.Stderr}
	if o.Year != 0 {
		ro.Line.Reference = time.Date(o.Year, 12, 31, 23, 59, 59, 0, o.Line.Location)
	}
	var html *htmlReport
	if o.ReportPath != "" {
		var err error
		if html, err = openHTMLReport(o.ReportPath, o.Engine); err != nil {
			return err
		}
		defer html.discard()
		ro.Collector = html.Collector
	}
	r := New(ro)
	start := time.Now()
	for _, name := range o.Files {
		if ctx.Err() != nil {
			break
		}
		out.live = name == "-"
		err := r.File(ctx, name, o.Stdin)
		if ferr := out.w.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("report: %w", ferr)
		}
		if err != nil {
			return err
		}
	}
	so := o.Summary
	so.Elapsed = time.Since(start)
	r.Summary(o.Stderr, so)
	if html != nil {
		return html.finish(o.Summary.ConfigFile, o.Engine, r.Stats(), o.Files)
	}
	return nil
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

// htmlReport is the HTML report: the collector the replay feeds and the
// file it writes at the end.
type htmlReport struct {
	*report.Collector
	f    *os.File
	done bool
}

// openHTMLReport creates the report file first, so that a path that
// cannot be written fails before a long replay rather than after it. The
// collector keys sources like the engine, so that charts and decisions
// agree.
func openHTMLReport(path string, engine *rules.Engine) (*htmlReport, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--report: %w", err)
	}
	return &htmlReport{Collector: report.New(report.Options{Key: engine.Key}), f: f}, nil
}

// finish hands the collector the counts only replay has and writes the
// page.
func (r *htmlReport) finish(configFile string, engine *rules.Engine, st Stats, inputs []string) error {
	es := engine.Stats()
	t := report.Totals{Inputs: inputs, Config: configFile, Lines: st.Lines, Outcomes: st.Outcomes}
	for i, rule := range engine.Rules() {
		t.Rules = append(t.Rules, report.RuleEvents{Name: rule.Name, Events: es.RuleEvents[i]})
	}
	r.Totals(t)
	w := bufio.NewWriter(r.f)
	err := r.Write(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--report: %s: %w", r.f.Name(), err)
	}
	r.done = true
	return nil
}

// discard removes the file of a replay that did not finish.
func (r *htmlReport) discard() {
	if !r.done {
		r.f.Close()
		os.Remove(r.f.Name())
	}
}

// ParseLineOptions reads replay's --tz (see parseZone; "" is local time)
// and --boot-time (RFC 3339; "" is none) into the parser's options. Its
// errors name the flag at fault.
func ParseLineOptions(tz, boot string) (parsers.LineOptions, error) {
	opts := parsers.LineOptions{Location: time.Local}
	var err error
	if tz != "" {
		if opts.Location, err = parseZone(tz); err != nil {
			return opts, fmt.Errorf("--tz: %w", err)
		}
	}
	if boot != "" {
		if opts.Boot, err = time.Parse(time.RFC3339Nano, boot); err != nil {
			return opts, fmt.Errorf("--boot-time: %w", err)
		}
	}
	return opts, nil
}

// parseZone reads the zone of timestamps that carry none: a zone name
// (Europe/Berlin, UTC, Local) or a fixed offset (+02:00, -0500, +01).
func parseZone(s string) (*time.Location, error) {
	if s == "" {
		return nil, fmt.Errorf("%q is not a zone", s)
	}
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
