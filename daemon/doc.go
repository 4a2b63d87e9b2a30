// Package daemon is sentry-nflog's long-running loop: inputs -> engine ->
// actions, with the state, the table and the reloads around them.
//
// New builds a Daemon from a validated config and its dependencies (the
// nftables table, the host's facts, where to write); Run runs it until its
// context ends. One goroutine, Run's, owns the engine and every piece of
// state; inputs feed it through one channel, and decisions leave it through
// one door: a list of actions.Action (the ban in the table, the log line,
// the metrics, the user's command, the dry run's report), each handed every
// decision in order. A dry run is a different list, without the table, and
// a store that neither reads nor writes state.
//
// Two goroutines work beside the loop so that nothing slow holds up
// decisions: the table keeper (checks the table every 2 s, repairs it,
// compares the ban sets with the engine's bans every 10 s, applies
// reloads) and the state writer. Each asks the loop for what it needs of
// the engine, a snapshot taken on the loop. Positions of followed files
// move only over decided events (sources.Mark), and are saved within a
// second, with the offences of the same moment.
//
// Fleet mode (Deps.Fleet, fleet.go) adds one element to the door, the
// fleet's publisher, which therefore sees exactly the daemon's own ban
// decisions, and one source: a goroutine Run starts and waits for, like the
// inputs, that hands other hosts' bans and pardons to the loop. The loop
// applies this host's checks to each (its ignore list, accept_from, the
// prefix, max_remote_ban, the remote valve, max_remote_active) and inserts
// it with its remaining time through the table's BanFromMany, with the
// others waiting behind it (a backlog goes 256 to a transaction); remote
// bans are never offences, and never pass through the door. At start, the
// publisher publishes again this host's bans still in force that the
// stream does not hold (Publisher.Republish, activeBanMessages).
//
// Beside deciding, the daemon keeps three things for its operators in
// state_dir (ops.go). A decision journal (journal.go): one more element of
// the door appends every decision with its evidence, and the loop appends
// the remote bans it applies, the manual bans it takes note of and the
// pardons, through the same writer, buffered and written each second, in
// a file bounded by rotation. Manual bans (manual.go): `sentry-nflog
// block` inserts them and records them in a file the daemon reads each
// second when it changed; the table keeper puts them back like its own
// bans, through the same checks (guard.go, shared with the command), but
// never as offences and never published. A status file (status.go): every
// few seconds the loop takes a snapshot of its counters and a writer
// beside it replaces the file; the daemon's log is wrapped to keep its
// last errors and warnings for it.
//
// What the daemon wants in the kernel is a value, Desired, derived from the
// config and the host's facts (Derive is pure). Start, reload and tamper
// repair all apply that value to the table; a reload builds everything new
// before it replaces anything, so an invalid config or rule set leaves the
// running daemon as it was.
//
// Contract of Run: it returns nil when its context ends, after every input
// has stopped, every event already read has been decided, the state has been
// saved and every goroutine it started (inputs, alert commands) has ended.
// It returns an error when an input fails before it is ready (an NFLOG
// group another process reads); an input that fails later is logged,
// counted and restarted, and the others go on.
package daemon
