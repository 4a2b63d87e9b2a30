package parsers

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone database, for a machine without one (TestParseLineDST)
)

// The fixed clock of most tests: kern.log's lines are from Nov 24, 2026, and
// the machine booted on Nov 10.
var (
	testRef  = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	testBoot = time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
)

func newTestParser() *LineParser {
	return NewLineParser(LineOptions{Reference: testRef, Boot: testBoot, Location: time.UTC})
}

const (
	macV4 = "MAC=52:54:00:12:34:56:00:1b:21:3a:4c:5e:08:00"
	macV6 = "MAC=52:54:00:12:34:56:00:1b:21:3a:4c:5e:86:dd"
	hdr   = "Nov 24 15:58:19 gw kernel: "

	// An nmap SYN probe as nf_log prints it, after the prefix.
	synV4 = "IN=eth0 OUT= " + macV4 + " SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=54321 PROTO=TCP SPT=44321 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0 "
	synV6 = "IN=eth0 OUT= " + macV6 + " SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1 DST=2001:0db8:0000:0000:0000:0000:0000:0010 LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=123456 PROTO=TCP SPT=40001 DPT=22 WINDOW=28800 RES=0x00 SYN URGP=0 "
)

var (
	hdrTime = time.Date(2026, 11, 24, 15, 58, 19, 0, time.UTC)
	synV4Ev = Event{
		Time: hdrTime, Src: netip.MustParseAddr("203.0.113.7"), Dst: netip.MustParseAddr("192.0.2.10"),
		Prefix: "SENTRY", InIface: "eth0", SrcPort: 44321, DstPort: 23, Length: 44, Proto: ProtoTCP, Flags: SYN, TTL: 41,
	}
	synV6Ev = Event{
		Time: hdrTime, Src: netip.MustParseAddr("2001:db8:bad:1::a1"), Dst: netip.MustParseAddr("2001:db8::10"),
		Prefix: "SENTRY", InIface: "eth0", SrcPort: 40001, DstPort: 22, Length: 80, Proto: ProtoTCP, Flags: SYN, TTL: 57,
	}
)

// with returns ev changed by f, for table entries that differ in a field.
func with(ev Event, f func(*Event)) Event {
	f(&ev)
	return ev
}

func atTime(ev Event, t time.Time) Event { return with(ev, func(e *Event) { e.Time = t }) }

// sameEvent compares events, times by instant (their Location differs).
func sameEvent(a, b Event) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b
}

func fmtEvent(e Event) string {
	return fmt.Sprintf("{%s %s>%s prefix=%q in=%q %d>%d len=%d proto=%d flags=%q ttl=%d icmp=%d/%d}",
		e.Time.UTC().Format(time.RFC3339Nano), e.Src, e.Dst, e.Prefix, e.InIface, e.SrcPort, e.DstPort,
		e.Length, e.Proto, e.Flags, e.TTL, e.ICMPType, e.ICMPCode)
}

type lineCase struct {
	name string
	line string
	want Event
}

func runParsed(t *testing.T, cases []lineCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			if o := newTestParser().Parse([]byte(tc.line), &ev); o != Parsed {
				t.Fatalf("Parse(%q) = %v, want parsed", tc.line, o)
			}
			if !sameEvent(ev, tc.want) {
				t.Errorf("Parse(%q):\n got %s\nwant %s", tc.line, fmtEvent(ev), fmtEvent(tc.want))
			}
		})
	}
}

func TestParseLineFormats(t *testing.T) {
	msg := "SENTRY " + synV4
	frac := hdrTime.Add(123456 * time.Microsecond)
	runParsed(t, []lineCase{
		{"classic with uptime", hdr + "[1234567.678901] " + msg, synV4Ev},
		{"classic with padded uptime", "Nov 24 15:58:19 gw kernel: [    4.123456] " + msg, synV4Ev},
		{"classic without uptime", hdr + msg, synV4Ev},
		{"classic space-padded day", "Nov  4 15:58:19 gw kernel: " + msg, atTime(synV4Ev, time.Date(2026, 11, 4, 15, 58, 19, 0, time.UTC))},
		{"classic unpadded day", "Nov 4 15:58:19 gw kernel: " + msg, atTime(synV4Ev, time.Date(2026, 11, 4, 15, 58, 19, 0, time.UTC))},
		{"classic without host", "Nov 24 15:58:19 kernel: " + msg, synV4Ev},
		{"rfc3339 with fraction", "2026-11-24T15:58:19.123456+00:00 gw kernel: " + msg, atTime(synV4Ev, frac)},
		{"rfc3339 Z", "2026-11-24T15:58:19Z gw kernel: " + msg, synV4Ev},
		{"rfc3339 Z with fraction", "2026-11-24T15:58:19.123456Z gw kernel: " + msg, atTime(synV4Ev, frac)},
		{"rfc3339 negative offset", "2026-11-24T10:58:19-05:00 gw kernel: " + msg, synV4Ev},
		{"rfc3339 with uptime", "2026-11-24T15:58:19+00:00 gw kernel: [1234567.678901] " + msg, synV4Ev},
		{"rfc3339 nanoseconds", "2026-11-24T15:58:19.123456789+00:00 gw kernel: " + msg, atTime(synV4Ev, hdrTime.Add(123456789))},
		{"short-iso", "2026-11-24T15:58:19+0000 gw kernel: " + msg, synV4Ev},
		{"short-iso half-hour zone", "2026-11-24T21:28:19+0530 gw kernel: " + msg, synV4Ev},
		{"short-iso-precise", "2026-11-24T15:58:19.123456+0000 gw kernel: " + msg, atTime(synV4Ev, frac)},
		{"short-precise", "Nov 24 15:58:19.123456 gw kernel: " + msg, atTime(synV4Ev, frac)},
		{"dmesg", "[12345.678901] " + msg, atTime(synV4Ev, testBoot.Add(12345678901*time.Microsecond))},
		{"dmesg padded", "[    4.123456] " + msg, atTime(synV4Ev, testBoot.Add(4123456*time.Microsecond))},
		{"dmesg -T", "[Tue Nov 24 15:58:19 2026] " + msg, synV4Ev},
		{"dmesg -T padded day", "[Wed Nov  4 15:58:19 2026] " + msg, atTime(synV4Ev, time.Date(2026, 11, 4, 15, 58, 19, 0, time.UTC))},
		{"kmsg", "4,14679,15154445737,-;" + msg, atTime(synV4Ev, testBoot.Add(15154445737*time.Microsecond))},
		{"kmsg with caller", "4,14679,15154445737,-,caller=C1;" + msg, atTime(synV4Ev, testBoot.Add(15154445737*time.Microsecond))},
		{"kmsg level 6", "6,1,0,c;" + msg, atTime(synV4Ev, testBoot)},
	})
}

