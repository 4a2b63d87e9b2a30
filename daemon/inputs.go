package daemon

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

// input is one source with what the daemon keeps around it.
type input struct {
	src    sources.Source
	counts func() metrics.Input
	file   *sources.FileSource // for saving positions; nil for other sources
	// failures counts the times the input failed and was restarted.
	failures atomic.Uint64
	// settled is closed once the input is ready or has failed once: the
	// daemon reports running when every input has settled.
	settled    chan struct{}
	settleOnce sync.Once
}

func newInput(src sources.Source, counts func() metrics.Input) *input {
	return &input{src: src, counts: counts, settled: make(chan struct{})}
}

// stats returns the input's counters, its restarts included.
func (in *input) stats() metrics.Input {
	s := in.counts()
	s.Name = in.src.Name()
	s.Failures += in.failures.Load()
	return s
}

// fatal reports whether err, from an input that never got ready, means
// the daemon cannot run as configured: another process reads its NFLOG
// group. Anything else (an unreadable /dev/kmsg, a file gone) is logged,
// counted and retried while the other inputs go on.
func fatal(err error) bool { return errors.Is(err, sources.ErrNFLOGGroupBusy) }

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
		ins = append(ins, newInput(src, func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Events: s.Events, Overruns: s.Overruns, Malformed: outcomeCounts(&s.Malformed), Unspecified: s.Malformed[parsers.UnspecifiedSource]}
		}))
	}
	for _, path := range cfg.Inputs.Files {
		var start *sources.FilePosition
		for _, p := range st.Files {
			if p.Path == path {
				start = &sources.FilePosition{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset,
					Sum: p.Sum, SumLen: p.SumLen, Size: p.Size, Lines: p.Lines, Events: p.Events}
			}
		}
		src := sources.NewFileSource(sources.FileConfig{Path: path, Start: start, Logger: log})
		in := newInput(src, func() metrics.Input {
			s := src.Stats()
			m := metrics.Input{Events: s.Events, Malformed: outcomeCounts(&s.Outcomes), Failures: s.Unusable, SkippedBytes: &s.SkippedBytes,
				Unspecified: s.Outcomes[parsers.UnspecifiedSource]}
			if s.TooLong > 0 {
				// Counted by the source, apart from the parser's reasons.
				m.Malformed["too-long"] = s.TooLong
			}
			return m
		})
		in.file = src
		ins = append(ins, in)
	}
	if cfg.Inputs.Kmsg {
		src := sources.NewKmsgSource(sources.KmsgConfig{Logger: log})
		ins = append(ins, newInput(src, func() metrics.Input {
			s := src.Stats()
			return metrics.Input{Events: s.Events, Overruns: s.Lost, Malformed: outcomeCounts(&s.Outcomes), Unspecified: s.Outcomes[parsers.UnspecifiedSource]}
		}))
	}
	return ins
}

// settle marks the input ready or failed; safe to call more than once,
// from any goroutine.
func (in *input) settle() { in.settleOnce.Do(func() { close(in.settled) }) }
