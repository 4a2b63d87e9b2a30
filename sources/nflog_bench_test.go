//go:build linux

package sources

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// nflogBenchRun returns a run whose interface table knows index 7, without
// opening any socket.
func nflogBenchRun() *nflogRun {
	return &nflogRun{
		src:      NewNFLOGSource(NFLOGConfig{}),
		prefixes: newNFLOGIntern(nflogMaxPrefixes),
		ifnames:  &nflogIfNames{names: map[uint32]string{7: "eth0"}},
		clock:    newNFLOGClock(),
	}
}

// nflogBenchAttr is what the socket hands the hook for a logged TCP SYN.
func nflogBenchAttr() nflogPacket {
	return nflogPacket{payload: nflogTestPacket("198.51.100.2", "198.51.100.1", 40000, 22, parsers.SYN),
		prefix: []byte("SENTRY: "), ts: time.Now(), hasTS: true, indev: 7, hasDev: true}
}

func TestNFLOGEvent(t *testing.T) {
	r, a := nflogBenchRun(), nflogBenchAttr()
	ev, o := r.event(&a)
	if o != parsers.Parsed || ev.Prefix != "SENTRY" || ev.InIface != "eth0" || !ev.Time.Equal(a.ts) || ev.DstPort != 22 || ev.Flags != parsers.SYN {
		t.Fatalf("event = %+v, %v", ev, o)
	}
	if n := testing.AllocsPerRun(1000, func() { r.event(&a) }); n != 0 {
		t.Errorf("%v allocs per packet, want 0", n)
	}
	// No timestamp: receive time.
	a.hasTS = false
	if ev, _ := r.event(&a); time.Since(ev.Time) > time.Second {
		t.Errorf("fallback time %v", ev.Time)
	}
	// Unknown interface without a table connection: "" and no reload.
	a.indev = 8
	if ev, _ := r.event(&a); ev.InIface != "" {
		t.Errorf("unknown interface named %q", ev.InIface)
	}
	a.payload = nil
	if _, o := r.event(&a); o != parsers.Truncated {
		t.Errorf("no payload: %v", o)
	}
	st := r.src.Stats()
	// AllocsPerRun runs its function once more to warm up.
	if st.Received != 1005 || st.Malformed[parsers.Truncated] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func BenchmarkNFLOGEvent(b *testing.B) {
	r, a := nflogBenchRun(), nflogBenchAttr()
	b.ReportAllocs()
	for b.Loop() {
		if _, o := r.event(&a); o != parsers.Parsed {
			b.Fatal(o)
		}
	}
}

// nflogTestPacket builds an IPv4 TCP packet with the fields DecodePacket
// reads; checksums are left at zero.
func nflogTestPacket(src, dst string, sport, dport uint16, flags parsers.TCPFlags) []byte {
	p := make([]byte, 40)
	p[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64 // TTL
	p[9] = parsers.ProtoTCP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = 5 << 4 // data offset: 20 bytes
	tcp[13] = byte(flags)
	return p
}
