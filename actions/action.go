package actions

import (
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Action carries out decisions: the one door through which every decision
// leaves the daemon (and replay). The daemon holds a list of them (the
// ban table, the log, metrics, the alert command, a report in a dry run)
// and hands each decision to every one, in order, on its event loop.
//
// Act must return quickly: an action that waits on something slow (a
// command, the network) hands the work to a goroutine it tracks and bounds
// itself, and stops it in Close. Act does not keep d past the call. An
// error is the action's own failure; the caller logs it and carries on with
// the next action.
type Action interface {
	Act(d *rules.Decision) error
}

// Closer is an Action that holds goroutines or files: Close waits for the
// work it started and releases them. The daemon closes its actions when
// it stops, so none of their goroutines outlives it.
type Closer interface {
	Action
	Close() error
}