func TestParseLineBootUnknown(t *testing.T) {
	p := NewLineParser(LineOptions{Reference: testRef})
	var ev Event
	if o := p.Parse([]byte("4,14679,15154445737,-;SENTRY "+synV4), &ev); o != Parsed {
		t.Fatalf("got %v", o)
	}
	if want := time.Unix(15154, 445737000); !ev.Time.Equal(want) {
		t.Errorf("Time = %v, want epoch + uptime %v", ev.Time, want)
	}
}

func TestParseLineLocation(t *testing.T) {
	// A zone-less timestamp is read in Location; one with an offset is not.
	cet := time.FixedZone("CET", 3600)
	p := NewLineParser(LineOptions{Reference: testRef, Location: cet})
	for _, line := range []string{
		"Nov 24 16:58:19 gw kernel: SENTRY " + synV4,
		"Nov 24 16:58:19.000000 gw kernel: SENTRY " + synV4,
		"[Tue Nov 24 16:58:19 2026] SENTRY " + synV4,
		"2026-11-24T15:58:19Z gw kernel: SENTRY " + synV4,
	} {
		var ev Event
		if o := p.Parse([]byte(line), &ev); o != Parsed {
			t.Fatalf("Parse(%q) = %v", line, o)
		}
		if !ev.Time.Equal(hdrTime) {
			t.Errorf("Parse(%q).Time = %v, want %v", line, ev.Time, hdrTime)
		}
	}
}

func TestParseLineDST(t *testing.T) {
	// The time cache keeps the start of a minute: across a change of
	// offset each minute must still get its own.
	berlin, err := time.LoadLocation("Europe/Berlin") // time/tzdata is linked in: never missing
	if err != nil {
		t.Fatal(err)
	}
	p := NewLineParser(LineOptions{Reference: time.Date(2026, 12, 1, 0, 0, 0, 0, berlin), Location: berlin})
	var times []time.Time
	for _, ts := range []string{"Mar 29 01:59:59", "Mar 29 03:00:00", "Oct 25 01:59:59", "Oct 25 03:00:00"} {
		var ev Event
		if o := p.Parse([]byte(ts+" gw kernel: SENTRY "+synV4), &ev); o != Parsed {
			t.Fatalf("%s: %v", ts, o)
		}
		times = append(times, ev.Time)
	}
	if d := times[1].Sub(times[0]); d != time.Second {
		t.Errorf("spring forward: %v apart, want 1s", d)
	}
	// 02:00-02:59 happens twice in autumn: 01:59:59 CEST to 03:00 CET.
	if d := times[3].Sub(times[2]); d != 2*time.Hour+time.Second {
		t.Errorf("fall back: %v apart, want 2h0m1s", d)
	}
}

