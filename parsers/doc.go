// Package parsers turns raw input into Events: kernel log lines (syslog files,
// journalctl output, dmesg and /dev/kmsg records) and NFLOG packets.
//
// It owns the Event value type and nothing downstream of it: parsers never
// imports rules or actions. Every parser is allocation-free per input in
// steady state, never keeps a reference into a buffer it was handed past the
// call, and never panics on hostile input: a line that is not a firewall log
// line is Skipped, a broken one is reported with the reason it is malformed.
package parsers
