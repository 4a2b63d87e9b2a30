package parsers

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The tests in this file follow the list of records and formats that real
// logs showed the parser getting wrong or not reading at all: each fails on
// a parser without the matching change.

// outcomeCase is one line and what Parse must make of it; want.Time zero
// means "not checked" for cases that are not Parsed.
type outcomeCase struct {
	name string
	line string
	want Outcome
	ev   Event
}

func runOutcomes(t *testing.T, p func() *LineParser, cases []outcomeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			o := p().Parse([]byte(tc.line), &ev)
			if o != tc.want {
				t.Fatalf("Parse(%q) = %v, want %v (event %s)", tc.line, o, tc.want, fmtEvent(ev))
			}
			if o == Parsed && !sameEvent(ev, tc.ev) {
				t.Errorf("Parse(%q):\n got %s\nwant %s", tc.line, fmtEvent(ev), fmtEvent(tc.ev))
			}
		})
	}
}

// A TCP record cut before the end of its flags must never pass for a NULL
// or FIN scan: the default stealth-scan rule bans on one such packet.
func TestParseLineCutTCPIsTruncated(t *testing.T) {
	full := hdr + "SENTRY " + synV4
	cutAfter := func(s string) string { return full[:strings.Index(full, s)+len(s)] }
	// A record as long as the kernel's own limit (about 1 KiB): a 6in4
	// packet with TCP options and a long prefix, cut by a relay at 1024.
	long := "Nov 24 15:58:19 gw kernel: [1234567.678901] " + strings.Repeat("P", 100) + " IN=sit1 OUT= MAC=" + strings.Repeat("00:", 80) + "00 TUNNEL=203.0.113.1->192.0.2.10 " +
		"SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1 DST=2001:0db8:0000:0000:0000:0000:0000:0010 LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=123456 PROTO=TCP SPT=40001 DPT=22 SEQ=1234567890 ACK=0 WINDOW=28800 RES=0x00 "
	long += strings.Repeat("x", 1024-len(long)) // cut inside the flags
	runOutcomes(t, newTestParser, []outcomeCase{
		{"cut after WINDOW", cutAfter("WINDOW=1024 "), Truncated, Event{}},
		{"cut after RES", cutAfter("RES=0x00 "), Truncated, Event{}},
		{"cut inside a flag", cutAfter("RES=0x00 SY"), Truncated, Event{}},
		{"cut after the flags", cutAfter("SYN "), Truncated, Event{}},
		{"cut inside URGP", cutAfter("URG"), Truncated, Event{}},
		{"cut at 1 KiB", long[:1024], Truncated, Event{}},
		{"v6 cut before the flags", hdr + "SENTRY " + synV6[:strings.Index(synV6, "RES=")], Truncated, Event{}},
		{"whole NULL probe", strings.Replace(full, "RES=0x00 SYN ", "RES=0x00 ", 1), Parsed, with(synV4Ev, func(e *Event) { e.Flags = 0 })},
		{"URGP without a value still ends the flags", cutAfter("URGP="), Parsed, synV4Ev},
	})
}

// nmap's protocol scan (-sO) sends protocol 58 over IPv4; nf_log prints it
// as a bare number with no TYPE or CODE, which only IPv6's ICMPv6 has.
func TestParseLineForeignICMP(t *testing.T) {
	v4 := hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")]
	v6 := hdr + "SENTRY " + synV6[:strings.Index(synV6, "PROTO=")]
	bare := func(e Event, proto uint8) Event {
		return with(e, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = proto, 0, 0, 0 })
	}
	runOutcomes(t, newTestParser, []outcomeCase{
		{"ipv4 protocol 58", v4 + "PROTO=58 ", Parsed, bare(synV4Ev, ProtoICMPv6)},
		{"ipv6 protocol 1", v6 + "PROTO=1 ", Parsed, bare(synV6Ev, ProtoICMP)},
		{"ipv4 icmp still needs its type", v4 + "PROTO=ICMP ", Truncated, Event{}},
		{"ipv6 icmpv6 still needs its type", v6 + "PROTO=ICMPv6 ", Truncated, Event{}},
	})
}