func TestParseLineFields(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	udpReal := "SENTRY-K IN=cv1 OUT= MAC=6e:49:82:25:ee:a2:7a:9b:30:b1:79:b4:08:00 SRC=10.99.0.1 DST=10.99.0.2 LEN=30 TOS=0x00 PREC=0x00 TTL=64 ID=38079 DF PROTO=UDP SPT=39055 DPT=7777 LEN=10 "
	icmpErr := "SENTRY IN=eth0 OUT= " + macV4 + " SRC=198.51.100.1 DST=192.0.2.10 LEN=56 TOS=0x00 PREC=0xC0 TTL=254 ID=1234 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.10 DST=198.51.100.77 LEN=28 TOS=0x00 PREC=0x00 TTL=1 ID=4321 PROTO=UDP SPT=33434 DPT=33435 LEN=8 ] "
	icmpErrTCP := "SENTRY IN=eth0 OUT= " + macV4 + " SRC=198.51.100.1 DST=192.0.2.10 LEN=56 TOS=0x00 PREC=0xC0 TTL=254 ID=1234 PROTO=ICMP TYPE=11 CODE=0 [SRC=192.0.2.10 DST=203.0.113.200 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=1 DF PROTO=TCP INCOMPLETE [8 bytes] SYN ] "
	icmpErrWant := Event{Time: hdrTime, Src: v4("198.51.100.1"), Dst: v4("192.0.2.10"), Prefix: "SENTRY", InIface: "eth0",
		Length: 56, Proto: ProtoICMP, TTL: 254, ICMPType: 3, ICMPCode: 3}
	v6Base := "SENTRY IN=eth0 OUT= " + macV6 + " SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1 DST=2001:0db8:0000:0000:0000:0000:0000:0010 "
	v6Ev := with(synV6Ev, func(e *Event) { e.SrcPort, e.DstPort, e.Flags = 0, 0, 0 })
	tcpV4 := func(flags string) string {
		return strings.Replace(synV4, "RES=0x00 SYN ", "RES=0x00 "+flags, 1)
	}
	runParsed(t, []lineCase{
		{"v4 tcp syn", hdr + "SENTRY " + synV4, synV4Ev},
		{"v4 udp with second LEN", hdr + udpReal, Event{Time: hdrTime, Src: v4("10.99.0.1"), Dst: v4("10.99.0.2"),
			Prefix: "SENTRY-K", InIface: "cv1", SrcPort: 39055, DstPort: 7777, Length: 30, Proto: ProtoUDP, TTL: 64}},
		{"v4 udp without trailing space", hdr + strings.TrimSuffix(udpReal, " "), Event{Time: hdrTime, Src: v4("10.99.0.1"), Dst: v4("10.99.0.2"),
			Prefix: "SENTRY-K", InIface: "cv1", SrcPort: 39055, DstPort: 7777, Length: 30, Proto: ProtoUDP, TTL: 64}},
		{"v4 icmp echo", hdr + "SENTRY IN=eth0 OUT= " + macV4 + " SRC=198.51.100.30 DST=192.0.2.10 LEN=84 TOS=0x00 PREC=0x00 TTL=57 ID=3 DF PROTO=ICMP TYPE=8 CODE=0 ID=4711 SEQ=1 ",
			Event{Time: hdrTime, Src: v4("198.51.100.30"), Dst: v4("192.0.2.10"), Prefix: "SENTRY", InIface: "eth0", Length: 84, Proto: ProtoICMP, TTL: 57, ICMPType: 8}},
		{"v4 icmp error quoting a packet", hdr + icmpErr, icmpErrWant},
		{"v4 icmp error quoting an incomplete tcp packet", hdr + icmpErrTCP, with(icmpErrWant, func(e *Event) { e.ICMPType, e.ICMPCode = 11, 0 })},
		{"v4 icmp frag needed", hdr + strings.Replace(icmpErr, "CODE=3 ", "CODE=4 ", 1) + "MTU=1400 ", with(icmpErrWant, func(e *Event) { e.ICMPCode = 4 })},
		{"v6 tcp", hdr + "SENTRY " + synV6, synV6Ev},
		{"v6 udp", hdr + v6Base + "LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=5353 LEN=16 ",
			with(v6Ev, func(e *Event) { e.Length, e.TTL, e.Proto, e.SrcPort, e.DstPort = 56, 64, ProtoUDP, 5353, 5353 })},
		{"v6 icmpv6 echo", hdr + v6Base + "LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=4711 SEQ=1 ",
			with(v6Ev, func(e *Event) { e.Length, e.TTL, e.Proto, e.ICMPType = 104, 64, ProtoICMPv6, 128 })},
		{"v6 icmpv6 error quoting a packet", hdr + v6Base + "LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 [SRC=2001:0db8:0000:0000:0000:0000:0000:0010 DST=2001:0db8:0bad:0001:0000:0000:0000:00a1 LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=53 DPT=33434 LEN=16 ] ",
			with(v6Ev, func(e *Event) { e.Length, e.TTL, e.Proto, e.ICMPType, e.ICMPCode = 104, 63, ProtoICMPv6, 1, 4 })},
		{"v6 jumbo length saturates", hdr + v6Base + "LEN=65575 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=65535 ",
			with(v6Ev, func(e *Event) { e.Length, e.TTL, e.Proto, e.SrcPort, e.DstPort = 65535, 64, ProtoUDP, 1, 2 })},
		{"v6 link-local source", hdr + "[UFW BLOCK] IN=eth0 OUT= " + macV6 + " SRC=fe80:0000:0000:0000:0000:0000:0000:0001 DST=ff02:0000:0000:0000:0000:0000:0000:0001 LEN=104 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=134 CODE=0 ",
			Event{Time: hdrTime, Src: v4("fe80::1"), Dst: v4("ff02::1"), Prefix: "[UFW BLOCK]", InIface: "eth0", Length: 104, Proto: ProtoICMPv6, TTL: 255, ICMPType: 134}},
		{"ipv4-mapped addresses are unmapped", hdr + strings.Replace(strings.Replace(synV6, "SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=0000:0000:0000:0000:0000:ffff:cb00:7107", 1), "DST=2001:0db8:0000:0000:0000:0000:0000:0010", "DST=::ffff:192.0.2.10", 1),
			with(synV6Ev, func(e *Event) { e.Src, e.Dst, e.Prefix = v4("203.0.113.7"), v4("192.0.2.10"), "" })},
		{"ufw prefix after uptime", hdr + "[1234567.678901] [UFW BLOCK] " + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "[UFW BLOCK]" })},
		{"ufw prefix without uptime", hdr + "[UFW BLOCK] " + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "[UFW BLOCK]" })},
		{"ufw prefix in dmesg", "[12345.678901] [UFW LIMIT BLOCK] " + synV4,
			with(synV4Ev, func(e *Event) { e.Prefix, e.Time = "[UFW LIMIT BLOCK]", testBoot.Add(12345678901*time.Microsecond) })},
		{"firewalld prefix", hdr + "filter_IN_public_REJECT: " + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "filter_IN_public_REJECT" })},
		{"only one colon trimmed", hdr + "X:: " + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "X:" })},
		{"no prefix", hdr + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "" })},
		{"prefix without trailing space", hdr + "SENTRY" + synV4, synV4Ev},
		{"prefix with inner spaces", hdr + "scan probe  " + synV4, with(synV4Ev, func(e *Event) { e.Prefix = "scan probe" })},
		{"xmas", hdr + "SENTRY " + tcpV4("URG PSH FIN "), with(synV4Ev, func(e *Event) { e.Flags = URG | PSH | FIN })},
		{"null", hdr + "SENTRY " + tcpV4(""), with(synV4Ev, func(e *Event) { e.Flags = 0 })},
		{"fin", hdr + "SENTRY " + tcpV4("FIN "), with(synV4Ev, func(e *Event) { e.Flags = FIN })},
		{"ack rst", hdr + "SENTRY " + tcpV4("ACK RST "), with(synV4Ev, func(e *Event) { e.Flags = ACK | RST })},
		{"ecn syn", hdr + "SENTRY " + tcpV4("CWR ECE SYN "), with(synV4Ev, func(e *Event) { e.Flags = CWR | ECE | SYN })},
		{"all flags", hdr + "SENTRY " + tcpV4("CWR ECE URG ACK PSH RST SYN FIN "), with(synV4Ev, func(e *Event) { e.Flags = 0xff })},
		{"ip flag words are not tcp flags", hdr + "SENTRY " + strings.Replace(synV4, "ID=54321 ", "ID=54321 CE DF MF ", 1), synV4Ev},
		{"tcp sequence numbers", hdr + "SENTRY " + strings.Replace(synV4, "WINDOW=", "SEQ=1234567 ACK=0 WINDOW=", 1), synV4Ev},
		{"tcp options", hdr + "SENTRY " + strings.Replace(synV4, "URGP=0 ", "URGP=0 OPT (020405B4) ", 1), synV4Ev},
		{"ip options", hdr + "SENTRY " + strings.Replace(synV4, "PROTO=", "OPT (07270400) PROTO=", 1), synV4Ev},
		{"uid gid mark", hdr + "SENTRY " + synV4 + "UID=1000 GID=1000 MARK=0x2a ", synV4Ev},
		{"output chain", hdr + "SENTRY " + strings.Replace(synV4, "IN=eth0 OUT= "+macV4+" ", "IN= OUT=eth0 ", 1), with(synV4Ev, func(e *Event) { e.InIface = "" })},
		{"bridge", hdr + "SENTRY " + strings.Replace(synV4, "IN=eth0 OUT= ", "IN=br0 OUT=br0 PHYSIN=eth1 PHYSOUT=eth2 ", 1), with(synV4Ev, func(e *Event) { e.InIface = "br0" })},
		{"mac decode", hdr + "SENTRY " + strings.Replace(synV4, macV4, "MACSRC=00:1b:21:3a:4c:5e MACDST=52:54:00:12:34:56 MACPROTO=0800", 1), synV4Ev},
		{"unknown fields", hdr + "SENTRY " + strings.Replace(synV4, "SRC=", "FOO=bar BAZ QUX=1=2 SRC=", 1), synV4Ev},
		{"udplite", hdr + strings.Replace(udpReal, "PROTO=UDP", "PROTO=UDPLITE", 1), Event{Time: hdrTime, Src: v4("10.99.0.1"), Dst: v4("10.99.0.2"),
			Prefix: "SENTRY-K", InIface: "cv1", SrcPort: 39055, DstPort: 7777, Length: 30, Proto: ProtoUDPLite, TTL: 64}},
		{"sctp as the kernel prints it", hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "PROTO=132 ",
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = ProtoSCTP, 0, 0, 0 })},
		{"sctp by name with ports", hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "PROTO=SCTP SPT=5000 DPT=38412 ",
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = ProtoSCTP, 5000, 38412, 0 })},
		{"esp", hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "PROTO=ESP SPI=0x1234 ",
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = 50, 0, 0, 0 })},
		{"ah", hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "PROTO=AH SPI=0x1234 ",
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = 51, 0, 0, 0 })},
		{"gre by number", hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "PROTO=47 ",
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags = 47, 0, 0, 0 })},
		{"tcp by number", hdr + "SENTRY " + strings.Replace(synV4, "PROTO=TCP", "PROTO=6", 1), synV4Ev},
		{"ports of a portless protocol are dropped", hdr + "SENTRY " + strings.Replace(synV4, "PROTO=TCP", "PROTO=ICMP TYPE=8 CODE=0", 1),
			with(synV4Ev, func(e *Event) { e.Proto, e.SrcPort, e.DstPort, e.Flags, e.ICMPType = ProtoICMP, 0, 0, 0, 8 })},
		{"first value wins", hdr + "SENTRY " + synV4 + "SRC=198.51.100.1 DPT=80 TTL=1 ", synV4Ev},
		{"crlf", hdr + "SENTRY " + synV4 + "\r\n", synV4Ev},
		{"lf", hdr + "SENTRY " + synV4 + "\n", synV4Ev},
		{"cr", hdr + "SENTRY " + synV4 + "\r", synV4Ev},
		{"interface name with brackets", hdr + "SENTRY " + strings.Replace(synV4, "IN=eth0", "IN=e[0]", 1), with(synV4Ev, func(e *Event) { e.InIface = "e[0]" })},
		{"very long line", hdr + "SENTRY " + synV4 + strings.Repeat("X=1 [Y ] ", 20000), synV4Ev},
	})
}

