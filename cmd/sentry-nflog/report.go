package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/replay"
	"github.com/sentry-nflog/sentry-nflog/report"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// replayReport is replay --report: the collector replay feeds and the file
// it writes at the end.
type replayReport struct {
	*report.Collector
	f    *os.File
	done bool
}

// openReplayReport creates the report file first, so that a path that
// cannot be written fails before a long replay rather than after it. The
// collector keys sources like the engine, so that charts and decisions
// agree.
func openReplayReport(path string, engine *rules.Engine) (*replayReport, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--report: %w", err)
	}
	return &replayReport{Collector: report.New(report.Options{Key: engine.Key}), f: f}, nil
}

// finish hands the collector the counts only replay has and writes the
// page.
func (r *replayReport) finish(cfg *config.Config, engine *rules.Engine, st replay.Stats, inputs []string) error {
	es := engine.Stats()
	t := report.Totals{Inputs: inputs, Config: cfg.File, Lines: st.Lines, Outcomes: st.Outcomes}
	for i, rule := range engine.Rules() {
		t.Rules = append(t.Rules, report.RuleEvents{Name: rule.Name, Events: es.RuleEvents[i]})
	}
	r.Totals(t)
	w := bufio.NewWriter(r.f)
	err := r.Write(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--report: %s: %w", r.f.Name(), err)
	}
	r.done = true
	return nil
}

// discard removes the file of a replay that did not finish.
func (r *replayReport) discard() {
	if !r.done {
		r.f.Close()
		os.Remove(r.f.Name())
	}
}
