package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sentry-nflog/sentry-nflog/fleet"
)

// What the commands make of a loaded config besides the daemon's settings:
// its one-line summary, the logger and the fleet connection it asks for.

// Words returns the words of the ignore list in use, as written
// ("self, gateways, resolvers"), or "" when it uses none. They are the
// live host's, resolved by the daemon; a replay cannot resolve them.
func (ig Ignore) Words() string {
	var words []string
	for _, w := range []struct {
		on   bool
		name string
	}{{ig.Self, "self"}, {ig.Gateways, "gateways"}, {ig.Resolvers, "resolvers"}} {
		if w.on {
			words = append(words, w.name)
		}
	}
	return strings.Join(words, ", ")
}

// Summary says in one line what c holds, the way `check-config` reports a
// valid file: the counts of rules, inputs and ignored prefixes, the
// ignore words and the fleet.
func (c *Config) Summary() string {
	words := c.Ignore.Words()
	if words != "" {
		words = " + " + words
	}
	fleet := ""
	if f := c.Fleet; f != nil {
		fleet = fmt.Sprintf(", fleet as %s (%d servers, stream %s, publish %t, apply %t)", f.Name, len(f.Servers), f.Bucket, f.Publish, f.Apply)
	}
	return fmt.Sprintf("%d rules, %d NFLOG groups, %d files, ignore %d prefixes%s%s",
		len(c.Engine.Rules), len(c.Inputs.NFLOG), len(c.Inputs.Files), len(c.Ignore.Prefixes), words, fleet)
}

// Logger returns the logger l asks for, writing to w.
func (l Log) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Link returns what fleet.Dial needs to connect this host to the fleet,
// logging the link's state changes to log (nil: nowhere).
func (f *Fleet) Link(log *slog.Logger) fleet.Config {
	return fleet.Config{Servers: f.Servers, Name: f.Name, Creds: f.Creds, TLS: f.TLS, Bucket: f.Bucket, Log: log}
}