// Records of packets that carry no transport header (a later fragment, a
// header too short to read) are complete: events without ports or flags.
func TestParseLinePortless(t *testing.T) {
	v4 := hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")]
	v6 := hdr + "SENTRY " + synV6[:strings.Index(synV6, "PROTO=")]
	noL4 := func(e Event, proto uint8) Event {
		return with(e, func(e *Event) {
			e.Proto, e.SrcPort, e.DstPort, e.Flags, e.NoL4Header = proto, 0, 0, 0, true
		})
	}
	runOutcomes(t, newTestParser, []outcomeCase{
		{"udplite incomplete", v4 + "PROTO=UDPLITE INCOMPLETE [0 bytes] ", Parsed, noL4(synV4Ev, ProtoUDPLite)},
		{"udp later fragment", v4 + "FRAG:185 PROTO=UDP ", Parsed, noL4(synV4Ev, ProtoUDP)},
		{"tcp later fragment is no NULL probe", v4 + "MF FRAG:185 PROTO=TCP ", Parsed, noL4(synV4Ev, ProtoTCP)},
		{"tcp header cut short", v4 + "PROTO=TCP INCOMPLETE [8 bytes] ", Parsed, noL4(synV4Ev, ProtoTCP)},
		{"icmp later fragment", v4 + "FRAG:1480 PROTO=ICMP ", Parsed, noL4(synV4Ev, ProtoICMP)},
		{"icmp header cut short", v4 + "PROTO=ICMP INCOMPLETE [2 bytes] ", Parsed, noL4(synV4Ev, ProtoICMP)},
		{"v6 later fragment", v6 + "FRAG:1448 ID:8b1c7a44 PROTO=UDP ", Parsed, noL4(synV6Ev, ProtoUDP)},
		{"v6 first fragment keeps its ports", v6 + "FRAG:0 INCOMPLETE ID:8b1c7a44 PROTO=UDP SPT=53 DPT=40000 LEN=1240 ", Parsed,
			with(synV6Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = ProtoUDP, 53, 40000, 0 })},
		{"a quoted packet's fragment is not ours", v4 + "PROTO=ICMP TYPE=3 CODE=4 [SRC=192.0.2.10 DST=203.0.113.7 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=1 MF FRAG:185 PROTO=UDP ] MTU=1400 ", Parsed,
			with(synV4Ev, func(e *Event) {
				e.Proto, e.SrcPort, e.DstPort, e.Flags, e.ICMPType, e.ICMPCode = ProtoICMP, 0, 0, 0, 3, 4
			})},
		{"udp with neither ports nor a reason", v4 + "PROTO=UDP ", Truncated, Event{}},
	})
}

// 0.0.0.0 and :: are what DHCP, IGMP and duplicate address detection send
// from: normal traffic, counted apart, not malformed.
func TestParseLineUnspecifiedSource(t *testing.T) {
	dhcp := "Nov 14 13:24:23 cro kernel: [1024678.584227] [UFW BLOCK] IN=br0 OUT=br0 PHYSIN=vethFtPdZX PHYSOUT=eth0 SRC=0.0.0.0 DST=255.255.255.255 LEN=328 TOS=0x10 PREC=0x00 TTL=128 ID=0 PROTO=UDP SPT=68 DPT=67 LEN=308 "
	dad := hdr + "SENTRY IN=eth0 OUT= " + macV6 + " SRC=0000:0000:0000:0000:0000:0000:0000:0000 DST=ff02:0000:0000:0000:0000:0001:ff00:0010 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 "
	igmp := hdr + "SENTRY IN=eth0 OUT= " + macV4 + " SRC=0.0.0.0 DST=224.0.0.22 LEN=40 TOS=0x00 PREC=0xC0 TTL=1 ID=0 DF OPT (94040000) PROTO=2 "
	for _, line := range []string{dhcp, dad, igmp} {
		var ev Event
		o := newTestParser().Parse([]byte(line), &ev)
		if o != UnspecifiedSource || o.Malformed() || ev != (Event{}) {
			t.Errorf("Parse(%q) = %v (malformed %v, event %s), want unspecified-source, not malformed, no event", line, o, o.Malformed(), fmtEvent(ev))
		}
	}
	if o := newTestParser().Parse([]byte(strings.Replace(dhcp, "SRC=0.0.0.0", "SRC=0.1.2.3", 1)), new(Event)); o != ReservedSource {
		t.Errorf("0.1.2.3: %v, want reserved-source", o)
	}
	if UnspecifiedSource.String() != "unspecified-source" {
		t.Errorf("name %q", UnspecifiedSource)
	}
}