func TestParseLineMalformed(t *testing.T) {
	good := hdr + "SENTRY " + synV4
	repl := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in %q", old, good)
		}
		return strings.Replace(good, old, new, 1)
	}
	cut := func(before string) string { return good[:strings.Index(good, before)] }
	msg := "SENTRY " + synV4
	cases := []struct {
		name string
		line string
		want Outcome
	}{
		{"bad month", "Nox 24 15:58:19 gw kernel: " + msg, BadTime},
		{"hour 24", "Nov 24 24:58:19 gw kernel: " + msg, BadTime},
		{"minute 60", "Nov 24 15:60:19 gw kernel: " + msg, BadTime},
		{"second 60", "Nov 24 15:58:60 gw kernel: " + msg, BadTime},
		{"day 0", "Nov  0 15:58:19 gw kernel: " + msg, BadTime},
		{"Nov 31", "Nov 31 15:58:19 gw kernel: " + msg, BadTime},
		{"Feb 30", "Feb 30 15:58:19 gw kernel: " + msg, BadTime},
		{"short time", "Nov 24 15:58 gw kernel: " + msg, BadTime},
		{"empty fraction", "Nov 24 15:58:19. gw kernel: " + msg, BadTime},
		{"no timestamp", "gw kernel: " + msg, BadTime},
		{"no header", msg, BadTime},
		{"rfc3339 month 13", "2026-13-24T15:58:19+00:00 gw kernel: " + msg, BadTime},
		{"rfc3339 Feb 29 of a common year", "2026-02-29T15:58:19+00:00 gw kernel: " + msg, BadTime},
		{"rfc3339 bad zone", "2026-11-24T15:58:19+25:00 gw kernel: " + msg, BadTime},
		{"rfc3339 short zone", "2026-11-24T15:58:19+01 gw kernel: " + msg, BadTime},
		{"rfc3339 zone-less without a space", "2026-11-24T15:58:19gw kernel: " + msg, BadTime},
		{"rfc3339 junk after zone", "2026-11-24T15:58:19+00:00x gw kernel: " + msg, BadTime},
		{"dmesg without fraction", "[12345] " + msg, BadTime},
		{"dmesg not a number", "[1234a.5] " + msg, BadTime},
		{"dmesg -T bad year", "[Tue Nov 24 15:58:19 20x6] " + msg, BadTime},
		{"kmsg bad sequence", "4,x,15154445737,-;" + msg, BadTime},
		{"kmsg without semicolon", "4,14679,15154445737,- " + msg, BadTime},
		{"kmsg priority too large", "999,1,2,-;" + msg, BadTime},

		{"src not an address", repl("SRC=203.0.113.7", "SRC=203.0.113.300"), BadAddress},
		{"src leading zero", repl("SRC=203.0.113.7", "SRC=203.0.113.07"), BadAddress},
		{"src five octets", repl("SRC=203.0.113.7", "SRC=203.0.113.7.1"), BadAddress},
		{"src empty", repl("SRC=203.0.113.7", "SRC="), BadAddress},
		{"dst not an address", repl("DST=192.0.2.10", "DST=example.org"), BadAddress},
		{"zoned source", hdr + "SENTRY " + strings.Replace(synV6, "SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=fe80::1%eth0", 1), BadAddress},
		{"mixed families", repl("DST=192.0.2.10", "DST=2001:0db8:0000:0000:0000:0000:0000:0010"), BadAddress},
		{"mapped source, v6 destination", hdr + "SENTRY " + strings.Replace(synV6, "SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=::ffff:203.0.113.7", 1), BadAddress},

		{"dpt too large", repl("DPT=23", "DPT=99999"), BadPort},
		{"dpt 65536", repl("DPT=23", "DPT=65536"), BadPort},
		{"dpt negative", repl("DPT=23", "DPT=-1"), BadPort},
		{"spt not a number", repl("SPT=44321", "SPT=0x10"), BadPort},
		{"spt empty", repl("SPT=44321", "SPT="), BadPort},
		{"dpt huge", repl("DPT=23", "DPT=123456789012345678901234567890"), BadPort},

		{"unknown protocol name", repl("PROTO=TCP", "PROTO=QUIC"), BadProto},
		{"lower-case protocol name", repl("PROTO=TCP", "PROTO=tcp"), BadProto},
		{"protocol number 256", repl("PROTO=TCP", "PROTO=256"), BadProto},
		{"protocol empty", repl("PROTO=TCP", "PROTO="), BadProto},

		{"ttl 256", repl("TTL=41", "TTL=256"), BadField},
		{"ttl not a number", repl("TTL=41", "TTL=x"), BadField},
		{"v4 len 65536", repl("LEN=44", "LEN=65536"), BadField},
		{"v6 len too large", hdr + "SENTRY " + strings.Replace(synV6, "LEN=80", "LEN=65576", 1), BadField},
		{"hoplimit 256", hdr + "SENTRY " + strings.Replace(synV6, "HOPLIMIT=57", "HOPLIMIT=256", 1), BadField},
		{"icmp type 256", repl("PROTO=TCP", "PROTO=ICMP TYPE=256 CODE=0"), BadField},
		{"icmp code 300", repl("PROTO=TCP", "PROTO=ICMP TYPE=3 CODE=300"), BadField},

		{"cut before PROTO", cut("PROTO="), Truncated},
		{"cut before DST", hdr + "SENTRY " + synV4[:strings.Index(synV4, "DST=")], Truncated},
		{"tcp without ports", cut("SPT="), Truncated},
		{"tcp without dpt", cut("DPT="), Truncated},
		{"udp without ports", hdr + "SENTRY IN=eth0 OUT= SRC=203.0.113.7 DST=192.0.2.10 LEN=28 TTL=64 ID=1 PROTO=UDP ", Truncated},
		{"sctp by name without ports", cut("PROTO=") + "PROTO=SCTP ", Truncated},
		{"icmp without type", cut("PROTO=") + "PROTO=ICMP ", Truncated},

		{"source in 0.0.0.0/8", repl("SRC=203.0.113.7", "SRC=0.1.2.3"), ReservedSource},
		{"source broadcast", repl("SRC=203.0.113.7", "SRC=255.255.255.255"), ReservedSource},
		{"source multicast v4", repl("SRC=203.0.113.7", "SRC=224.0.0.251"), ReservedSource},
		{"source multicast v6", hdr + "SENTRY " + strings.Replace(synV6, "SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=ff02:0000:0000:0000:0000:0000:0000:00fb", 1), ReservedSource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{Prefix: "untouched"}
			if o := newTestParser().Parse([]byte(tc.line), &ev); o != tc.want {
				t.Errorf("Parse(%q) = %v, want %v", tc.line, o, tc.want)
			}
			if ev != (Event{Prefix: "untouched"}) {
				t.Errorf("Parse wrote *ev on a malformed line: %s", fmtEvent(ev))
			}
			if !tc.want.Malformed() {
				t.Errorf("test case wants %v, which is not a malformed outcome", tc.want)
			}
		})
	}
}

