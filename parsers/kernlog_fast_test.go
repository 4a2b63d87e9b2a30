package parsers

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fastAgrees reads rec with the fast path and with parse. It fails t when
// the fast path accepts rec but parse reads it otherwise, and reports
// whether the fast path accepted it.
//
// The fast path reads rec twice: after memo's address (as left by another
// record), and after its own, which it then takes from memo.
func fastAgrees(t testing.TB, rec []byte, memo *addrMemo) bool {
	t.Helper()
	var fast fields
	if !fast.fast(rec, memo) {
		return false
	}
	var slow fields
	if o := slow.parse(rec); o != Parsed {
		t.Fatalf("fast path accepted %q, parse says %v", rec, o)
	}
	if a, b := fmtFields(&fast), fmtFields(&slow); a != b {
		t.Fatalf("fast path and parse disagree on %q:\nfast  %s\nparse %s", rec, a, b)
	}
	var again fields
	if !again.fast(rec, memo) {
		t.Fatalf("fast path refused %q the second time", rec)
	}
	if a, b := fmtFields(&again), fmtFields(&slow); a != b {
		t.Fatalf("fast path and parse disagree on %q read again:\nfast  %s\nparse %s", rec, a, b)
	}
	return true
}

func fmtFields(f *fields) string {
	return fmt.Sprintf("seen=%#x src=%v dst=%v iface=%q spt=%d dpt=%d len=%d proto=%d flags=%#x ttl=%d icmp=%d/%d noL4=%v",
		f.seen, f.src, f.dst, f.iface, f.spt, f.dpt, f.length, f.proto, f.flags, f.ttl, f.icmpType, f.icmpCode, f.noL4)
}

// records returns the record (from "IN=") of each line that has one.
func records(lines []string) [][]byte {
	var recs [][]byte
	for _, l := range lines {
		if in := findIN([]byte(l)); in >= 0 {
			recs = append(recs, []byte(l[in:]))
		}
	}
	return recs
}