// OpenWrt's logread prints the weekday and the year; busybox's syslogd
// puts facility.level before the tag.
func TestParseLineLogread(t *testing.T) {
	msg := "SENTRY " + synV4
	runOutcomes(t, newTestParser, []outcomeCase{
		{"logread", "Tue Nov 24 15:58:19 2026 kern.warn kernel: [311423.870453] " + msg, Parsed, synV4Ev},
		{"logread of another year", "Mon Dec 25 13:31:15 2017 kern.warn kernel: " + msg, Parsed,
			atTime(synV4Ev, time.Date(2017, 12, 25, 13, 31, 15, 0, time.UTC))},
		{"logread padded day", "Wed Nov  4 15:58:19 2026 kern.warn kernel: " + msg, Parsed, atTime(synV4Ev, time.Date(2026, 11, 4, 15, 58, 19, 0, time.UTC))},
		{"busybox syslogd", "Nov 24 15:58:19 my-alpine-linux kern.warn kernel: [ 2727.719112] " + msg, Parsed, synV4Ev},
		{"logread bad year", "Tue Nov 24 15:58:19 20x6 kern.warn kernel: " + msg, BadTime, Event{}},
		{"logread Feb 29 of a common year", "Sun Feb 29 15:58:19 2026 kern.warn kernel: " + msg, BadTime, Event{}},
	})
}

// Syslog relays keep the <PRI>; RFC 5424 has its own header; dmesg -r and
// Android's dmesg print the level in front of the uptime.
func TestParseLinePRIAndRFC5424(t *testing.T) {
	msg := "SENTRY " + synV4
	frac := hdrTime.Add(123 * time.Millisecond)
	runOutcomes(t, newTestParser, []outcomeCase{
		{"pri classic", "<4>Nov 24 15:58:19 gw kernel: " + msg, Parsed, synV4Ev},
		{"pri rfc3339", "<6>2026-11-24T15:58:19Z gw kernel: " + msg, Parsed, synV4Ev},
		{"pri large", "<161>Nov 24 15:58:19 gw kernel: " + msg, Parsed, synV4Ev},
		{"rfc5424", "<4>1 2026-11-24T15:58:19.123Z gw kernel - - - " + msg, Parsed, atTime(synV4Ev, frac)},
		{"rfc5424 with uptime", "<6>1 2026-11-24T16:58:19.123+01:00 gw kernel - - - [849085.223282] " + msg, Parsed, atTime(synV4Ev, frac)},
		{"rfc5424 structured data", `<4>1 2026-11-24T15:58:19Z gw kernel - - [meta sequenceId="1" x="a \"]\" b"][origin ip="192.0.2.1"] ` + msg, Parsed, synV4Ev},
		{"rfc5424 byte order mark", "<4>1 2026-11-24T15:58:19Z gw kernel - - - \xef\xbb\xbf" + msg, Parsed, synV4Ev},
		{"rfc5424 file, no pri", "2026-11-24T15:58:19.123000+00:00 gw kernel - - - [771409.900044] " + msg, Parsed, atTime(synV4Ev, frac)},
		{"rfc5424 another program", "<4>1 2026-11-24T15:58:19Z gw ulogd 812 - - " + msg, Parsed, synV4Ev},
		{"rfc5424 another program's chatter", "<30>1 2026-11-24T15:58:19Z gw sshd 812 - - Accepted publickey for admin", Skipped, Event{}},
		{"dmesg -r", "<4>[12345.678901] " + msg, Parsed, atTime(synV4Ev, testBoot.Add(12345678901*time.Microsecond))},
		{"android dmesg", "<6>[ 5739.48] " + msg, Parsed, atTime(synV4Ev, testBoot.Add(5739480*time.Millisecond))},
		{"journalctl short-monotonic", "[12345.678901] gw kernel: " + msg, Parsed, atTime(synV4Ev, testBoot.Add(12345678901*time.Microsecond))},
		{"journalctl short-monotonic, no host", "[12345.678901] kernel: " + msg, Parsed, atTime(synV4Ev, testBoot.Add(12345678901*time.Microsecond))},
		{"pri too large", "<192>Nov 24 15:58:19 gw kernel: " + msg, BadTime, Event{}},
		{"rfc5424 bad time", "<4>1 2026-11-24T25:58:19Z gw kernel - - - " + msg, BadTime, Event{}},
		{"rfc5424 unclosed data", `<4>1 2026-11-24T15:58:19Z gw kernel - - [meta x="1" ` + msg, BadTime, Event{}},
	})
}

