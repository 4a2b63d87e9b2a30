package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// runCLI runs the command in-process and returns its exit status and
// streams.
func runCLI(t testing.TB, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	code := realMain(context.Background(), &env{stdin: stdin, stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/golden/name at the repository's root.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("..", "..", "testdata", "golden", name), []byte(got))
}

// dropTiming removes the summary's elapsed line, the one part that varies.
func dropTiming(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(l, "  elapsed ") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func TestReplayGolden(t *testing.T) {
	logs := "../../testdata/logs/"
	tests := []struct {
		golden string
		args   []string
	}{
		{"replay-kern.txt", []string{"replay", "--year", "2026", logs + "kern.log"}},
		{"replay-kern.json", []string{"replay", "--json", "--year", "2026", logs + "kern.log"}},
		{"replay-ufw.json", []string{"replay", "--json", "--year", "2026", logs + "ufw.log"}},
		{"replay-firewalld.json", []string{"replay", "--json", "--year", "2026", logs + "firewalld.log"}},
		{"replay-rsyslog.json", []string{"replay", "--json", logs + "rsyslog-rfc3339.log"}},
		{"replay-journal.json", []string{"replay", "--json", "--year", "2026", logs + "journal-short-iso.log", logs + "journal-short-precise.log"}},
		{"replay-dmesg.json", []string{"replay", "--json", "--boot-time", "2026-11-24T10:00:00Z", logs + "dmesg.log", logs + "kmsg.txt"}},
		{"replay-rollover.json", []string{"replay", "--json", "--year", "2025", logs + "rollover.log"}},
		{"replay-broken.json", []string{"replay", "--json", "--year", "2026", logs + "broken.log"}},
		// Real lines of other firewalls and formats (testdata/logs/real/README.md).
		{"replay-real-relays.json", []string{"replay", "--json", "--tz", "UTC", "--year", "2026", logs + "real/relays.log"}},
		{"replay-real-suse-shorewall.json", []string{"replay", "--json", "--tz", "UTC", "--year", "2026", logs + "real/suse-shorewall.log"}},
		{"replay-real-proxmox.json", []string{"replay", "--json", logs + "real/proxmox.log"}},
		{"replay-real-journal.json", []string{"replay", "--json", logs + "real/journal.json", logs + "real/journal.json-seq"}},
		{"replay-real-locales.json", []string{"replay", "--json", "--tz", "+08:00", "--year", "2018", logs + "real/journal-zh_CN.log", logs + "real/journal-es.log"}},
		{"replay-real-misc.json", []string{"replay", "--json", "--tz", "UTC", "--year", "2021", "--boot-time", "2021-10-16T00:00:00Z",
			logs + "real/crowdsec-hub.log", logs + "real/busybox-udm.log", logs + "real/ulogd-logemu.log", logs + "real/dmesg-T.log", logs + "real/dmesg-firewalld.log"}},
		{"replay-real-cut.json", []string{"replay", "--json", "--tz", "UTC", "--year", "2026", logs + "real/cut.log"}},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, tc.golden, out)
			golden(t, strings.TrimSuffix(tc.golden, filepath.Ext(tc.golden))+".summary", dropTiming(errOut))
		})
	}
}

func TestReplayStdinAndGzip(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/logs/kern.log")
	if err != nil {
		t.Fatal(err)
	}
	code, want, errOut := runCLI(t, nil, "replay", "--json", "--year", "2026", "../../testdata/logs/kern.log")
	if code != 0 || want == "" {
		t.Fatalf("the file itself: exit %d, %d bytes of decisions, stderr %s", code, len(want), errOut)
	}
	if code, got, errOut := runCLI(t, bytes.NewReader(raw), "replay", "--json", "--year", "2026", "-"); code != 0 || got != want {
		t.Errorf("stdin: exit %d, stderr %s\ngot %s\nwant %s", code, errOut, got, want)
	}
	gz := filepath.Join(t.TempDir(), "kern.log.gz")
	writeGzip(t, gz, raw)
	if code, got, errOut := runCLI(t, nil, "replay", "--json", "--year", "2026", gz); code != 0 || got != want {
		t.Errorf("gzip: exit %d, stderr %s\ngot %s\nwant %s", code, errOut, got, want)
	}
}