func TestParseLineSkipped(t *testing.T) {
	for _, line := range []string{
		"",
		"\n",
		"\r\n",
		" ",
		"-- Boot 3f1c2a9be5d84c7f9a1e0b6d2c4f8a11 --",
		"-- No entries --",
		hdr + "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex",
		"Nov 24 15:58:19 gw sshd[2211]: Accepted publickey for admin from 192.0.2.50 port 50022 ssh2",
		"Nov 24 15:58:19 gw",
		"2026-11-24T15:58:19+0000 gw systemd[1]: Started session-42.scope.",
		hdr + "SENTRY IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=00:1b:21:3a:4c:5e IPSRC=192.0.2.1 MACDST=00:00:00:00:00:00 IPDST=192.0.2.10 ",
		hdr + "SENTRY IN=br0 OUT= MAC=52:54:00:12:34:56:00:1b:21:3a:4c:5e:88:cc ",
		hdr + "audit: SRC=203.0.113.7 but no interfaces",
		hdr + "SENTRY IN=eth0 SRC=203.0.113.7 DST=192.0.2.10 PROTO=TCP SPT=1 DPT=2 ",
		"[    0.000000] Linux version 6.18.0-1-amd64",
		"6,14670,1234567000000,-;e1000e 0000:00:19.0 eth0: NIC Link is Up",
		" SUBSYSTEM=net",
		// nf_log always prints the outer SRC; one only in the quoted packet
		// is not a record of ours.
		hdr + "SENTRY IN=eth0 OUT= PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.10 DST=198.51.100.77 PROTO=UDP SPT=1 DPT=2 ] ",
		hdr + "SENTRY SRC=x " + strings.Replace(synV4, "SRC=203.0.113.7 ", "", 1),
		"12,14681,15154445737,-;SENTRY " + synV4,
		"14,14681,15154445737,-;SENTRY " + synV4,
		"\x00\x01\x02",
	} {
		var ev Event
		if o := newTestParser().Parse([]byte(line), &ev); o != Skipped {
			t.Errorf("Parse(%q) = %v, want skipped", line, o)
		}
	}
}

