//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// The operators' commands end to end: block, history and status, with the
// real binary in network namespaces.

// runIn runs the binary in the victim and returns its exit status and
// streams.
func (l *lab) runIn(args ...string) (int, string, string) {
	l.t.Helper()
	var out, errb bytes.Buffer
	cmd := l.pair.Victim.Command(l.t.Context(), append([]string{bin}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		l.t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// manualBan is a ban as list --json shows it, with what tells a manual
// ban made by block.
type manualBan struct {
	Source      string `json:"source"`
	LeftSeconds int64  `json:"left_seconds"`
	BanSeconds  int64  `json:"ban_seconds"`
	Origin      string `json:"origin"`
	By          string `json:"by"`
	Reason      string `json:"reason"`
}

func (l *lab) listBans() map[string]manualBan {
	l.t.Helper()
	_, out, _ := l.runIn("list", "--json", "--config", l.cfg)
	var ls struct {
		Bans []manualBan `json:"bans"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		l.t.Fatalf("list --json: %v: %s", err, out)
	}
	m := map[string]manualBan{}
	for _, b := range ls.Bans {
		m[b.Source] = b
	}
	return m
}

// TestBlockChecks: block refuses the victim's gateway, its own addresses
// and its resolver with a clear error, --force or not, bans nothing when
// one address is refused, refuses a prefix wider than the ban keys unless
// --force, and a manual ban drops traffic and is listed as manual with its
// reason, without the daemon running.
func TestBlockChecks(t *testing.T) {
	l := newLab(t, "1h")
	p := l.pair
	resolver := netip.MustParseAddr("192.0.2.53")
	withGatewayAndResolver(t, l.pair, resolver)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{p.AttackerIP4.String()}, "is " + p.AttackerIP4.String() + ", this host's gateway (ignore: gateways): never banned"},
		{[]string{"--force", p.AttackerIP4.String()}, "this host's gateway"},
		{[]string{p.VictimIP4.String()}, "is " + p.VictimIP4.String() + ", an address of this host (ignore: self)"},
		{[]string{p.VictimIP6.String()}, "an address of this host (ignore: self)"},
		{[]string{"--force", "198.51.100.0/24"}, "covers 198.51.100.1, an address of this host"},
		{[]string{resolver.String()}, "this host's DNS resolver (ignore: resolvers)"},
		{[]string{"203.0.113.9", p.AttackerIP4.String()}, "1 of 2 refused: nothing banned"},
		{[]string{"203.0.113.0/28"}, "a /28 is wider than the /32 bans here (bans.ipv4_prefix); --force bans it all"},
	} {
		code, out, stderr := l.runIn(append([]string{"block", "--config", l.cfg}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("block %v: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(l.dir, "state", "blocks.jsonl")); err == nil {
		t.Error("a refused block was recorded")
	}

	// The daemon has never run here: the table is made for the check.
	d := l.startDaemon()
	d.stop()
	code, out, stderr := l.runIn("block", "--config", l.cfg, "--force", "--reason", "hosting range", "203.0.113.0/28")
	if code != 0 || !strings.Contains(out, "203.0.113.0/28: blocked 203.0.113.0/28 (as 16 bans of /32) for 1d") {
		t.Fatalf("block --force of a /28: exit %d\n%s%s", code, out, stderr)
	}
	src := netip.MustParseAddr("198.51.100.77")
	p.AddAttackerAddrs(t, src)
	if st := l.connect(src, p.VictimIP4); st != scanner.Open {
		t.Fatalf("service before the block: %v", st)
	}
	code, out, stderr = l.runIn("block", "--config", l.cfg, "--for", "2h", "--reason", "ssh brute force", src.String())
	if code != 0 || !strings.Contains(out, src.String()+": blocked "+src.String()+"/32 for 2h") {
		t.Fatalf("block: exit %d\n%s%s", code, out, stderr)
	}
	if st := l.connect(src, p.VictimIP4); st == scanner.Open {
		t.Error("service still reachable from a blocked address")
	}
	bans := l.listBans()
	if b := bans[src.String()+"/32"]; b.Origin != "manual" || b.By != "block" || b.Reason != "ssh brute force" || b.BanSeconds != 7200 {
		t.Errorf("listed as %+v", b)
	}
	if b := bans["203.0.113.15/32"]; b.Origin != "manual" || b.Reason != "hosting range" || len(bans) != 17 {
		t.Errorf("the forced /28: %+v, %d bans", b, len(bans))
	}
	if text := p.Victim.Run(t, bin, "list", "--config", l.cfg); !strings.Contains(text, "manual (block: ssh brute force)") {
		t.Errorf("list:\n%s", text)
	}
	// unblock of one address of the /28 lifts the whole manual ban.
	out = p.Victim.Run(t, bin, "unblock", "--config", l.cfg, "203.0.113.5")
	if !strings.Contains(out, "manual ban 203.0.113.0/28 lifted") || len(l.listBans()) != 1 {
		t.Errorf("unblock inside the /28: %s; left %v", out, l.listBans())
	}
}

// TestManualBanSurvivesRestartAndReboot: a manual ban made while the
// daemon runs is noted by it, stays when it stops, and is put back with
// its time left by the next start after a reboot emptied the kernel (the
// table deleted while the daemon is down), as is one made while there was
// no table at all; unblock lifts it for good.
func TestManualBanSurvivesRestartAndReboot(t *testing.T) {
	l := newLab(t, "1h")
	p := l.pair
	src := netip.MustParseAddr("203.0.113.44")
	late := netip.MustParseAddr("203.0.113.45")
	p.AddAttackerAddrs(t, src, late)
	d := l.startDaemon()
	p.Victim.Run(t, bin, "block", "--config", l.cfg, "--for", "3h", "--reason", "seen in the web log", src.String())
	d.waitLog(t, `msg="manual ban"`, "source="+src.String()+"/32", `reason="seen in the web log"`)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if b, ok := l.listBans()[src.String()+"/32"]; !ok || b.By != "block" {
		t.Fatalf("manual ban gone when the daemon stopped: %v", l.listBans())
	}
	d = l.startDaemon()
	d.waitLog(t, `msg="bans in the kernel"`, "when=start", "kept=1", "restored=0")
	d.stop()

	// The reboot: the kernel forgets the table.
	p.Victim.Run(t, "nft", "delete", "table", "inet", "sentry")
	code, _, stderr := l.runIn("block", "--config", l.cfg, "--reason", "before the daemon", late.String())
	if code != 0 || !strings.Contains(stderr, "does not exist (the daemon has not run since boot): recorded") {
		t.Fatalf("block with no table: exit %d: %s", code, stderr)
	}
	d = l.startDaemon()
	d.waitLog(t, `msg="bans in the kernel"`, "when=start", "kept=0", "restored=2")
	bans := l.listBans()
	if b := bans[src.String()+"/32"]; b.By != "block" || b.LeftSeconds < 3*3600-120 || b.LeftSeconds > 3*3600 {
		t.Errorf("after the reboot: %+v, want the manual ban with about 3h left", b)
	}
	if b := bans[late.String()+"/32"]; b.By != "block" || b.Reason != "before the daemon" {
		t.Errorf("the ban made with no table: %+v", b)
	}
	if st := l.connect(src, p.VictimIP4); st == scanner.Open {
		t.Error("reachable after the reboot")
	}
	if strings.Contains(d.log(), "msg=decision") {
		t.Errorf("a manual ban became a decision:\n%s", d.log())
	}

	out := p.Victim.Run(t, bin, "unblock", "--config", l.cfg, src.String())
	if !strings.Contains(out, "manual ban "+src.String()+"/32 lifted") {
		t.Fatalf("unblock: %s", out)
	}
	// A flush of the set, noticed within 10 s: the other is put back, the
	// lifted one is not.
	p.Victim.Run(t, "nft", "flush", "set", "inet", "sentry", "blocked4")
	deadline := time.Now().Add(15 * time.Second)
	for !l.list().has(late.String() + "/32") {
		if time.Now().After(deadline) {
			t.Fatalf("the manual ban not put back 15 s after a flush:\n%s", d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l.list().has(src.String() + "/32") {
		t.Error("an unblocked manual ban came back")
	}
	if st := l.connect(src, p.VictimIP4); st != scanner.Open {
		t.Errorf("service after unblock: %v", st)
	}
}

// historyLines are firewall lines with fixed times, as a syslog daemon
// writes them to a followed file: two TCP scans (one from an ignored
// address), a FIN probe, a UDP sweep and an IPv6 scan from rotating
// addresses, and probes from a source already banned.
func historyLines() string {
	t0 := time.Date(2026, 11, 24, 15, 58, 0, 0, time.UTC)
	var b strings.Builder
	at := func(s int) string {
		return t0.Add(time.Duration(s) * time.Second).Format("2006-01-02T15:04:05.000000Z07:00")
	}
	tcp := func(s int, src string, port int, flags string) {
		a := netip.MustParseAddr(src)
		dst, head := "192.0.2.10", "LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=1"
		if a.Is6() {
			src, dst, head = a.StringExpanded(), "2001:0db8:0051:0000:0000:0000:0000:0001", "LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0"
		}
		fmt.Fprintf(&b, "%s web1 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= SRC=%s DST=%s %s PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 %s URGP=0 \n", at(s), src, dst, head, port, flags)
	}
	udp := func(s int, src string, port int) {
		fmt.Fprintf(&b, "%s web1 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= SRC=%s DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=UDP SPT=40000 DPT=%d LEN=20 \n", at(s), src, port)
	}
	for i, port := range []int{22, 23, 80, 443, 8080} {
		tcp(i, "203.0.113.7", port, "SYN")
	}
	tcp(6, "203.0.113.66", 31337, "FIN")
	for i, port := range []int{53, 69, 123, 161, 500} {
		udp(10+i, "192.0.2.99", port)
	}
	for i, port := range []int{21, 22, 25, 80, 3306} {
		tcp(20+i, "127.0.0.5", port, "SYN")
	}
	for i, port := range []int{22, 23, 80, 443, 3389} {
		tcp(30+i, fmt.Sprintf("2001:db8:bad:1::%x", 0x10+i), port, "SYN")
	}
	for i, port := range []int{1, 2, 3, 4, 5, 6} { // banned already: no decision
		tcp(40+i, "203.0.113.7", port, "SYN")
	}
	return b.String()
}

// TestHistoryAfterAFollowedFile: a daemon fed known lines through a
// followed file decides; history lists exactly those decisions, in order,
// the same as replay makes of the same lines, and --json matches the
// golden file (times are the log's own).
func TestHistoryAfterAFollowedFile(t *testing.T) {
	l := newLab(t, "1h")
	logPath := filepath.Join(l.dir, "kern.log")
	os.WriteFile(logPath, nil, 0o640)
	l.rewriteConfig(configYAML(filepath.Join(l.dir, "state"), "1h") + fmt.Sprintf("inputs: {nflog: [], files: [%s]}\n", logPath))
	d := l.startDaemon()
	lines := historyLines()
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(lines)
	f.Close()
	d.waitLog(t, "msg=decision", "source=2001:db8:bad:1::/64")
	time.Sleep(300 * time.Millisecond) // the last lines, no decision expected
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	code, history, stderr := l.runIn("history", "--config", l.cfg, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("history: exit %d: %s", code, stderr)
	}
	goldenFile(t, "history.json", history)

	// The same decisions as replay makes of the same lines.
	replayed := filepath.Join(l.dir, "replayed.log")
	os.WriteFile(replayed, []byte(lines), 0o640)
	_, rep, _ := l.runIn("replay", "--json", "--config", l.cfg, replayed)
	type decision struct {
		Time    time.Time `json:"time"`
		Action  string    `json:"action"`
		Source  string    `json:"source"`
		Rule    string    `json:"rule"`
		Ban     int64     `json:"ban_seconds"`
		Ports   []uint16  `json:"ports"`
		Offence uint32    `json:"offence"`
	}
	decode := func(s string) []string {
		var out []string
		sc := bufio.NewScanner(strings.NewReader(s))
		for sc.Scan() {
			var d decision
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%v: %s", err, sc.Text())
			}
			out = append(out, fmt.Sprintf("%s %s %s %s %d %v %d", d.Time.UTC().Format(time.RFC3339Nano), d.Action, d.Source, d.Rule, d.Ban, d.Ports, d.Offence))
		}
		return out
	}
	got, want := decode(history), decode(rep)
	if len(got) != 5 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nreplay of the same lines:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The text form, filtered by source.
	_, text, _ := l.runIn("history", "--config", l.cfg, "--source", "2001:db8:bad:1::99")
	if n := strings.Count(text, "\n"); n != 2 || !strings.Contains(text, "2001:db8:bad:1::/64") || !strings.Contains(text, "ports=22,23,80,443,3389 (5 distinct)") {
		t.Errorf("history --source:\n%s", text)
	}
}

// goldenFile compares got with testdata/golden/name (-update rewrites it).
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("..", "testdata", "golden", name), []byte(got))
}

// TestStatus: status reads the running daemon's status file (inputs, a
// decision), says it runs and exits 0; after a clean stop, and after a
// kill -9, it says the daemon does not run and exits 1.
func TestStatus(t *testing.T) {
	l := newLab(t, "1h")
	d := l.startDaemon()
	l.scanAndBan(d)
	pid := d.cmd.Process.Pid
	deadline := time.Now().Add(8 * time.Second)
	var out string
	for {
		code, o, stderr := l.runIn("status", "--config", l.cfg)
		out = o
		if code == 0 && strings.Contains(out, "ban 1,") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: exit %d within 8 s:\n%s%s", code, out, stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, want := range []string{fmt.Sprintf("running, pid %d", pid), "nflog:7", "ready", "first strike: applied in the kernel", "fleet:        off"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	_, js, _ := l.runIn("status", "--config", l.cfg, "--json")
	var st struct {
		Running bool `json:"running"`
		Inputs  []struct {
			Name   string `json:"name"`
			Ready  bool   `json:"ready"`
			Events uint64 `json:"events"`
		} `json:"inputs"`
		Decisions map[string]uint64 `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if !st.Running || len(st.Inputs) != 1 || !st.Inputs[0].Ready || st.Inputs[0].Events < 5 || st.Decisions["ban"] != 1 {
		t.Errorf("status --json: %+v", st)
	}

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := l.runIn("status", "--config", l.cfg)
	if code != 1 || !strings.Contains(out, "NOT RUNNING: the daemon stopped at") {
		t.Errorf("after a stop: exit %d:\n%s", code, out)
	}

	d = l.startDaemon()
	waitStatusPID(t, l, d.cmd.Process.Pid)
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	code, out, _ = l.runIn("status", "--config", l.cfg)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("NOT RUNNING: pid %d is gone", d.cmd.Process.Pid)) {
		t.Errorf("after a kill -9: exit %d:\n%s", code, out)
	}
}

// waitStatusPID waits until the status file names pid.
func waitStatusPID(t *testing.T, l *lab, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, out, _ := l.runIn("status", "--config", l.cfg)
		if strings.Contains(out, fmt.Sprintf("pid %d", pid)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never named pid %d:\n%s", pid, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
