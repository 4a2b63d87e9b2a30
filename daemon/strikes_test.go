package daemon

import (
	"strings"
	"testing"
	"time"
)

// A kernel strike (first strike's log prefix) the rules do not confirm is
// logged; one they confirm, or of a key already banned, is not.
func TestUnconfirmedStrikesAreLogged(t *testing.T) {
	r := newRig(t, tripwireRules, "")
	_, stop := r.start(false)
	now := time.Now()
	strike := func(src string, port int, flags string) string {
		return strings.Replace(line(now, src, port, flags), "kernel: SENTRY ", "kernel: SENTRY-FS ", 1)
	}
	// A FIN: the fin tripwire bans it, which confirms the strike.
	r.appendLines(strike("203.0.113.7", 23, "FIN"))
	r.waitLog("msg=decision", "source=203.0.113.7/32")
	// A single SYN: under the syn rule's 3 ports, not confirmed.
	r.appendLines(strike("203.0.113.8", 80, "SYN"))
	r.waitLog(`msg="kernel strike not confirmed by the rules"`, "source=203.0.113.8/32", "port=80")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := r.logs.String(); strings.Contains(s, "not confirmed by the rules\" source=203.0.113.7") {
		t.Errorf("a confirmed strike was logged as unconfirmed:\n%s", s)
	}
}

// Decisions the valve held back make one summary line per interval, not a
// line each.
func TestValveSummary(t *testing.T) {
	r := newRig(t, tripwireRules, "bans: {max_new_per_minute: 1, single_packet: {max_new_per_minute: 0}, over_valve: {ban: 30s, max_per_minute: 5}}\n")
	d, stop := r.start(false)
	_ = d
	now := time.Now()
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, line(now, "198.51.100."+string(rune('1'+i%9))+string(rune('0'+i/9)), 23, "FIN"))
	}
	r.appendLines(lines...)
	r.waitLog(`msg="valve: sources over max_new_per_minute were dropped briefly or only reported"`, "throttled/fin=5", "rate-limited/fin=14")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(r.logs.String(), "level=WARN msg=decision"); n != 0 {
		t.Errorf("%d decision lines of held-back sources, want only the summary", n)
	}
	if n := len(r.table.bannedKeys()); n != 6 {
		t.Errorf("%d keys in the table, want 1 ban and 5 short drops", n)
	}
}