// fastVariants are records in nf_log's order, which the fast path must
// take, and each of them changed in one place, which it must either leave
// to parse or read as parse does.
func fastVariants() (canonical, changed []string) {
	udp := "IN=eth0 OUT= " + macV4 + " SRC=198.51.100.1 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=UDP SPT=53 DPT=1900 LEN=20 "
	icmp := "IN=eth0 OUT= SRC=198.51.100.1 DST=192.0.2.10 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 "
	icmp6 := "IN=eth0 OUT= " + macV6 + " SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0010 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1 "
	xmas := "IN=ppp0 OUT= SRC=203.0.113.9 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=9 CE DF MF PROTO=TCP SPT=1 DPT=80 WINDOW=0 RES=0x00 CWR ECE URG ACK PSH RST SYN FIN URGP=0"
	null := "IN= OUT=eth0 SRC=203.0.113.9 DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=9 PROTO=TCP SPT=1 DPT=80 WINDOW=0 RES=0x00 URGP=0 UID=0 GID=0 MARK=0x1"
	canonical = []string{synV4, synV6, udp, icmp, icmp6, xmas, null, strings.TrimSuffix(synV4, " ")}
	edits := []struct{ old, new string }{
		{" ", "  "},
		{" ", ""},
		{"=", ""},
		{"=", "=="},
		{"IN=eth0", "IN=e[th0"},
		{"IN=eth0", "IN=eth0]"},
		{"OUT=", "OUT=[x"},
		{" OUT=", " [OUT="},
		{"SRC=", "XSRC="},
		{"SRC=", "SRC:"},
		{" DST=", " SRC=198.51.100.2 DST="},
		{"DST=192.0.2.10", "DST=2001:db8::1"},
		{"SRC=203.0.113.7", "SRC=203.0.113.07"},
		{"SRC=203.0.113.7", "SRC=203.0.113.1234"},
		{"SRC=203.0.113.7", "SRC=203.0.113.256"},
		{"SRC=203.0.113.7", "SRC=203.0.113."},
		{"SRC=203.0.113.7", "SRC=203.0.113.7."},
		{"SRC=203.0.113.7", "SRC=::ffff:203.0.113.7"},
		{"SRC=203.0.113.7", "SRC=0.0.0.0"},
		{"SRC=198.51.100.1", "SRC=198.51.100.1x"},
		{"SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=2001:db8:bad:1::a1"},
		{"SRC=2001:0db8:0bad:0001:0000:0000:0000:00a1", "SRC=203.0.113.7"},
		{"SRC=2001:0db8:0000:0000:0000:0000:0000:0001", "SRC=fe80::1%eth0"},
		{"LEN=44", "LEN=65575"},
		{"LEN=80", "LEN=65575"},
		{"LEN=80", "LEN=65576"},
		{"LEN=44", "LEN="},
		{"LEN=44", "LEN=44x"},
		{"LEN=44", "LEN=00000000044"},
		{"LEN=44", "LEN=0000000044"},
		{"TOS=0x00 ", ""},
		{"TOS=0x00", "TOS="},
		{"PREC=0x00 ", ""},
		{"TOS=0x00", "TOS=0x0"},
		{"TOS=0x00", "TOS=0x000"},
		{"TOS=0x00", "TOS=0x 0"},
		{"TOS=0x00", "TOS=0x10"},
		{"TOS=0x00", "TOS=1x00"},
		{"PREC=0x00", "PREC=0x0"},
		{"PREC=0x00", "PREC=0x000"},
		{"PREC=0x00", "PREC=0xC0"},
		{"PREC=0x00 TTL", "PREC=0x00TTL"},
		{"RES=0x00", "RES=0x0"},
		{"RES=0x00", "RES=0x000"},
		{"RES=0x00", "RES=0x 0"},
		{"RES=0x00", "RES=0x01"},
		{"TTL=41", "TTL=256"},
		{"TTL=41", "TTL=-1"},
		{"TTL=41", "HOPLIMIT=41"},
		{"HOPLIMIT=57", "TTL=57"},
		{"HOPLIMIT=57", "HOPLIMIT=257"},
		{"FLOWLBL=123456 ", ""},
		{"ID=54321 ", ""},
		{"ID=54321 ", "ID=54321 DF "},
		{"ID=54321 ", "ID=54321 DFX "},
		{"ID=54321 ", "ID=54321 SYN "},
		{"ID=54321 ", "ID=54321 FRAG:185 "},
		{"ID=54321 ", "ID=54321 FRAG:0 "},
		{"ID=54321 ", "ID=54321 OPT (0204) "},
		{"ID=54321 ", "ID=54321 INCOMPLETE "},
		{"ID=9 CE", "ID=9 XE"},
		{"FLOWLBL=123456 ", "FLOWLBL=123456 FRAG:0 ID:1 "},
		{"PROTO=TCP", "PROTO=6"},
		{"PROTO=TCP", "PROTO=SCTP"},
		{"PROTO=TCP", "PROTO=UDP"},
		{"PROTO=TCP", "PROTO=tcp"},
		{"PROTO=UDP", "PROTO=UDPLITE"},
		{"PROTO=ICMP", "PROTO=ICMPv6"},
		{"PROTO=ICMPv6", "PROTO=ICMP"},
		{"PROTO=TCP ", "PROTO=TCP INCOMPLETE [8 bytes] "},
		{"SPT=44321", "SPT=65536"},
		{"SPT=44321", "SPT="},
		{"SPT=44321 ", ""},
		{"DPT=23", "DPT=99999"},
		{"DPT=23 ", ""},
		{"DPT=23 ", "DPT=23 SEQ=1 ACK=0 "},
		{"DPT=1900", "DPT=1900x"},
		{"SPT=53 DPT=1900", "DPT=1900 SPT=53"},
		{"WINDOW=1024 ", ""},
		{"WINDOW=1024", "WINDOW="},
		{"RES=0x00 ", ""},
		{"RES=0x00 SYN", "RES=0x00 SYNACK"},
		{"RES=0x00 SYN", "RES=0x00 SY"},
		{"RES=0x00 SYN", "RES=0x00 SYN SYN"},
		{"RES=0x00 SYN", "RES=0x00 DF"},
		{"RES=0x00 SYN", "RES=0x00 [SYN]"},
		{"SYN URGP=0", "SYN"},
		{"SYN URGP=0", "SYN URGP"},
		{"SYN URGP=0", "SYN URGP=x"},
		{"URGP=0", "URGP="},
		{"FIN URGP=0", "FIN"},
		{"TYPE=8", "TYPE=256"},
		{"TYPE=8 ", ""},
		{"CODE=0", "CODE=x"},
		{"CODE=0 ", ""},
		{"TYPE=128 CODE=0", "CODE=0 TYPE=128"},
		{"MAC=52", "MAC=[52"},
		{macV4 + " ", ""},
		{macV4, "MAC="},
		{"IN=eth0 OUT= ", "IN=eth0 OUT= PHYSIN=eth1 PHYSOUT=eth2 "},
		{"IN=", "IN=IN="},
		{"OUT= ", "OUT=eth1 "},
	}
	for _, c := range canonical {
		for _, e := range edits {
			for i := 0; ; i++ {
				at := strings.Index(c[i:], e.old)
				if at < 0 {
					break
				}
				i += at
				changed = append(changed, c[:i]+e.new+c[i+len(e.old):])
			}
		}
		for cut := 1; cut < len(c); cut++ {
			changed = append(changed, c[:cut])
		}
	}
	return canonical, changed
}

