package state

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// benchOffences is the figure: 2M offences, 215 MB in format 1.
const benchOffences = 2_000_000

func benchState(n int) *State {
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	st := &State{Saved: now, Offences: make([]rules.Offence, n)}
	for i := range st.Offences {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%4 == 0 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}
		o := rules.Offence{Key: netip.PrefixFrom(a, a.BitLen()).Masked(), Count: uint32(1 + i%5), LastBan: now.Add(-time.Duration(i) * time.Second)}
		if i%10 == 0 {
			o.BannedUntil = now.Add(time.Hour)
		}
		st.Offences[i] = o
	}
	return st
}

// writeV1 writes st as format 1 did (one JSON document).
func writeV1(tb testing.TB, dir string, st *State) {
	tb.Helper()
	data, err := json.Marshal(struct {
		Version int `json:"version"`
		State
	}{1, *st})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o640); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLoadV1 loads a format-1 state.json of benchOffences offences and
// reports the file size and the heap in use after the load.
func BenchmarkLoadV1(b *testing.B) {
	dir := b.TempDir()
	writeV1(b, dir, benchState(benchOffences))
	benchLoad(b, dir, 0)
}

// BenchmarkLoadV1Bounded loads it keeping limits.max_offences' default.
func BenchmarkLoadV1Bounded(b *testing.B) {
	dir := b.TempDir()
	writeV1(b, dir, benchState(benchOffences))
	benchLoad(b, dir, benchMax)
}

// benchMax is config.DefaultMaxOffences (not imported: config imports
// nothing of the daemon's).
const benchMax = 262144

func benchLoad(b *testing.B, dir string, bound int) {
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var kept uint64
	for range b.N {
		st, err := LoadBounded(dir, bound, time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// What the loaded state holds on to, garbage collected.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		kept = ms.HeapAlloc
		runtime.KeepAlive(st)
		st = nil
		runtime.GC()
		runtime.ReadMemStats(&ms)
		kept -= ms.HeapAlloc
		b.StartTimer()
	}
	b.ReportMetric(float64(fi.Size())/1e6, "file-MB")
	b.ReportMetric(float64(kept)/1e6, "kept-MB")
}

// BenchmarkLoadV2 loads the same offences saved in format 2.
func BenchmarkLoadV2(b *testing.B) {
	dir := b.TempDir()
	if err := Save(dir, benchState(benchOffences)); err != nil {
		b.Fatal(err)
	}
	benchLoad(b, dir, 0)
}

// BenchmarkLoadV2Bounded loads them keeping limits.max_offences' default.
func BenchmarkLoadV2Bounded(b *testing.B) {
	dir := b.TempDir()
	if err := Save(dir, benchState(benchOffences)); err != nil {
		b.Fatal(err)
	}
	benchLoad(b, dir, benchMax)
}

// BenchmarkSave writes benchOffences offences in format 2.
func BenchmarkSave(b *testing.B) {
	dir := b.TempDir()
	st := benchState(benchOffences)
	b.ReportAllocs()
	for b.Loop() {
		if err := Save(dir, st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadV2AtBound loads a state at limits.max_offences' default:
// the largest a bounded daemon writes.
func BenchmarkLoadV2AtBound(b *testing.B) {
	dir := b.TempDir()
	if err := Save(dir, benchState(benchMax)); err != nil {
		b.Fatal(err)
	}
	benchLoad(b, dir, benchMax)
}
