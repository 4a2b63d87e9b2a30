//go:build linux

package parsers

import (
	"testing"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
)

// nflogBenchRun returns a run whose interface table knows index 7, without
// opening any socket.
func nflogBenchRun() *nflogRun {
	return &nflogRun{
		src:      NewNFLOGSource(NFLOGConfig{}),
		prefixes: newNFLOGIntern(nflogMaxPrefixes),
		ifnames:  &nflogIfNames{names: map[uint32]string{7: "eth0"}},
	}
}

// nflogBenchAttr is what go-nflog hands the hook for a logged TCP SYN.
func nflogBenchAttr() nflog.Attribute {
	payload := pktTestV4("198.51.100.2", "198.51.100.1", ProtoTCP, 0, 0, pktTestTCP(40000, 22, SYN))
	prefix := "SENTRY: "
	ts := time.Now()
	dev := uint32(7)
	return nflog.Attribute{Payload: &payload, Prefix: &prefix, Timestamp: &ts, InDev: &dev}
}

func TestNFLOGEvent(t *testing.T) {
	r, a := nflogBenchRun(), nflogBenchAttr()
	ev, o := r.event(&a)
	if o != Parsed || ev.Prefix != "SENTRY" || ev.InIface != "eth0" || !ev.Time.Equal(*a.Timestamp) || ev.DstPort != 22 || ev.Flags != SYN {
		t.Fatalf("event = %+v, %v", ev, o)
	}
	if n := testing.AllocsPerRun(1000, func() { r.event(&a) }); n != 0 {
		t.Errorf("%v allocs per packet, want 0", n)
	}
	// No timestamp: receive time.
	a.Timestamp = nil
	if ev, _ := r.event(&a); time.Since(ev.Time) > time.Second {
		t.Errorf("fallback time %v", ev.Time)
	}
	// Unknown interface without a table connection: "" and no reload.
	*a.InDev = 8
	if ev, _ := r.event(&a); ev.InIface != "" {
		t.Errorf("unknown interface named %q", ev.InIface)
	}
	a.Payload = nil
	if _, o := r.event(&a); o != Truncated {
		t.Errorf("no payload: %v", o)
	}
	st := r.src.Stats()
	// AllocsPerRun runs its function once more to warm up.
	if st.Received != 1005 || st.Malformed[Truncated] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func BenchmarkNFLOGEvent(b *testing.B) {
	r, a := nflogBenchRun(), nflogBenchAttr()
	b.ReportAllocs()
	for b.Loop() {
		if _, o := r.event(&a); o != Parsed {
			b.Fatal(o)
		}
	}
}