// Firewalls relay their records to a syslog server with tags other than
// "kernel:", or none at all; ulogd writes them without one.
func TestParseLineProgramTags(t *testing.T) {
	rec := synV4
	prefixed := func(p string) Event { return with(synV4Ev, func(e *Event) { e.Prefix = p }) }
	runOutcomes(t, newTestParser, []outcomeCase{
		{"another program", "Nov 24 15:58:19 gw netlogd[812]: relay " + rec, Parsed, prefixed("relay")},
		{"kernel with a pid", "Nov 24 15:58:19 gw kernel[1]: SENTRY " + rec, Parsed, synV4Ev},
		{"no tag, prefix glued", "Nov 24 15:58:19 server Shorewall:net2fw:DROP:" + rec, Parsed, prefixed("Shorewall:net2fw:DROP")},
		{"no tag, bracketed prefix", "Nov 24 15:58:19 Abc-A1 [SOMETHING-1234-A] " + rec, Parsed, prefixed("[SOMETHING-1234-A]")},
		{"ulogd: the prefix looks like a tag", "Nov 24 15:58:19 box IN-work: " + rec, Parsed, prefixed("IN-work")},
		{"no host, prefix like a tag", "Nov 24 15:58:19 DENY: " + rec, Parsed, prefixed("DENY")},
		{"unifi os rule description", `<13>Nov 24 15:58:19 UCG-Max [LAN_LOCAL-RET-2147483647] DESCR="no rule description" ` + rec, Parsed, prefixed("[LAN_LOCAL-RET-2147483647]")},
		{"unifi ap host", "Nov 24 15:58:19 U7PG2,f09fc2a1b2c3,v4.3.20.11298: kernel: [LAN_IN-2000-D]" + rec, Parsed, prefixed("[LAN_IN-2000-D]")},
		{"rfc3339 another program", "2026-11-24T15:58:19+00:00 gw sshd[1]: SENTRY " + rec, Parsed, synV4Ev},
		// A daemon that logs what a peer sent must not make up packets.
		{"record injected in sshd's text", "Nov 24 15:58:19 gw sshd[1]: Invalid user " + rec + "from 198.51.100.9 port 4242", Skipped, Event{}},
		{"record inside quotes", `Nov 24 15:58:19 gw nginx: "GET /` + rec + `HTTP/1.1" 404`, Skipped, Event{}},
		{"lower-case field", "Nov 24 15:58:19 gw app[1]: " + strings.Replace(rec, "TTL=41", "ttl=41", 1), Skipped, Event{}},
		{"no equals sign", "Nov 24 15:58:19 gw sshd[1]: Accepted publickey for admin from 192.0.2.50 port 50022 ssh2", Skipped, Event{}},
	})
}

// Zone-less timestamps are read in Location (replay's --tz).
func TestParseLineZoneless(t *testing.T) {
	msg := "SENTRY " + synV4
	cet := time.FixedZone("CET", 3600)
	p := func() *LineParser { return NewLineParser(LineOptions{Reference: testRef, Location: cet}) }
	runOutcomes(t, p, []outcomeCase{
		{"iso without zone", "2026-11-24T16:58:19 gw kernel: " + msg, Parsed, synV4Ev},
		{"iso with a space, no zone", "2026-11-24 16:58:19 gw kernel: " + msg, Parsed, synV4Ev},
		{"iso with a fraction, no zone", "2026-11-24T16:58:19.5 gw kernel: " + msg, Parsed, atTime(synV4Ev, hdrTime.Add(500*time.Millisecond))},
		{"iso with a zone ignores Location", "2026-11-24 15:58:19+00:00 gw kernel: " + msg, Parsed, synV4Ev},
		{"logread", "Tue Nov 24 16:58:19 2026 kern.warn kernel: " + msg, Parsed, synV4Ev},
	})
}