// A record without a timestamp takes the file's modification time when no
// dated line comes before it, and --tz says where zone-less times are.
func TestReplayUndatedAndZone(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tripwire.yaml")
	writeFile(t, cfg, "rules:\n  - {name: any-tcp, proto: tcp, threshold: {hits: 1}, ban: 1h}\n")
	rec := "SENTRY IN=eth0 OUT= SRC=203.0.113.7 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=1 PROTO=TCP SPT=4444 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0 \n"
	undated := filepath.Join(dir, "undated.log")
	writeFile(t, undated, "gw kernel: "+rec)
	mtime := time.Date(2026, 11, 24, 15, 58, 19, 0, time.UTC)
	if err := os.Chtimes(undated, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "replay", "--json", "--config", cfg, undated)
	if code != 0 || !strings.Contains(out, `"time":"2026-11-24T15:58:19Z"`) || !strings.Contains(errOut, "undated         1 ") {
		t.Errorf("undated: exit %d\n%s\n%s", code, out, errOut)
	}

	zoneless := filepath.Join(dir, "zoneless.log")
	writeFile(t, zoneless, "2026-11-24 17:58:19 gw kernel: "+rec)
	code, out, errOut = runCLI(t, nil, "replay", "--json", "--config", cfg, "--tz", "+02:00", zoneless)
	if code != 0 || !strings.Contains(out, `"time":"2026-11-24T15:58:19Z"`) {
		t.Errorf("--tz: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "replay", "--json", "--config", cfg, "--tz", "Europe/Berlin", zoneless)
	if code != 0 || !strings.Contains(out, `"time":"2026-11-24T16:58:19Z"`) {
		t.Errorf("--tz Europe/Berlin: exit %d\n%s", code, out)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCLIErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"replay"}, exitUsage, "no input files"},
		{[]string{"replay", "/nonexistent/kern.log"}, exitFailure, "no such file"},
		{[]string{"replay", "--config", "../../testdata/config/invalid/bad-duration.yaml", "x"}, exitUsage, `bad-duration.yaml:4:36: rules[0].threshold.within: invalid duration "6x"`},
		{[]string{"check-config", "../../testdata/config/invalid/bad-flags.yaml"}, exitUsage, "rules[0].flags[1]"},
		{[]string{"check-config", "/nonexistent.yaml"}, exitUsage, "no such file"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"replay", "--nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"replay", "--tz", "Mars/Olympus", "x"}, exitUsage, "--tz"},
		{[]string{"replay", "--tz", "+25:00", "x"}, exitUsage, "not an offset"},
		{[]string{"replay", "--tz", "+2", "x"}, exitUsage, "not an offset"},
		{[]string{"run", "--health-interval", "0s"}, exitUsage, "want 1s or more"},
		{[]string{"run", "--config", "../../testdata/config/invalid/nflog.yaml"}, exitUsage, "inputs.files[0]: must be an absolute path"},
		{[]string{"unblock", "not-an-address"}, exitUsage, `"not-an-address" is not an address or prefix`},
		{[]string{"firewall", "--config", "../../testdata/config/invalid/no-rules.yaml"}, exitUsage, "at least one rule is required"},
	} {
		code, _, errOut := runCLI(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.contains) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d containing %q", tc.args, code, errOut, tc.code, tc.contains)
		}
	}
	if code, out, _ := runCLI(t, nil, "check-config"); code != 0 || !strings.Contains(out, "OK: 7 rules") {
		t.Errorf("check-config of the embedded default: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "replay", "--help"); code != 0 || !strings.Contains(errOut, "Examples:") {
		t.Errorf("replay --help: %d %q", code, errOut)
	}
}

// genLog writes n kernel log lines like a busy internet-facing host's:
// mostly single probes from many sources, a few real scans, IPv6, UFW
// lines and noise. Deterministic for a seed.
func genLog(w io.Writer, n int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	bw := bufio.NewWriterSize(w, 1<<20)
	defer bw.Flush()
	t := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		t = t.Add(time.Duration(r.IntN(20000)) * time.Microsecond)
		ts := t.Format("Jan _2 15:04:05")
		switch k := r.IntN(100); {
		case k < 3:
			fmt.Fprintf(bw, "%s web1 sshd[%d]: Connection closed by 192.0.2.%d port %d [preauth]\n", ts, 1000+r.IntN(9000), r.IntN(256), 1024+r.IntN(60000))
		case k < 10:
			fmt.Fprintf(bw, "%s web1 kernel: [%d.%06d] SENTRY IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:%04x:0001:0000:0000:0000:%04x DST=2001:0db8:0000:0001:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=54 FLOWLBL=0 PROTO=TCP SPT=%d DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n",
				ts, i/50, i%1000000, r.IntN(4096), r.IntN(65536), 1024+r.IntN(60000), 1+r.IntN(1024))
		case k < 15:
			fmt.Fprintf(bw, "%s web1 kernel: [%d.%06d] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.%d.%d DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=UDP SPT=%d DPT=%d LEN=20 \n",
				ts, i/50, i%1000000, r.IntN(256), 1+r.IntN(254), 1024+r.IntN(60000), 1+r.IntN(1024))
		default:
			// One line in 16 comes from a pool of 16 scanners, which
			// repeat and get banned (and banned again, for longer).
			a, b := 203, r.IntN(256)
			if r.IntN(16) == 0 {
				a, b = 198, 18
			}
			fmt.Fprintf(bw, "%s web1 kernel: [%d.%06d] SENTRY IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=%d.%d.%d.%d DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=%d PROTO=TCP SPT=%d DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0 \n",
				ts, i/50, i%1000000, a, b&255, b, 1+r.IntN(16), r.IntN(65536), 1024+r.IntN(60000), 1+r.IntN(1024))
		}
	}
}