func TestParseLineYear(t *testing.T) {
	msg := " gw kernel: SENTRY " + synV4
	cases := []struct {
		name  string
		ref   time.Time
		lines []string
		want  []time.Time
	}{
		{
			name:  "same month as reference",
			ref:   time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
			lines: []string{"Nov 24 15:58:19"},
			want:  []time.Time{time.Date(2026, 11, 24, 15, 58, 19, 0, time.UTC)},
		},
		{
			name:  "month after reference's is last year",
			ref:   time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC),
			lines: []string{"Dec 30 10:00:00"},
			want:  []time.Time{time.Date(2026, 12, 30, 10, 0, 0, 0, time.UTC)},
		},
		{
			name:  "Dec to Jan rolls over",
			ref:   time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC),
			lines: []string{"Dec 31 23:59:59", "Jan  1 00:00:01", "Jan  1 00:05:00"},
			want: []time.Time{
				time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
				time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC),
				time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC),
			},
		},
		{
			name:  "a late December line after the rollover",
			ref:   time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC),
			lines: []string{"Dec 31 23:59:59", "Jan  1 00:00:01", "Dec 31 23:59:58", "Jan  1 00:00:02"},
			want: []time.Time{
				time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
				time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC),
				time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC),
				time.Date(2027, 1, 1, 0, 0, 2, 0, time.UTC),
			},
		},
		{
			name:  "a long quiet spell",
			ref:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			lines: []string{"Jan  1 00:00:00", "Oct  1 00:00:00", "Dec 31 00:00:00"},
			want: []time.Time{
				time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
			},
		},
		{
			name:  "months forward within a year",
			ref:   time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC),
			lines: []string{"Mar  1 00:00:00", "Jun  1 00:00:00", "Aug 31 23:59:59"},
			want: []time.Time{
				time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2026, 8, 31, 23, 59, 59, 0, time.UTC),
			},
		},
		{
			name:  "two rollovers",
			ref:   time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC),
			lines: []string{"Nov 30 00:00:00", "Jan  1 00:00:00", "Jun  1 00:00:00", "Dec  1 00:00:00", "Jan 31 00:00:00"},
			want: []time.Time{
				// Reference is Feb 2028, Nov is later in the year: 2027.
				time.Date(2027, 11, 30, 0, 0, 0, 0, time.UTC),
				time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2028, 6, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2028, 12, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2029, 1, 31, 0, 0, 0, 0, time.UTC),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewLineParser(LineOptions{Reference: tc.ref, Location: time.UTC})
			for i, ts := range tc.lines {
				var ev Event
				if o := p.Parse([]byte(ts+msg), &ev); o != Parsed {
					t.Fatalf("line %d: %v", i, o)
				}
				if !ev.Time.Equal(tc.want[i]) {
					t.Errorf("line %d (%s): Time = %v, want %v", i, ts, ev.Time.UTC(), tc.want[i])
				}
			}
		})
	}
}

func TestParseLineYearFromOtherLines(t *testing.T) {
	// Lines of other programs move the year too: the firewall may be quiet
	// for more than half a year while the log is not.
	p := NewLineParser(LineOptions{Reference: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC})
	var ev Event
	for _, line := range []string{
		"Dec  1 00:00:00 gw kernel: SENTRY " + synV4,
		"Mar  1 00:00:00 gw CRON[1]: (root) CMD (true)",
		"Sep  1 00:00:00 gw kernel: SENTRY " + synV4,
	} {
		p.Parse([]byte(line), &ev)
	}
	if want := time.Date(2027, 9, 1, 0, 0, 0, 0, time.UTC); !ev.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", ev.Time.UTC(), want)
	}
}

func TestParseLineNoReference(t *testing.T) {
	// Reference defaults to now: a line from this month is from this year.
	now := time.Now()
	p := NewLineParser(LineOptions{Location: time.UTC})
	line := now.UTC().Format("Jan _2 15:04:05") + " gw kernel: SENTRY " + synV4
	var ev Event
	if o := p.Parse([]byte(line), &ev); o != Parsed {
		t.Fatalf("Parse(%q) = %v", line, o)
	}
	if ev.Time.Year() != now.UTC().Year() {
		t.Errorf("year = %d, want %d", ev.Time.Year(), now.UTC().Year())
	}
}

func TestParseLineKeepsNoReference(t *testing.T) {
	p := newTestParser()
	for _, line := range []string{
		hdr + "[UFW BLOCK] " + synV4,
		hdr + "PREFIX-NEVER-SEEN " + strings.Replace(synV4, "IN=eth0", "IN=wlp3s0", 1),
	} {
		buf := []byte(line)
		var ev Event
		if o := p.Parse(buf, &ev); o != Parsed {
			t.Fatalf("Parse(%q) = %v", line, o)
		}
		prefix, iface := strings.Clone(ev.Prefix), strings.Clone(ev.InIface)
		for i := range buf {
			buf[i] = 'X'
		}
		if ev.Prefix != prefix || ev.InIface != iface {
			t.Errorf("event changed with the buffer: prefix %q, iface %q", ev.Prefix, ev.InIface)
		}
	}
}

func TestParseLineInternBound(t *testing.T) {
	p := newTestParser()
	for i := range 3 * maxInterned {
		prefix := fmt.Sprintf("P%d", i)
		iface := fmt.Sprintf("veth%d", i)
		line := hdr + prefix + " " + strings.Replace(synV4, "IN=eth0", "IN="+iface, 1)
		var ev Event
		if o := p.Parse([]byte(line), &ev); o != Parsed {
			t.Fatalf("Parse(%q) = %v", line, o)
		}
		if ev.Prefix != prefix || ev.InIface != iface {
			t.Fatalf("got prefix %q iface %q, want %q %q", ev.Prefix, ev.InIface, prefix, iface)
		}
	}
	if n := len(p.strs); n > maxInterned {
		t.Errorf("string table holds %d entries, cap is %d", n, maxInterned)
	}
}

