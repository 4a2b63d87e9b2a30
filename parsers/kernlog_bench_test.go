package parsers

import (
	"testing"
)

func benchParse(b *testing.B, line string, want Outcome) {
	p := newTestParser()
	buf := []byte(line)
	var ev Event
	if o := p.Parse(buf, &ev); o != want {
		b.Fatalf("Parse(%q) = %v, want %v", line, o, want)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	n := 0
	for b.Loop() {
		p.Parse(buf, &ev)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseLine is the common case: an IPv4 SYN in classic syslog.
func BenchmarkParseLine(b *testing.B) {
	benchParse(b, "Nov 24 15:58:19 gw kernel: [1234567.678901] SENTRY "+synV4, Parsed)
}

func BenchmarkParseLineIPv6(b *testing.B) {
	benchParse(b, "Nov 24 15:58:19 gw kernel: [1234567.678901] SENTRY "+synV6, Parsed)
}

func BenchmarkParseLineUFW(b *testing.B) {
	benchParse(b, "Nov 24 15:58:19 gw kernel: [1234567.678901] [UFW BLOCK] "+synV4, Parsed)
}

func BenchmarkParseLineRFC3339(b *testing.B) {
	benchParse(b, "2026-11-24T15:58:19.123456+00:00 gw kernel: SENTRY "+synV4, Parsed)
}

func BenchmarkParseLineKmsg(b *testing.B) {
	benchParse(b, "4,14679,15154445737,-;SENTRY "+synV4, Parsed)
}

func BenchmarkParseLineICMPError(b *testing.B) {
	benchParse(b, allocLines[4], Parsed)
}

func BenchmarkParseLineJournalJSON(b *testing.B) {
	benchParse(b, `{"__CURSOR":"s=2c2f7f3d64d844aa9bc1844a48026313;i=1f345","__REALTIME_TIMESTAMP":"1795535899000000","__MONOTONIC_TIMESTAMP":"108101422325","_BOOT_ID":"c4b33c96f240457abc130dcb73da2b24","_TRANSPORT":"kernel","PRIORITY":"4","SYSLOG_FACILITY":"0","SYSLOG_IDENTIFIER":"kernel","MESSAGE":"SENTRY `+synV4+`","_HOSTNAME":"gw"}`, Parsed)
}

// BenchmarkParseLineRelayed is a record relayed without the kernel's tag,
// which is checked word by word before it is read.
func BenchmarkParseLineRelayed(b *testing.B) {
	benchParse(b, `<13>Nov 24 15:58:19 UCG-Max [LAN_LOCAL-D-2147483647] DESCR="no rule description" `+synV4, Parsed)
}

// BenchmarkParseLineSkipped is the most common line of a busy kern.log or
// messages file: another program's.
func BenchmarkParseLineSkipped(b *testing.B) {
	benchParse(b, "Nov 24 15:58:19 gw sshd[2211]: Accepted publickey for admin from 192.0.2.50 port 50022 ssh2: ED25519 SHA256:Yb3f0dJk1", Skipped)
}

// BenchmarkParseLineMix cycles through lines of every format, so that the
// time cache and the interned strings see changes.
func BenchmarkParseLineMix(b *testing.B) { benchMix(b, allocLines) }

// BenchmarkParseLineMixFormats cycles through the formats of other
// firewalls and log daemons: logread, RFC 5424, relays, localized months,
// pve-firewall.log, journal JSON, undated lines and fragments.
func BenchmarkParseLineMixFormats(b *testing.B) { benchMix(b, formatLines) }

func benchMix(b *testing.B, from []string) {
	p := newTestParser()
	lines := make([][]byte, len(from))
	for i, l := range from {
		lines[i] = []byte(l)
	}
	var ev Event
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p.Parse(lines[n%len(lines)], &ev)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}
