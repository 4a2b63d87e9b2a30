// Package replay runs the rules over saved logs, in the logs' own time, as
// `sentry-nflog replay` does: the same parser and engine as the daemon, so
// that tuning a rule on last week's logs shows exactly what the daemon
// would have decided.
//
// A Replayer reads files one after the other (gzip transparently, "-" for
// standard input). A goroutine reads each file in chunks of whole lines,
// one worker per core but one parses them, and the caller's goroutine takes
// the chunks back in file order and steps the engine: the events, their times
// included, are those one parser reading the file in order would make.
// Each decision goes to an actions.Action (a printed or JSON report) and,
// optionally, to a report.Collector for the HTML page. Memory is bounded:
// lines over 1 MiB are skipped and counted, per-source counts stop at
// 100,000 sources. Summary writes what was counted.
//
// Run is the whole command: the files in order, decisions written in
// blocks (at once for standard input, which may be a live stream), the
// summary, and the HTML report when asked, created before the replay so
// that a path that cannot be written fails first.
package replay
