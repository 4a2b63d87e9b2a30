package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

// input is one event source with what the daemon needs around it. Every
// source keeps the same contract: Run until ctx ends, send events, never
// close the channel, return nil on cancellation.
type input struct {
	name  string
	run   func(ctx context.Context, out chan<- parsers.Event) error
	ready <-chan struct{} // closed once no event can be missed; nil: at once
	stats func() metrics.Input
	file  *sources.FileSource // for saving positions
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
		src := sources.NewNFLOGSource(sources.NFLOGConfig{
			Group: n.Group, CopyRange: n.CopyRange, QueueThreshold: n.QueueThreshold,
			FlushTimeout: n.FlushTimeout, ReadBuffer: n.ReadBuffer, FixedBatching: !n.AdaptiveBatching, Logger: log,
		})
		name := fmt.Sprintf("nflog:%d", n.Group)
		ins = append(ins, &input{name: name, run: src.Run, ready: src.Ready(), stats: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: name, Events: s.Events, Overruns: s.Overruns, Malformed: outcomeCounts(&s.Malformed)}
		}})
	}
	for _, path := range cfg.Inputs.Files {
		var start *sources.FilePosition
		for _, p := range st.Files {
			if p.Path == path {
				start = &sources.FilePosition{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset}
			}
		}
		src := sources.NewFileSource(sources.FileConfig{Path: path, Start: start, Logger: log})
		name := "file:" + path
		ins = append(ins, &input{name: name, run: src.Run, ready: src.Ready(), file: src, stats: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: name, Events: s.Events, Malformed: outcomeCounts(&s.Outcomes)}
		}})
	}
	if cfg.Inputs.Kmsg {
		src := sources.NewKmsgSource(sources.KmsgConfig{Logger: log})
		ins = append(ins, &input{name: "kmsg", run: src.Run, stats: func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Name: "kmsg", Events: s.Events, Overruns: s.Lost, Malformed: outcomeCounts(&s.Outcomes)}
		}})
	}
	return ins
}