// allocLines is a steady-state mix: IPv4, IPv6, UFW, firewalld, ICMP with a
// quoted packet, every header format, and lines that are skipped or broken.
var allocLines = []string{
	hdr + "[1234567.678901] SENTRY " + synV4,
	hdr + "SENTRY " + synV6,
	hdr + "[1234567.678901] [UFW BLOCK] " + synV4,
	hdr + "filter_IN_public_REJECT: " + synV6,
	hdr + "SENTRY IN=eth0 OUT= " + macV4 + " SRC=198.51.100.1 DST=192.0.2.10 LEN=56 TOS=0x00 PREC=0xC0 TTL=254 ID=1234 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.10 DST=198.51.100.77 LEN=28 TOS=0x00 PREC=0x00 TTL=1 ID=4321 PROTO=UDP SPT=33434 DPT=33435 LEN=8 ] ",
	"Nov 24 15:59:20 gw kernel: SENTRY " + synV4,
	"2026-11-24T15:58:19.123456+00:00 gw kernel: SENTRY " + synV4,
	"2026-11-24T15:58:19+0000 gw kernel: SENTRY " + synV6,
	"Nov 24 15:58:19.123456 gw kernel: SENTRY " + synV4,
	"[12345.678901] SENTRY " + synV4,
	"[Tue Nov 24 15:58:19 2026] SENTRY " + synV4,
	"4,14679,15154445737,-;SENTRY " + synV6,
	"Nov 24 15:58:19 gw sshd[2211]: Accepted publickey for admin from 192.0.2.50 port 50022 ssh2",
	hdr + "SENTRY " + strings.Replace(synV4, "DPT=23", "DPT=99999", 1),
	hdr + "SENTRY " + strings.Replace(synV6, "SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=fe80::1%eth0", 1),
	"Nox 24 15:58:19 gw kernel: SENTRY " + synV4,
}

// formatLines are the formats read since: a mix of their own, kept apart
// so that BenchmarkParseLineMix measures what it always has.
var formatLines = []string{
	"Tue Nov 24 15:58:19 2026 kern.warn kernel: [311423.870453] SENTRY " + synV4,
	"<4>1 2026-11-24T15:58:19.123Z gw kernel - - - SENTRY " + synV6,
	"<13>Nov 24 15:58:19 UCG-Max [LAN_LOCAL-RET-2147483647] DESCR=\"no rule description\" " + synV4,
	"11月 24 15:58:19 gw kernel: [UFW BLOCK] " + synV4,
	"0 6 PVEFW-HOST-IN 24/Nov/2026:15:58:19 +0000 policy DROP: IN=vmbr0 PHYSIN=enp3s0 SRC=198.51.100.7 DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=22 SEQ=1 ACK=0 WINDOW=1024 SYN ",
	`{"__REALTIME_TIMESTAMP":"1795535899000000","_TRANSPORT":"kernel","MESSAGE":"SENTRY ` + synV4 + `\u0020"}`,
	"gw kernel: SENTRY " + synV4,
	hdr + "SENTRY " + synV4[:strings.Index(synV4, "PROTO=")] + "FRAG:185 PROTO=UDP ",
}

func TestParseLineAllocs(t *testing.T) {
	p := newTestParser()
	var lines [][]byte
	for _, l := range append(allocLines, formatLines...) {
		lines = append(lines, []byte(l))
	}
	var ev Event
	for _, l := range lines {
		p.Parse(l, &ev)
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, l := range lines {
			p.Parse(l, &ev)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %.1f times per %d lines, want 0", allocs, len(lines))
	}
}

// logsDir holds the sample logs, shared by the repository's tests.
const logsDir = "../testdata/logs"

// forEachLine calls f for each line of a sample log, with its number.
func forEachLine(t *testing.T, name string, f func(n int, line []byte)) {
	t.Helper()
	fh, err := os.Open(filepath.Join(logsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := bufio.NewReader(fh)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			break
		}
		f(n, line)
	}
}

// TestSampleLogs parses every sample log and checks how many lines came out
// each way. The counts are written from how the files were made, not from
// what the parser says.
func TestSampleLogs(t *testing.T) {
	kernRef := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		file string
		ref  time.Time
		want map[Outcome]int
	}{
		{"kern.log", kernRef, map[Outcome]int{Parsed: 54, Skipped: 5, BadTime: 1, BadPort: 1, Truncated: 1, UnspecifiedSource: 1}},
		{"rsyslog-rfc3339.log", kernRef, map[Outcome]int{Parsed: 9, Skipped: 2, BadTime: 1}},
		{"journal-short-iso.log", kernRef, map[Outcome]int{Parsed: 9, Skipped: 2, BadPort: 1}},
		{"journal-short-precise.log", kernRef, map[Outcome]int{Parsed: 8, Skipped: 2, ReservedSource: 1}},
		{"dmesg.log", kernRef, map[Outcome]int{Parsed: 9, Skipped: 2, Truncated: 1}},
		{"kmsg.txt", kernRef, map[Outcome]int{Parsed: 8, Skipped: 4, BadProto: 1}},
		{"ufw.log", kernRef, map[Outcome]int{Parsed: 12, UnspecifiedSource: 1}},
		{"firewalld.log", kernRef, map[Outcome]int{Parsed: 9, Skipped: 2, BadAddress: 1}},
		{"broken.log", kernRef, map[Outcome]int{Parsed: 3, Skipped: 3, BadTime: 3, BadAddress: 4, BadPort: 3, BadProto: 2, BadField: 4, Truncated: 2, UnspecifiedSource: 2, ReservedSource: 4}},
		{"rollover.log", time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC), map[Outcome]int{Parsed: 5}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			p := NewLineParser(LineOptions{Reference: tc.ref, Boot: testBoot, Location: time.UTC})
			got := map[Outcome]int{}
			var prev time.Time
			forEachLine(t, tc.file, func(n int, line []byte) {
				var ev Event
				o := p.Parse(line, &ev)
				got[o]++
				if testing.Verbose() && o != Parsed {
					t.Logf("%s:%d: %v", tc.file, n, o)
				}
				if o == Parsed && tc.file == "rollover.log" {
					if !prev.IsZero() && !ev.Time.After(prev) {
						t.Errorf("%s:%d: time %v not after %v", tc.file, n, ev.Time, prev)
					}
					prev = ev.Time
				}
			})
			for o := range Outcome(NumOutcomes) {
				if got[o] != tc.want[o] {
					t.Errorf("%v: got %d lines, want %d", o, got[o], tc.want[o])
				}
			}
		})
	}
	files, err := filepath.Glob(filepath.Join(logsDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.IsDir() {
			continue // real/ has its own test
		}
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no expected counts", f)
		}
	}
}

func TestRolloverLog(t *testing.T) {
	p := NewLineParser(LineOptions{Reference: time.Date(2027, 1, 1, 0, 10, 0, 0, time.UTC), Location: time.UTC})
	want := []time.Time{
		time.Date(2026, 12, 31, 23, 59, 57, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 3, 0, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC),
	}
	forEachLine(t, "rollover.log", func(n int, line []byte) {
		var ev Event
		if o := p.Parse(line, &ev); o != Parsed {
			t.Fatalf("line %d: %v", n, o)
		}
		if !ev.Time.Equal(want[n-1]) {
			t.Errorf("line %d: Time = %v, want %v", n, ev.Time.UTC(), want[n-1])
		}
	})
}

