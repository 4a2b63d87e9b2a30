package ops

import (
	"bufio"
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

// HistoryFilter selects journal entries; its zero value selects all.
type HistoryFilter struct {
	// Since drops the entries before it.
	Since time.Time
	// Source, when valid, keeps the entries whose source overlaps it: an
	// address inside a banned prefix matches the prefix.
	Source netip.Prefix
}

// Match reports whether the filter keeps j.
func (f HistoryFilter) Match(j *daemon.JournalEntry) bool {
	return !j.Time.Before(f.Since) && (!f.Source.IsValid() || j.Source.Overlaps(f.Source))
}

// ParseHistoryFilter reads history's --since (a duration back from now;
// "" keeps all) and --source (ParseKey; "" keeps all).
func ParseHistoryFilter(since, source string, now time.Time) (HistoryFilter, error) {
	var f HistoryFilter
	if since != "" {
		d, err := config.ParseDuration(since)
		if err != nil {
			return f, fmt.Errorf("--since: %w", err)
		}
		f.Since = now.Add(-d)
	}
	if source != "" {
		p, err := ParseKey(source)
		if err != nil {
			return f, fmt.Errorf("--source: %w", err)
		}
		f.Source = p
	}
	return f, nil
}

// History is `history`: the decision journal in stateDir, oldest first,
// filtered, as a table or one JSON object a line (the journal's own
// shape). Lines of the journal that are not entries are skipped, and
// counted on Err.
func (c *Command) History(stateDir string, f HistoryFilter, asJSON bool) error {
	out := bufio.NewWriter(c.Out)
	defer out.Flush()
	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	}
	n := 0
	skipped, err := daemon.ReadJournal(stateDir, func(j *daemon.JournalEntry) error {
		if !f.Match(j) {
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
		return c.fail(err)
	}
	if skipped > 0 {
		c.errorf("%d unreadable lines skipped (cut short by a crash?)", skipped)
	}
	if n == 0 && !asJSON {
		c.errorf("no decision in the journal of %s matches", stateDir)
	}
	return nil
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
