package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/fleet"
)

// fleetTimeout bounds how long `list --fleet` and `unblock --fleet` wait
// for a server.
const fleetTimeout = 10 * time.Second

// dialFleet connects a command to the fleet of cfg.
func dialFleet(e *env, cmd string, cfg *config.Config) (*fleet.Link, int) {
	f := cfg.Fleet
	if f == nil {
		fmt.Fprintf(e.stderr, "%s: --fleet: %s has no fleet section\n", cmd, cfg.File)
		return nil, exitUsage
	}
	link, err := fleet.Dial(fleet.Config{Servers: f.Servers, Name: f.Name, Creds: f.Creds, TLS: f.TLS, Bucket: f.Bucket,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", cmd, err)
		return nil, exitFailure
	}
	return link, -1
}

// listFleet prints the fleet's active bans and pardons, from the stream.
func listFleet(ctx context.Context, e *env, cfg *config.Config, asJSON bool) int {
	link, code := dialFleet(e, "list", cfg)
	if code >= 0 {
		return code
	}
	defer link.Close()
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	msgs, err := link.Active(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "list: %v\n", err)
		return exitFailure
	}
	now := time.Now()
	if asJSON {
		type ban struct {
			Kind        string `json:"kind"`
			Source      string `json:"source"`
			Origin      string `json:"origin"`
			Rule        string `json:"rule,omitempty"`
			LeftSeconds int64  `json:"left_seconds"`
			BanSeconds  int64  `json:"ban_seconds,omitempty"`
			Decided     string `json:"decided"`
		}
		out := struct {
			Stream string `json:"stream"`
			Bans   []ban  `json:"bans"`
		}{Stream: cfg.Fleet.Bucket, Bans: []ban{}}
		for _, m := range msgs {
			out.Bans = append(out.Bans, ban{m.Kind.String(), m.Key.String(), m.Origin, m.Rule, int64(m.Until.Sub(now) / time.Second),
				int64(m.Ban / time.Second), m.Decided.UTC().Format(time.RFC3339)})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%d active in the fleet's stream %s\n", len(msgs), cfg.Fleet.Bucket)
	if len(msgs) > 0 {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tTIME LEFT\tBAN\tORIGIN\tRULE")
		for _, m := range msgs {
			ban, rule := actions.FormatDuration(m.Ban), m.Rule
			if m.Kind == fleet.KindPardon {
				ban, rule = "-", "(pardon)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Key, actions.FormatDuration(m.Until.Sub(now).Round(time.Second)), ban, m.Origin, rule)
		}
		tw.Flush()
	}
	return exitOK
}

// pardonFleet publishes a pardon of each key, which every host applies. A
// pardon stays in the stream as long as the longest ban of the key it
// overrides (a minute at least), so a host starting later does not apply
// those.
func pardonFleet(ctx context.Context, e *env, cfg *config.Config, keys []netip.Prefix, at time.Time) int {
	link, code := dialFleet(e, "unblock", cfg)
	if code >= 0 {
		return code
	}
	defer link.Close()
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	msgs, err := link.Active(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "unblock: --fleet: %v\n", err)
		return exitFailure
	}
	for _, k := range keys {
		keep := time.Minute
		for _, m := range msgs {
			if m.Kind == fleet.KindBan && m.Key.Overlaps(k) {
				keep = max(keep, m.Until.Sub(at))
			}
		}
		if err := link.PublishPardon(ctx, k, at, keep); err != nil {
			fmt.Fprintf(e.stderr, "unblock: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(e.stdout, "%s: pardon published to the fleet as %s\n", k, cfg.Fleet.Name)
	}
	return exitOK
}
