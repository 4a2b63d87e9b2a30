package replay

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// SummaryOptions say what the summary names besides the counts.
type SummaryOptions struct {
	// ConfigFile names the config the rules came from.
	ConfigFile string
	// IgnoreWords lists the ignore words replay cannot resolve (they are
	// the live host's), "" when the config uses none.
	IgnoreWords string
	// Top is how many sources are listed.
	Top int
	// Elapsed is the replay's wall time, for the rate.
	Elapsed time.Duration
}

// Summary writes what the replay counted: lines by outcome, events per
// rule, decisions and the top sources.
func (r *Replayer) Summary(w io.Writer, o SummaryOptions) {
	st, engine := &r.stats, r.opts.Engine
	es := engine.Stats()
	var malformed uint64
	var reasons []string
	for out := parsers.Outcome(0); int(out) < parsers.NumOutcomes; out++ {
		if out.Malformed() && st.Outcomes[out] > 0 {
			malformed += st.Outcomes[out]
			reasons = append(reasons, fmt.Sprintf("%s %d", out, st.Outcomes[out]))
		}
	}
	unspecified := st.Outcomes[parsers.UnspecifiedSource]
	firewall := st.Outcomes[parsers.Parsed] + unspecified + malformed
	fmt.Fprintf(w, "replay summary (%s)\n", o.ConfigFile)
	fmt.Fprintf(w, "  lines read      %d\n", st.Lines)
	fmt.Fprintf(w, "  firewall lines  %d\n", firewall)
	fmt.Fprintf(w, "  skipped         %d (not firewall log lines", st.Outcomes[parsers.Skipped])
	if st.TooLong > 0 {
		fmt.Fprintf(w, "; %d over 1 MiB", st.TooLong)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "  unspecified     %d (from 0.0.0.0 or ::, as DHCP, IGMP and address probes send: not evidence)\n", unspecified)
	if st.Undated > 0 {
		fmt.Fprintf(w, "  undated         %d (firewall lines without a timestamp: each took the time of the line before, or the file's)\n", st.Undated)
	}
	fmt.Fprintf(w, "  malformed       %d", malformed)
	if len(reasons) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(reasons, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  events          %d (accepted-prefix %d, no rule %d, while banned %d)\n", es.Events, es.Accepted, es.Unmatched, es.WhileBanned)
	fmt.Fprint(w, "  events per rule")
	for i, rule := range engine.Rules() {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, rule.Name, es.RuleEvents[i])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  decisions       ban %d, ignored %d, rate-limited %d\n", es.Decisions[rules.Ban], es.Decisions[rules.Ignored], es.Decisions[rules.RateLimited])
	fmt.Fprintf(w, "  sources         %d (evicted %d, expired %d)\n", st.sources.len(), es.Evicted, es.Expired)
	if o.IgnoreWords != "" {
		fmt.Fprintf(w, "  note            the ignore words (%s) are resolved by `run` on the live host, not in replay\n", o.IgnoreWords)
	}
	rows := st.sources.top(o.Top)
	if len(rows) > 0 {
		fmt.Fprintln(w, "  top sources")
	}
	for _, row := range rows {
		var ds []string
		for d, n := range row.decisions {
			ds = append(ds, fmt.Sprintf("%s x%d", d, n))
		}
		sort.Strings(ds)
		desc := "no decision"
		if len(ds) > 0 {
			desc = strings.Join(ds, ", ")
		}
		fmt.Fprintf(w, "    %-24s %8d events  %s\n", row.key, row.events, desc)
	}
	if n := st.sources.uncounted; n > 0 {
		fmt.Fprintf(w, "  (%d events from sources beyond the first %d not counted per source)\n", n, maxCountedSources)
	}
	rate := float64(st.Lines) / o.Elapsed.Seconds()
	fmt.Fprintf(w, "  elapsed         %s, %.0f lines/s\n", o.Elapsed.Round(time.Millisecond), rate)
}
