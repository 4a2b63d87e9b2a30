package hostinfo

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures are little-endian kernel output (see testdata/proc/README).
func requireLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures hold little-endian /proc/net output; this machine is big-endian")
	}
}

func l(addr string, port uint16) Listener {
	return Listener{Addr: netip.MustParseAddr(addr), Port: port}
}

func TestParseProcNet(t *testing.T) {
	requireLittleEndian(t)
	for _, tc := range []struct {
		file string
		udp  bool
		want []Listener
	}{
		{"tcp", false, []Listener{
			l("127.0.0.1", 631), l("192.0.2.10", 80), l("0.0.0.0", 22), l("127.0.0.53", 53), l("0.0.0.0", 2024),
		}},
		{"tcp6", false, []Listener{
			l("2001:db8::10", 443), l("192.0.2.10", 3306), l("127.0.0.1", 5432), l("::1", 631), l("::", 22), l("::", 8080),
		}},
		{"udp", true, []Listener{
			l("127.0.0.53", 53), l("0.0.0.0", 68), l("0.0.0.0", 123), l("127.0.0.1", 161),
		}},
		{"udp6", true, []Listener{
			l("::", 123), l("::1", 161), l("2001:db8::10", 514), l("127.0.0.1", 4789), l("::", 5353), l("192.0.2.10", 500),
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseProcNet(read(t, "proc/net/"+tc.file), tc.udp)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// A UDP file read as TCP finds no LISTEN socket, and the reverse finds only
// sockets in state 07, which TCP has only for closed sockets.
func TestParseProcNetStateIsPerProtocol(t *testing.T) {
	requireLittleEndian(t)
	got, err := ParseProcNet(read(t, "proc/net/udp"), false)
	if err != nil || len(got) != 0 {
		t.Errorf("udp file as tcp: %v, %v; want none", got, err)
	}
}

func TestParseProcNetErrors(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue\n"
	for _, tc := range []struct {
		name, data, wantErr string
	}{
		{"no colon after sl", header + "   0 00000000:0016 00000000:0000 0A\n", "line 2"},
		{"truncated", header + "   0: 00000000:0016\n", "line 2"},
		{"bad state", header + "   0: 00000000:0016 00000000:0000 XY\n", "state"},
		{"bad port", header + "   0: 00000000:16 00000000:0000 0A\n", "port"},
		{"no port", header + "   0: 00000000 00000000:0000 0A\n", "no port"},
		{"bad addr len", header + "   0: 000000:0016 00000000:0000 0A\n", "neither 8 nor 32"},
		{"bad hex", header + "   0: 0000000G:0016 00000000:0000 0A\n", "not hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcNet([]byte(tc.data), false)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// A line in another state is skipped before its address is read.
	if got, err := ParseProcNet([]byte(header+"   0: junk 00000000:0000 01\n\n"), false); err != nil || len(got) != 0 {
		t.Errorf("established line with junk address: %v, %v; want skipped", got, err)
	}
	if got, err := ParseProcNet(nil, true); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
}

func TestListening(t *testing.T) {
	requireLittleEndian(t)
	tcp, udp, err := Paths{Proc: "testdata/proc"}.Listening()
	if err != nil {
		t.Fatal(err)
	}
	// Not 631, 53, 5432 (loopback only), 25, 21, 110 (not listening).
	if want := []uint16{22, 80, 443, 2024, 3306, 8080}; !slices.Equal(tcp, want) {
		t.Errorf("tcp = %v, want %v", tcp, want)
	}
	// Not 53, 161, 4789 (loopback only), 69 and 38061 (connected).
	if want := []uint16{68, 123, 500, 514, 5353}; !slices.Equal(udp, want) {
		t.Errorf("udp = %v, want %v", udp, want)
	}
}

func TestListeningWithoutIPv6(t *testing.T) {
	requireLittleEndian(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tcp", "udp"} {
		if err := os.WriteFile(filepath.Join(dir, "net", f), read(t, "proc/net/"+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tcp, udp, err := Paths{Proc: dir}.Listening()
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{22, 80, 2024}; !slices.Equal(tcp, want) {
		t.Errorf("tcp = %v, want %v", tcp, want)
	}
	if want := []uint16{68, 123}; !slices.Equal(udp, want) {
		t.Errorf("udp = %v, want %v", udp, want)
	}

	// Without the IPv4 files it is an error.
	if err := os.Remove(filepath.Join(dir, "net", "udp")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Paths{Proc: dir}).Listening(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("without net/udp: err = %v, want ErrNotExist", err)
	}
}

// The real files of this machine parse.
func TestListeningHost(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	if _, _, err := DefaultPaths().Listening(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkParseProcNet(b *testing.B) {
	data, err := os.ReadFile("testdata/proc/net/tcp6")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProcNet(data, false); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseProcNet(f *testing.F) {
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile("testdata/proc/net/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasPrefix(name, "udp"))
	}
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		ls, err := ParseProcNet(data, udp)
		if err != nil {
			return
		}
		for _, l := range ls {
			if !l.Addr.IsValid() || l.Addr.Is4In6() {
				t.Fatalf("listener %v: invalid or mapped address", l)
			}
		}
	})
}
