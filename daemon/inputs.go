package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// input is one event source with what the daemon needs around it. Every
// source keeps the same contract: Run until ctx ends, send events, never
// close the channel, return nil on cancellation.
type input struct {
	name   string
	run    func(ctx context.Context, out chan<- parsers.Event) error
	ready  <-chan struct{} // closed once no event can be missed; nil: at once
	counts func() metrics.Input
	file   *parsers.FileSource // for saving positions
	// failures counts the times the input failed and was restarted.
	failures atomic.Uint64
}

// stats returns the input's counters, its restarts included.
func (in *input) stats() metrics.Input {
	s := in.counts()
	s.Failures = in.failures.Load()
	return s
}

func outcomeCounts(o *[parsers.NumOutcomes]uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range o {
		if parsers.Outcome(i).Malformed() && n > 0 {
			m[parsers.Outcome(i).String()] = n
		}
	}
	return m
}

// buildInputs makes the sources cfg asks for. Followed files resume from
// the positions saved in st.
func buildInputs(cfg *config.Config, st *state.State, log *slog.Logger) []*input {
	var ins []*input
	for _, n := range cfg.Inputs.NFLOG {
		src := parsers.NewNFLOGSource(parsers.NFLOGConfig{
			Group: n.Group, CopyRange: n.CopyRange, QueueThreshold: n.QueueThreshold,
			FlushTimeout: n.FlushTimeout, ReadBuffer: n.ReadBuffer, FixedBatching: !n.AdaptiveBatching, Logger: log,
		})
		name := fmt.Sprintf("nflog:%d", n.Group)
		ins = append(ins, &input{name: name, run: src.Run, ready: src.Ready(), counts: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: name, Events: s.Events, Overruns: s.Overruns, Malformed: outcomeCounts(&s.Malformed)}
		}})
	}
	for _, path := range cfg.Inputs.Files {
		var start *parsers.FilePosition
		for _, p := range st.Files {
			if p.Path == path {
				start = &parsers.FilePosition{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset}
			}
		}
		src := parsers.NewFileSource(parsers.FileConfig{Path: path, Start: start, Logger: log})
		name := "file:" + path
		ins = append(ins, &input{name: name, run: src.Run, ready: src.Ready(), file: src, counts: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: name, Events: s.Events, Malformed: outcomeCounts(&s.Outcomes)}
		}})
	}
	if cfg.Inputs.Kmsg {
		src := parsers.NewKmsgSource(parsers.KmsgConfig{Logger: log})
		ins = append(ins, &input{name: "kmsg", run: src.Run, counts: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: "kmsg", Events: s.Events, Overruns: s.Lost, Malformed: outcomeCounts(&s.Outcomes)}
		}})
	}
	return ins
}
