package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// decisions records what a replay decided.
type decisions []rules.Decision

func (d *decisions) Act(dec *rules.Decision) error { *d = append(*d, *dec); return nil }

// A line over 1 MiB (no kernel log line is) is skipped and counted, and the
// lines around it are read as usual.
func TestReplaySkipsHugeLinesAndDecidesInOrder(t *testing.T) {
	engine, err := rules.NewEngine(rules.Config{
		Rules:             []rules.Rule{{Name: "trip", Hits: 1, Ban: time.Hour}},
		Bans:              rules.DefaultBanPolicy(),
		MaxTrackedSources: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	line := func(src string) string {
		return "2026-11-30T10:00:00Z host kernel: SENTRY IN=eth0 OUT= SRC=" + src + " DST=192.0.2.1 LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=23 WINDOW=1 RES=0x00 SYN URGP=0\n"
	}
	in := line("203.0.113.1") + strings.Repeat("x", 3<<20) + "\n" + "not a firewall line\n" + line("203.0.113.2")
	var got decisions
	r := New(Options{Engine: engine, Act: &got, Line: parsers.LineOptions{Location: time.UTC}})
	if err := r.File(context.Background(), "-", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Lines != 4 || st.TooLong != 1 || st.Outcomes[parsers.Parsed] != 2 || st.Outcomes[parsers.Skipped] != 1 {
		t.Errorf("stats: lines %d, too long %d, outcomes %v", st.Lines, st.TooLong, st.Outcomes)
	}
	if len(got) != 2 || got[0].Source.String() != "203.0.113.1" || got[1].Source.String() != "203.0.113.2" {
		t.Fatalf("decisions %+v", got)
	}
	var sum bytes.Buffer
	r.Summary(&sum, SummaryOptions{ConfigFile: "t.yaml", Top: 5, Elapsed: time.Second})
	for _, want := range []string{"lines read      4", "1 over 1 MiB", "decisions       ban 2", "203.0.113.1/32"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
}
