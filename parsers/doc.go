// Package parsers turns raw input into Events: firewall log lines (syslog
// files and relays, journalctl output in text and JSON, dmesg and /dev/kmsg
// records, Proxmox VE's firewall log) and NFLOG packets.
//
// It owns the Event value type and nothing downstream of it: parsers never
// imports rules or actions. Every parser is allocation-free per input in
// steady state, never keeps a reference into a buffer it was handed past the
// call, and never panics on hostile input: a line that is not a firewall log
// line is Skipped, a record of a packet from 0.0.0.0 or :: is counted apart
// (UnspecifiedSource), a broken one is reported with the reason it is
// malformed.
package parsers