// TestFastPathAgrees holds the fast path to parse: on every record it
// accepts it must read what parse reads, and it must accept the records
// in nf_log's own order, the lines it exists for.
func TestFastPathAgrees(t *testing.T) {
	canonical, changed := fastVariants()
	for _, rec := range canonical {
		if !fastAgrees(t, []byte(rec), &addrMemo{}) {
			t.Errorf("fast path refused a record in nf_log's order: %q", rec)
		}
	}
	// Each record after the last one's address, as in a log.
	memo := &addrMemo{}
	took := 0
	for _, rec := range changed {
		if fastAgrees(t, []byte(rec), memo) {
			took++
		}
	}
	// Lines of the sample logs and of the other tests.
	lines := append(append([]string(nil), allocLines...), formatLines...)
	files, _ := filepath.Glob(filepath.Join(logsDir, "*.log"))
	real, _ := filepath.Glob(filepath.Join(logsDir, "real", "*"))
	for _, name := range append(files, real...) {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(string(data), "\n")...)
	}
	took2 := 0
	for _, rec := range records(lines) {
		if fastAgrees(t, bytes.TrimRight(rec, "\r"), memo) {
			took2++
		}
	}
	t.Logf("fast path took %d of %d changed records, %d of the sample logs' records", took, len(changed), took2)
}

// FuzzFastPath checks the fast path against parse on arbitrary records.
func FuzzFastPath(f *testing.F) {
	canonical, _ := fastVariants()
	for _, rec := range canonical {
		f.Add([]byte(rec))
	}
	for _, rec := range records(append(append([]string(nil), allocLines...), formatLines...)) {
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		fastAgrees(t, rec, &addrMemo{})
	})
}

// FuzzFastPathAfter reads rec after prev, whose destination address the
// fast path holds when it reads rec.
func FuzzFastPathAfter(f *testing.F) {
	canonical, changed := fastVariants()
	for i, rec := range changed {
		f.Add([]byte(canonical[i%len(canonical)]), []byte(rec))
	}
	f.Add([]byte(synV4), []byte(strings.Replace(synV4, "DST=192.0.2.10", "DST=192.0.2.1", 1)))
	f.Add([]byte(synV4), []byte(strings.Replace(synV4, "DST=192.0.2.10", "DST=192.0.2.100", 1)))
	f.Fuzz(func(t *testing.T, prev, rec []byte) {
		var memo addrMemo
		var f fields
		f.fast(prev, &memo)
		fastAgrees(t, rec, &memo)
	})
}

// reservedSource reads IPv4 addresses from their octets; netip says the
// same of every one.
func TestReservedSource(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		for _, lo := range []byte{0, 1, 255} {
			a := netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), lo, lo})
			want := a.IsUnspecified() || a.IsMulticast() || a.As4()[0] == 0 || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
			if got := reservedSource(a); got != want {
				t.Errorf("reservedSource(%s) = %v, want %v", a, got, want)
			}
		}
	}
	for _, s := range []string{"::", "::1", "ff02::1", "2001:db8::1", "::ffff:0.0.0.0", "::ffff:224.0.0.1", "::ffff:1.2.3.4"} {
		a := netip.MustParseAddr(s)
		if got, want := reservedSource(a), a.IsUnspecified() || a.IsMulticast(); got != want {
			t.Errorf("reservedSource(%s) = %v, want %v", a, got, want)
		}
	}
}

// parseIPv6Full reads a fully expanded address as netip.ParseAddr does and
// refuses anything else (a compressed form, a zone, a byte that is no hex
// digit), which parseAddr leaves to netip: random groups, upper and lower
// case, and one byte changed for anything.
func TestParseIPv6Full(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const digits = "0123456789abcdefABCDEF"
	for i := range 100000 {
		b := make([]byte, 0, 39)
		for g := range 8 {
			if g > 0 {
				b = append(b, ':')
			}
			for range 4 {
				b = append(b, digits[r.IntN(len(digits))])
			}
		}
		if i%2 == 1 {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		full := true
		for j, c := range b {
			if j%5 == 4 && c != ':' || j%5 != 4 && !strings.ContainsRune(digits, rune(c)) {
				full = false
			}
		}
		got, ok := parseIPv6Full(b)
		want, err := netip.ParseAddr(string(b))
		if ok != full || ok && (err != nil || got != want) {
			t.Fatalf("parseIPv6Full(%q) = %v %v; full form %v, netip.ParseAddr: %v %v", b, got, ok, full, want, err)
		}
	}
}