// The rules package's engine benchmark steps the events of genLog's log,
// drawn by a copy of genLog (rules.generatedEvents), and pins what the
// engine makes of the first 400,000 lines' events. A replay of genLog's own
// lines must make the same, or the copy has drifted from genLog.
func TestGeneratedLogMatchesTheEngineBenchmark(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		genLog(pw, 400000, 42)
		pw.Close()
	}()
	code, _, errOut := runCLI(t, pr, "replay", "--year", "2026", "-")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The numbers of rules.TestGeneratedEventsMatchTheReplay.
	for _, want := range []string{"events          388095 (", "while banned 305178)", "decisions       ban 1133,", "expired 2701)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("replay of genLog's 400,000 lines: no %q in the summary:\n%s", want, errOut)
		}
	}
}

// BenchmarkReplay is `sentry-nflog replay --json` over the 1M-line log
// genLog writes (231 MiB, into the benchmark's temporary directory, once: the
// loop is b.Loop), end to end: config, reading, parsing, the engine, the
// report and the summary. scripts/replay-vs-grep.sh times the binary on the
// same log against grep.
func BenchmarkReplay(b *testing.B) {
	const lines = 1000000
	path := filepath.Join(b.TempDir(), "kern.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	genLog(f, lines, 42)
	f.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if code, _, errOut := runCLI(b, nil, "replay", "--json", "--year", "2026", path); code != 0 {
			b.Fatal(errOut)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func writeGzip(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// A replay of standard input writes each decision as it is made: the
// input may be a live stream (journalctl -kf | sentry-nflog replay -).
func TestReplayStdinDecisionsAreNotHeldBack(t *testing.T) {
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- realMain(context.Background(), &env{stdin: pr, stdout: outW, stderr: io.Discard}, []string{"replay", "-"})
		outW.Close()
	}()
	line := "2026-11-30T10:00:00.000000+00:00 gw kernel: SENTRY IN=eth0 OUT= SRC=203.0.113.9 DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=23 WINDOW=1 RES=0x00 FIN URGP=0\n"
	if _, err := io.WriteString(pw, line); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := outR.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, "ban 203.0.113.9/32") {
			t.Errorf("first output %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no decision written while standard input is still open")
	}
	pw.Close()
	go io.Copy(io.Discard, outR)
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
}
