// Package replay runs the rules over saved logs, in the logs' own time, as
// `sentry-nflog replay` does: the same parser and engine as the daemon, so
// that tuning a rule on last week's logs shows exactly what the daemon
// would have decided.
//
// A Replayer reads files one after the other (gzip transparently, "-" for
// standard input); a goroutine reads and parses while the caller's steps
// the engine, with batches of events passed between them in file order.
// Each decision goes to an actions.Action (a printed or JSON report) and,
// optionally, to a report.Collector for the HTML page. Memory is bounded:
// lines over 1 MiB are skipped and counted, per-source counts stop at
// 100,000 sources. Summary writes what was counted.
package replay