// TestKernLogScenario checks that kern.log holds the scans other packages'
// tests replay, so a change to the file cannot quietly remove one.
func TestKernLogScenario(t *testing.T) {
	p := newTestParser()
	var evs []Event
	forEachLine(t, "kern.log", func(_ int, line []byte) {
		var ev Event
		if p.Parse(line, &ev) == Parsed {
			evs = append(evs, ev)
		}
	})
	from := func(keep func(Event) bool) []Event {
		var out []Event
		for _, e := range evs {
			if keep(e) {
				out = append(out, e)
			}
		}
		return out
	}
	bySrc := func(s string) []Event {
		a := netip.MustParseAddr(s)
		return from(func(e Event) bool { return e.Src == a })
	}
	ports := func(es []Event) int {
		m := map[uint16]bool{}
		for _, e := range es {
			m[e.DstPort] = true
		}
		return len(m)
	}
	span := func(es []Event) time.Duration { return es[len(es)-1].Time.Sub(es[0].Time) }

	fast := bySrc("203.0.113.7")
	if ports(fast) < 6 || span(fast) > time.Minute {
		t.Errorf("fast scanner: %d ports in %v, want >= 6 within a minute", ports(fast), span(fast))
	}
	for _, e := range fast {
		if e.Flags != SYN || e.Proto != ProtoTCP {
			t.Errorf("fast scanner: %s, want TCP SYN", fmtEvent(e))
		}
	}

	slow := bySrc("198.51.100.20")
	if ports(slow) < 6 {
		t.Errorf("slow scanner: %d ports, want >= 6", ports(slow))
	}
	for i := 1; i < len(slow); i++ {
		if d := slow[i].Time.Sub(slow[i-1].Time); d != 70*time.Second {
			t.Errorf("slow scanner: gap %v, want 70s", d)
		}
	}

	stealth := map[TCPFlags]int{}
	for _, e := range bySrc("203.0.113.66") {
		stealth[e.Flags]++
	}
	if stealth[FIN] == 0 || stealth[0] == 0 || stealth[URG|PSH|FIN] == 0 || len(stealth) != 3 {
		t.Errorf("stealth probes: flags %v, want FIN, NULL and XMAS", stealth)
	}

	scan6net := netip.MustParsePrefix("2001:db8:bad:1::/64")
	v6 := from(func(e Event) bool { return scan6net.Contains(e.Src) })
	srcs := map[netip.Addr]bool{}
	for _, e := range v6 {
		srcs[e.Src] = true
	}
	if ports(v6) < 6 || len(srcs) < 6 || span(v6) > time.Minute {
		t.Errorf("IPv6 scan: %d ports from %d addresses in %v, want >= 6 from >= 6 within a minute", ports(v6), len(srcs), span(v6))
	}

	udp := bySrc("192.0.2.99")
	if ports(udp) < 6 || span(udp) > time.Minute {
		t.Errorf("UDP scan: %d ports in %v, want >= 6 within a minute", ports(udp), span(udp))
	}
	for _, e := range udp {
		if e.Proto != ProtoUDP {
			t.Errorf("UDP scan: %s", fmtEvent(e))
		}
	}

	if lo := bySrc("127.0.0.1"); ports(lo) < 6 || lo[0].InIface != "lo" {
		t.Errorf("loopback: %d ports", ports(lo))
	}

	prefixes := map[string]bool{}
	for _, e := range evs {
		prefixes[e.Prefix] = true
	}
	for _, want := range []string{"SENTRY", "[UFW BLOCK]", "[UFW AUDIT]", "filter_IN_public_REJECT", ""} {
		if !prefixes[want] {
			t.Errorf("no event with prefix %q", want)
		}
	}
}

// TestRealLogs parses the real lines of testdata/logs/real (sources in the
// README there) and checks how many came out each way, counted by hand from
// the lines.
func TestRealLogs(t *testing.T) {
	ref := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		file string
		want map[Outcome]int
	}{
		// 24 records; the one from "DENY:" has neither host nor tag, two
		// from "Abc-A1" have a host and no tag, one is ESP.
		{"relays.log", map[Outcome]int{Parsed: 24}},
		{"suse-shorewall.log", map[Outcome]int{Parsed: 7}},
		// The third line has XX= instead of IN=.
		{"crowdsec-hub.log", map[Outcome]int{Parsed: 3, Skipped: 1}},
		// Four logger status lines, two ICMP records without OUT=.
		{"proxmox.log", map[Outcome]int{Parsed: 2, Skipped: 4}},
		{"journal-zh_CN.log", map[Outcome]int{Parsed: 6}},
		{"journal-es.log", map[Outcome]int{Parsed: 7}},
		{"journal.json", map[Outcome]int{Parsed: 3}},
		{"journal.json-seq", map[Outcome]int{Parsed: 1}},
		{"ulogd-logemu.log", map[Outcome]int{Parsed: 2}},
		{"busybox-udm.log", map[Outcome]int{Parsed: 1}},
		{"dmesg-firewalld.log", map[Outcome]int{Parsed: 4}},
		{"dmesg-T.log", map[Outcome]int{Parsed: 6}},
		// Cut before the flags, inside them, before WINDOW: never a scan.
		{"cut.log", map[Outcome]int{Truncated: 3}},
	}
	seen := map[string]bool{"README.md": true}
	for _, tc := range cases {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			p := NewLineParser(LineOptions{Reference: ref, Location: time.UTC})
			got := map[Outcome]int{}
			forEachLine(t, filepath.Join("real", tc.file), func(n int, line []byte) {
				var ev Event
				o := p.Parse(line, &ev)
				got[o]++
				if o == Parsed {
					checkEvent(t, &ev)
				}
			})
			for o := range Outcome(NumOutcomes) {
				if got[o] != tc.want[o] {
					t.Errorf("%v: got %d lines, want %d", o, got[o], tc.want[o])
				}
			}
		})
	}
	files, err := filepath.Glob(filepath.Join(logsDir, "real", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no expected counts", f)
		}
	}
}
