package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

func (l *loader) metrics(raw *rawConfig, cfg *Config) {
	cfg.Metrics.Interval = DefaultMetricsInterval
	if t := raw.Metrics.Textfile; t.Set && t.V != "" {
		if !strings.HasPrefix(t.V, "/") || !strings.HasSuffix(t.V, ".prom") {
			l.add(t.Line, t.Col, "metrics.textfile", "%q: want an absolute path ending in .prom (node_exporter's textfile collector reads only those)", t.V)
		}
		cfg.Metrics.Textfile = t.V
	}
	if i := raw.Metrics.Interval; i.Set {
		if d, ok := l.duration("metrics.interval", i.V); ok {
			if d < time.Second || d > time.Hour {
				l.addAt("metrics.interval", "%s out of range 1s-1h", i.V)
			}
			cfg.Metrics.Interval = d
		}
	}
}

func (l *loader) log(raw *rawConfig, cfg *Config) {
	cfg.Log = Log{Format: "text", Level: slog.LevelInfo}
	if f := raw.Log.Format; f.Set {
		if f.V != "text" && f.V != "json" {
			l.add(f.Line, f.Col, "log.format", "%q: want text or json", f.V)
		}
		cfg.Log.Format = f.V
	}
	if lv := raw.Log.Level; lv.Set {
		if err := cfg.Log.Level.UnmarshalText([]byte(lv.V)); err != nil {
			l.add(lv.Line, lv.Col, "log.level", "%q: want debug, info, warn or error", lv.V)
		}
	}
}

func (l *loader) exec(raw *rawConfig, cfg *Config) {
	r := raw.Actions.Exec
	if r == nil {
		return
	}
	e := &Exec{Timeout: actions.DefaultExecTimeout, On: []rules.Action{rules.Ban}}
	for _, c := range r.Command.Items {
		e.Command = append(e.Command, c.V)
	}
	if len(e.Command) == 0 || !strings.HasPrefix(e.Command[0], "/") {
		l.addAt("actions.exec.command", "want a list whose first item is the absolute path of the program, such as [/usr/local/bin/alert, \"{source}\", \"{rule}\"]")
	}
	if r.Timeout.Set {
		if d, ok := l.duration("actions.exec.timeout", r.Timeout.V); ok {
			if d <= 0 || d > 10*time.Minute {
				l.addAt("actions.exec.timeout", "%s out of range (0, 10m]", r.Timeout.V)
			}
			e.Timeout = d
		}
	}
	if r.On.Set {
		e.On = nil
		for i, o := range r.On.Items {
			var a rules.Action
			switch o.V {
			case "ban":
				a = rules.Ban
			case "ignored":
				a = rules.Ignored
			case "rate-limited":
				a = rules.RateLimited
			case "throttled":
				a = rules.Throttled
			default:
				l.add(o.Line, o.Col, fmt.Sprintf("actions.exec.on[%d]", i), "%q: want ban, ignored, rate-limited or throttled", o.V)
				continue
			}
			e.On = append(e.On, a)
		}
	}
	cfg.Exec = e
}
