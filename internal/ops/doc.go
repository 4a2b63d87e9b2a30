// Package ops is what an operator does beside the running daemon, as
// functions: list the bans in the kernel or the fleet, ban and unban by
// hand (block, unblock), read the decision journal (history) and the
// status file (status). cmd/sentry-nflog parses each command's flags and
// calls one method of a Command; everything the command prints, text or
// JSON, is written here.
//
// The data belongs to other packages, which keep its format and its
// rules: the table and its elements to actions, the files of state_dir
// (manual bans, pardons, the journal, the status) and the checks every ban
// passes (Guard) to daemon, the fleet's stream to fleet. ops only combines
// them, the way the commands always have, so that a manual ban passes the
// very checks the daemon applies when it puts one back. Nothing but
// cmd/sentry-nflog imports ops.
//
// Contract of a Command's methods: each writes what it did to Out and
// what went wrong, or deserves a note, to Err (each line led by the
// command's name), and returns nil, ErrUsage (what was asked is wrong) or
// ErrFailed (it could not do all of it), with nothing left to print. They
// reach the kernel and the fleet only through the Command's OpenTable and
// DialFleet, so tests run them with fakes and without root.
package ops
