package ops

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// Status is `status`: it reads the status file the daemon keeps in
// stateDir and shows it, on one screen or as JSON (the file, with running
// and note), with whether the daemon still runs. A daemon that does not
// run is ErrFailed, once its last status is shown.
func (c *Command) Status(stateDir string, asJSON bool) error {
	st, err := daemon.ReadStatus(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		c.errorf("no status in %s: the daemon has not run with this state_dir (a dry run writes none)", stateDir)
		return ErrFailed
	}
	if err != nil {
		return c.fail(err)
	}
	now := time.Now()
	running, note := liveness(st, now, pidAlive)
	if asJSON {
		out := struct {
			Running bool   `json:"running"`
			Note    string `json:"note,omitempty"`
			*daemon.Status
		}{running, note, st}
		if err := c.writeJSON(out); err != nil {
			return err
		}
	} else {
		renderStatus(c.Out, st, now, running, note)
	}
	if !running {
		return ErrFailed
	}
	return nil
}

// pidAlive reports whether a process pid exists (signal 0).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// liveness says whether the status is a running daemon's, and if not why.
func liveness(st *daemon.Status, now time.Time, alive func(int) bool) (bool, string) {
	every := time.Duration(max(st.IntervalSeconds, 1)) * time.Second
	age := now.Sub(st.Written).Round(time.Second)
	switch {
	case st.Stopped:
		return false, fmt.Sprintf("the daemon stopped at %s (%s ago)", st.Written.UTC().Format(time.RFC3339), ago(age))
	case st.PID <= 0 || !alive(st.PID):
		return false, fmt.Sprintf("pid %d is gone: the daemon was killed or crashed; last status %s ago", st.PID, ago(age))
	case age > 3*every:
		return false, fmt.Sprintf("the status is %s old (written every %s): the daemon is not running, or stuck", ago(age), every)
	}
	return true, ""
}

func ago(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	return actions.FormatDuration(d)
}

// renderStatus writes the status screen.
func renderStatus(w io.Writer, st *daemon.Status, now time.Time, running bool, note string) {
	if running {
		fmt.Fprintf(w, "sentry-nflog: running, pid %d, up %s (status written %s ago)\n", st.PID, ago(now.Sub(st.Started).Round(time.Second)), ago(now.Sub(st.Written).Round(time.Second)))
	} else {
		fmt.Fprintf(w, "sentry-nflog: NOT RUNNING: %s\n", note)
		fmt.Fprintf(w, "The last status, as the daemon left it (pid %d, started %s):\n", st.PID, st.Started.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "config %s, table %s\n\n", st.Config, st.Table)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INPUT\tSTATE\tEVENTS\tMALFORMED\tOVERRUNS\tFAILURES")
	for _, in := range st.Inputs {
		state := "ready"
		if !in.Ready {
			state = "not ready"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", in.Name, state, in.Events, in.Malformed, in.Overruns, in.Failures)
	}
	tw.Flush()
	fmt.Fprintln(w)

	fmt.Fprintf(w, "events:       %s/min, %d since start\n", rate(st.EventsPerMinute), st.Events)
	var ds []string
	for _, a := range []string{"ban", "ignored", "rate-limited"} {
		ds = append(ds, fmt.Sprintf("%s %d", a, st.Decisions[a]))
	}
	fmt.Fprintf(w, "decisions:    %s/min; since start: %s\n", rate(st.DecisionsPerMinute), strings.Join(ds, ", "))

	total := 0
	for _, n := range st.Bans.Active {
		total += n
	}
	var bs []string
	for _, o := range []struct{ key, name string }{
		{actions.OriginDaemon, "daemon"}, {"fleet", "fleet"}, {actions.OriginBlock, "manual (block)"},
		{actions.OriginManual, "manual (nft)"}, {actions.OriginKernel, "kernel (first strike, provisional)"},
	} {
		if n := st.Bans.Active[o.key]; n > 0 || o.key == actions.OriginDaemon {
			bs = append(bs, fmt.Sprintf("%s %d", o.name, n))
		}
	}
	listed := "not listed yet"
	if !st.Bans.Listed.IsZero() {
		listed = "listed " + ago(st.Written.Sub(st.Bans.Listed).Round(time.Second)) + " before the status"
	}
	fmt.Fprintf(w, "bans:         %d in the kernel (%s): %s", total, listed, strings.Join(bs, ", "))
	if st.Bans.Errors > 0 {
		fmt.Fprintf(w, "; %d refused by the kernel", st.Bans.Errors)
	}
	fmt.Fprintln(w)

	fs := st.FirstStrike
	switch fs {
	case "degraded":
		fs = "degraded: the kernel refused it; bans come from the daemon alone (retried every 30s; see the errors)"
	case "applied":
		fs = "applied in the kernel"
	}
	fmt.Fprintf(w, "first strike: %s\n", fs)

	if f := st.Fleet; f != nil {
		conn := "connected"
		if !f.Connected {
			conn = "DISCONNECTED"
		}
		var refused uint64
		var why []string
		for _, r := range sortedKeys(f.Refused) {
			refused += f.Refused[r]
			why = append(why, fmt.Sprintf("%s %d", r, f.Refused[r]))
		}
		line := fmt.Sprintf("fleet:        %s; published %d, received %d, applied %d, refused %d", conn, f.Published, f.Received, f.Applied, refused)
		if len(why) > 0 {
			line += " (" + strings.Join(why, ", ") + ")"
		}
		fmt.Fprintf(w, "%s; %d remote bans held\n", line, f.RemoteActive)
	} else {
		fmt.Fprintln(w, "fleet:        off")
	}

	if len(st.LastErrors) == 0 {
		fmt.Fprintln(w, "\nno error or warning since start")
		return
	}
	fmt.Fprintln(w, "\nlast errors and warnings:")
	for _, r := range st.LastErrors {
		fmt.Fprintf(w, "  %s %-5s %s", r.Time.UTC().Format(time.RFC3339), r.Level, r.Message)
		if r.Attrs != "" {
			fmt.Fprintf(w, " %s", r.Attrs)
		}
		fmt.Fprintln(w)
	}
}

func rate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
