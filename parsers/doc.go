// Package parsers decodes firewall records into Events, and does nothing
// else: no files, sockets or devices, no goroutines, no clock of its own
// beyond what a caller hands it. Reading the inputs is package sources'.
//
// It owns four things:
//   - Event, the value every input produces and the rules engine consumes;
//   - LineParser, which reads one firewall log line into an Event: syslog
//     files and relays (classic, RFC 3339, <PRI>, RFC 5424, OpenWrt
//     logread), journalctl output in text and JSON, dmesg and /dev/kmsg
//     records, Proxmox VE's firewall log. What it carries from line to line
//     (LineState) can be handed between parsers, so that one stream is read
//     in pieces on several cores and checked in order (Span);
//   - DecodePacket, which reads the IP and transport headers of a packet
//     NFLOG delivered into an Event;
//   - Outcome, what a decoder made of one input, so callers count
//     malformed records by reason.
//
// parsers never imports rules, actions or sources. Every decoder is
// allocation-free per input in steady state, never keeps a reference into a
// buffer it was handed past the call, and never panics on hostile input: a
// line that is not a firewall log line is Skipped, a record of a packet from
// 0.0.0.0 or :: is counted apart (UnspecifiedSource), a broken one is
// reported with the reason it is malformed.
package parsers
