//go:build unix

package actions

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// ExecAction runs an Exec for the decisions whose action is listed, each
// run on a goroutine of its own so a slow command never holds up the
// daemon. Exec bounds how many run at once (over the bound a run is
// dropped and counted); Close waits for those in flight, so none outlives
// the daemon.
type ExecAction struct {
	exec *Exec
	on   []rules.Action
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewExecAction runs e for decisions whose Action is in on. Failures are
// logged to log (nil discards them).
func NewExecAction(e *Exec, on []rules.Action, log *slog.Logger) *ExecAction {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ExecAction{exec: e, on: slices.Clone(on), log: log, ctx: ctx, cancel: cancel}
}

// Act starts the command for d when its action is selected.
func (a *ExecAction) Act(d *rules.Decision) error {
	if !slices.Contains(a.on, d.Action) || a.ctx.Err() != nil {
		return nil
	}
	f := ExecFieldsOf(d)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.exec.Run(a.ctx, f); err != nil {
			a.log.Warn("exec action failed", "source", f.Source, "err", err)
		}
	}()
	return nil
}

// Close waits for the runs in flight (each bounded by the command's
// timeout) and refuses new ones. A command is not killed by Close: an
// alert started before a restart is delivered.
func (a *ExecAction) Close() error {
	a.wg.Wait()
	a.cancel()
	return nil
}

// ExecFieldsOf fills the placeholders' values from a decision.
func ExecFieldsOf(d *rules.Decision) ExecFields {
	return ExecFields{
		Source: d.Key.String(), Address: d.Source.String(), Rule: d.Rule, Ports: d.PortList(),
		Ban: d.Ban, Hits: d.Hits, Action: d.Action.String(), Offence: d.Offence, Time: d.Time,
	}
}
