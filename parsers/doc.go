// Package parsers decodes firewall records into Events, and does nothing
// else: no files, sockets or devices, no goroutines, no clock of its own
// beyond what a caller hands it. Reading the inputs is package sources'.
//
// It owns four things:
//   - Event, the value every input produces and the rules engine consumes;
//   - LineParser, which reads one kernel log line (syslog files, journalctl
//     output, dmesg, /dev/kmsg records) into an Event;
//   - DecodePacket, which reads the IP and transport headers of a packet
//     NFLOG delivered into an Event;
//   - Outcome, what a decoder made of one input, so callers count
//     malformed records by reason.
//
// parsers never imports rules, actions or sources. Every decoder is
// allocation-free per input in steady state, never keeps a reference into a
// buffer it was handed past the call, and never panics on hostile input: a
// line that is not a firewall log line is Skipped, a broken one is reported
// with the reason it is malformed.
package parsers