// journalctl -k -o json / json-seq, one object per line.
func TestParseLineJournalJSON(t *testing.T) {
	ts := fmt.Sprint(hdrTime.UnixMicro() + 250000)
	at := hdrTime.Add(250 * time.Millisecond)
	msg := "SENTRY " + synV4
	escaped := strings.ReplaceAll(msg, " ", `\u0020`)
	bytesArr := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, s[i])
		}
		return "[" + b.String() + "]"
	}
	compact := `{"__CURSOR":"s=2c2f;i=1f345","__REALTIME_TIMESTAMP":"` + ts + `","__MONOTONIC_TIMESTAMP":"108101422325","_BOOT_ID":"c4b3","_TRANSPORT":"kernel","PRIORITY":"4","SYSLOG_FACILITY":"0","SYSLOG_IDENTIFIER":"kernel","MESSAGE":"` + msg + `","_HOSTNAME":"gw"}`
	spaced := `{ "__CURSOR" : "s=2c2f;i=1f345", "__REALTIME_TIMESTAMP" : "` + ts + `", "_TRANSPORT" : "kernel", "MESSAGE" : "` + msg + `", "_HOSTNAME" : "gw" }`
	runOutcomes(t, newTestParser, []outcomeCase{
		{"json", compact, Parsed, atTime(synV4Ev, at)},
		{"json with spaces", spaced, Parsed, atTime(synV4Ev, at)},
		{"json-seq", "\x1e" + compact, Parsed, atTime(synV4Ev, at)},
		{"message before the time", `{"MESSAGE":"` + msg + `","__REALTIME_TIMESTAMP":"` + ts + `"}`, Parsed, atTime(synV4Ev, at)},
		{"escapes", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":"` + escaped + `"}`, Parsed, atTime(synV4Ev, at)},
		{"quotes and backslashes", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":"\"x\\\\y\" ` + synV4 + `"}`, Parsed, atTime(with(synV4Ev, func(e *Event) { e.Prefix = `"x\\y"` }), at)},
		{"surrogate pair", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":"\ud83d\udd25 ` + synV4 + `"}`, Parsed, atTime(with(synV4Ev, func(e *Event) { e.Prefix = "\U0001F525" }), at)},
		{"message as bytes", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":` + bytesArr(msg) + `}`, Parsed, atTime(synV4Ev, at)},
		{"nested values are stepped over", `{"A":{"b":[1,{"c":"}"}]},"__REALTIME_TIMESTAMP":` + ts + `,"N":null,"MESSAGE":"` + msg + `"}`, Parsed, atTime(synV4Ev, at)},
		{"syslog transport is read as a relay", `{"__REALTIME_TIMESTAMP":"` + ts + `","_TRANSPORT":"syslog","MESSAGE":"` + msg + `"}`, Parsed, atTime(synV4Ev, at)},
		{"syslog transport, injected record", `{"__REALTIME_TIMESTAMP":"` + ts + `","_TRANSPORT":"syslog","MESSAGE":"Invalid user ` + synV4 + `from 198.51.100.9"}`, Skipped, Event{}},
		{"other kernel message", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":"e1000e: eth0 NIC Link is Up"}`, Skipped, Event{}},
		{"message too large to show", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":null}`, Skipped, Event{}},
		{"bad escape", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":"\x ` + msg + `"}`, Skipped, Event{}},
		{"cut object", compact[:len(compact)-30], Skipped, Event{}},
		{"bad time", `{"__REALTIME_TIMESTAMP":"12x","MESSAGE":"` + msg + `"}`, Skipped, Event{}},
		{"byte out of range", `{"__REALTIME_TIMESTAMP":"` + ts + `","MESSAGE":[256,32]}`, Skipped, Event{}},
		{"no time", `{"MESSAGE":"` + msg + `"}`, BadTime, Event{}},
	})
}

// Proxmox VE's pve-firewall.log: pvefw-logger's own header, IN= and OUT=
// only for the interfaces a packet has, TCP flags after WINDOW= and no
// URGP= unless URG is set.
func TestParseLineProxmox(t *testing.T) {
	tcp := "102 6 tap102i0-IN 22/Feb/2025:12:43:32 -0600 policy DROP: IN=fwbr102i0 OUT=fwbr102i0 PHYSIN=fwln102i0 PHYSOUT=tap102i0 MAC=bc:24:11:ce:4e:11:28:74:f5:3a:22:71:08:00 SRC=45.142.193.117 DST=75.37.49.10 LEN=40 TOS=0x00 PREC=0x00 TTL=236 ID=3448 PROTO=TCP SPT=49743 DPT=8443 SEQ=1839537289 ACK=0 WINDOW=1024 SYN "
	at := time.Date(2025, 2, 22, 18, 43, 32, 0, time.UTC)
	tcpEv := Event{Time: at, Src: netip.MustParseAddr("45.142.193.117"), Dst: netip.MustParseAddr("75.37.49.10"), Prefix: "policy DROP",
		InIface: "fwbr102i0", SrcPort: 49743, DstPort: 8443, Length: 40, Proto: ProtoTCP, Flags: SYN, TTL: 236}
	icmp := "0 6 PVEFW-HOST-IN 30/Aug/2025:20:33:05 +0200 policy DROP: IN=vmbr0 PHYSIN=enp3s0 MAC=87:ea:ab:02:15:a5:1a:e3:a5:13:f2:57:08:00 SRC=10.157.123.220 DST=10.1.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=128 ID=20335 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1"
	icmpEv := Event{Time: time.Date(2025, 8, 30, 18, 33, 5, 0, time.UTC), Src: netip.MustParseAddr("10.157.123.220"), Dst: netip.MustParseAddr("10.1.0.1"),
		Prefix: "policy DROP", InIface: "vmbr0", Length: 60, Proto: ProtoICMP, TTL: 128, ICMPType: 8}
	runOutcomes(t, newTestParser, []outcomeCase{
		{"tcp", tcp, Parsed, tcpEv},
		{"icmp without OUT", icmp, Parsed, icmpEv},
		{"accepted", strings.Replace(tcp, "policy DROP: ", "ACCEPT: ", 1), Parsed, with(tcpEv, func(e *Event) { e.Prefix = "ACCEPT" })},
		{"output chain without IN", "0 6 PVEFW-HOST-OUT 30/Aug/2025:20:33:05 +0200 policy DROP: OUT=vmbr0 SRC=10.1.0.1 DST=10.157.123.220 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=5353 DPT=5353 LEN=40",
			Parsed, with(icmpEv, func(e *Event) {
				e.Src, e.Dst, e.InIface, e.TTL, e.Proto, e.ICMPType, e.SrcPort, e.DstPort = icmpEv.Dst, icmpEv.Src, "", 64, ProtoUDP, 0, 5353, 5353
			})},
		{"null probe, flags in full", strings.Replace(tcp, "WINDOW=1024 SYN ", "WINDOW=1024 ", 1), Parsed, with(tcpEv, func(e *Event) { e.Flags = 0 })},
		{"urgent", strings.Replace(tcp, "WINDOW=1024 SYN ", "WINDOW=1024 URG FIN URGP=0 ", 1), Parsed, with(tcpEv, func(e *Event) { e.Flags = URG | FIN })},
		{"igmp from nowhere", "0 6 PVEFW-HOST-IN 30/Aug/2025:20:33:05 +0200 policy DROP: IN=vmbr0 PHYSIN=enp3s0 SRC=0.0.0.0 DST=224.0.0.1 LEN=32 TOS=0xC0 PREC=0xC0 TTL=1 ID=0 DF PROTO=IGMP ", UnspecifiedSource, Event{}},
		{"header too short", strings.Replace(tcp, "SPT=49743 DPT=8443 SEQ=1839537289 ACK=0 WINDOW=1024 SYN ", "LEN=12 INVALID=LEN ", 1), Parsed,
			with(tcpEv, func(e *Event) { e.SrcPort, e.DstPort, e.Flags, e.NoL4Header = 0, 0, 0, true })},
		{"cut before WINDOW", tcp[:strings.Index(tcp, "WINDOW=")], Truncated, Event{}},
		{"logger status", "0 5 - 30/Aug/2025:20:22:39 +0200 starting pvefw logger", Skipped, Event{}},
		{"bad month", strings.Replace(icmp, "/Aug/", "/Aux/", 1), BadTime, Event{}},
	})
}

// journalctl and syslog under other locales print localized months; syslog
// may leave the host out.
func TestParseLineLocaleMonths(t *testing.T) {
	msg := " gw kernel: SENTRY " + synV4
	nov := func(d int) Event { return atTime(synV4Ev, time.Date(2026, 11, d, 14, 30, 53, 0, time.UTC)) }
	cases := []outcomeCase{
		{"zh_CN", "11月 15 14:30:53" + msg, Parsed, nov(15)},
		{"zh_CN padded", " 9月 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 9, 15, 14, 30, 53, 0, time.UTC))},
		{"ko_KR", "11월 15 14:30:53" + msg, Parsed, nov(15)},
		{"de", "Nov 15 14:30:53" + msg, Parsed, nov(15)},
		{"de März", "Mär 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 3, 15, 14, 30, 53, 0, time.UTC))},
		{"de Oktober", "Okt 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 10, 15, 14, 30, 53, 0, time.UTC))},
		{"fr", "nov. 15 14:30:53" + msg, Parsed, nov(15)},
		{"fr févr.", "févr. 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 2, 15, 14, 30, 53, 0, time.UTC))},
		{"fr juil.", "juil. 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 7, 15, 14, 30, 53, 0, time.UTC))},
		{"es", "jun 30 17:06:38" + msg, Parsed, atTime(nov(15), time.Date(2026, 6, 30, 17, 6, 38, 0, time.UTC))},
		{"es dic", "dic 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2025, 12, 15, 14, 30, 53, 0, time.UTC))},
		{"ru", "ноя 15 14:30:53" + msg, Parsed, nov(15)},
		{"ru мая", "мая 15 14:30:53" + msg, Parsed, atTime(nov(15), time.Date(2026, 5, 15, 14, 30, 53, 0, time.UTC))},
		{"no host", "Nov 15 14:30:53 kernel: SENTRY " + synV4, Parsed, nov(15)},
		{"no host, zh_CN", "11月 15 14:30:53 kernel: SENTRY " + synV4, Parsed, nov(15)},
		{"month 13", "13月 15 14:30:53" + msg, BadTime, Event{}},
		{"unknown word", "xyz. 15 14:30:53" + msg, BadTime, Event{}},
	}
	runOutcomes(t, newTestParser, cases)
}

// A record without any timestamp takes the time of the line before it, or
// LineOptions.Undated for the first; the parser counts them.
func TestParseLineUndated(t *testing.T) {
	undated := "gw kernel: SENTRY " + synV4
	bare := "SENTRY " + synV4
	mtime := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	p := NewLineParser(LineOptions{Reference: testRef, Location: time.UTC, Undated: mtime})
	steps := []struct {
		line string
		want Outcome
		at   time.Time
	}{
		{undated, Parsed, mtime},
		{"Nov 24 15:58:19 gw CRON[2290]: (root) CMD (true)", Skipped, time.Time{}},
		{undated, Parsed, hdrTime},
		{bare, Parsed, hdrTime},
		{"Nox 24 16:00:00 gw kernel: " + bare, BadTime, time.Time{}},
		{"<4>" + undated, Parsed, hdrTime},
		{"2026-11-24T16:00:00Z gw kernel: " + bare, Parsed, hdrTime.Add(101 * time.Second)},
		{undated, Parsed, hdrTime.Add(101 * time.Second)},
		{"garbage IN=x OUT= without a source", Skipped, time.Time{}},
	}
	for i, s := range steps {
		var ev Event
		o := p.Parse([]byte(s.line), &ev)
		if o != s.want || (o == Parsed && !ev.Time.Equal(s.at)) {
			t.Errorf("step %d: Parse(%q) = %v at %v, want %v at %v", i, s.line, o, ev.Time.UTC(), s.want, s.at)
		}
	}
	if n := p.UndatedRecords(); n != 5 {
		t.Errorf("UndatedRecords() = %d, want 5", n)
	}

	// Without Undated, the first such record has no time to take.
	if o := newTestParser().Parse([]byte(undated), new(Event)); o != BadTime {
		t.Errorf("no fallback: %v, want bad-time", o)
	}
	// A live stream's clock wins over the last dated line.
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	live := NewLineParser(LineOptions{Reference: testRef, Location: time.UTC, Clock: func() time.Time { return now }})
	var ev Event
	live.Parse([]byte(hdr+bare), &ev)
	if o := live.Parse([]byte(undated), &ev); o != Parsed || !ev.Time.Equal(now) {
		t.Errorf("clock: %v at %v, want parsed at %v", o, ev.Time, now)
	}
}
