package ops

import (
	"context"
	"fmt"
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

// dialFleet connects to the fleet of cfg, reporting a config without one
// (ErrUsage) and a failure to connect.
func (c *Command) dialFleet(cfg *config.Config) (Fleet, error) {
	if cfg.Fleet == nil {
		c.errorf("--fleet: %s has no fleet section", cfg.File)
		return nil, ErrUsage
	}
	link, err := c.DialFleet(cfg)
	if err != nil {
		return nil, c.fail(err)
	}
	return link, nil
}

// ListFleet is `list --fleet`: the fleet's active bans and pardons, read
// from its stream, with origin and time left; as a table or as JSON.
func (c *Command) ListFleet(ctx context.Context, cfg *config.Config, asJSON bool) error {
	link, err := c.dialFleet(cfg)
	if err != nil {
		return err
	}
	defer link.Close()
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	msgs, err := link.Active(ctx)
	if err != nil {
		return c.fail(err)
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
		return c.writeJSON(out)
	}
	c.printf("%d active in the fleet's stream %s", len(msgs), cfg.Fleet.Bucket)
	if len(msgs) > 0 {
		tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
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
	return nil
}

// pardonFleet publishes a pardon of each key, which every host applies. A
// pardon stays in the stream as long as the longest ban of the key it
// overrides (a minute at least), so a host starting later does not apply
// those.
func (c *Command) pardonFleet(ctx context.Context, cfg *config.Config, keys []netip.Prefix, at time.Time) error {
	link, err := c.dialFleet(cfg)
	if err != nil {
		return err
	}
	defer link.Close()
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	msgs, err := link.Active(ctx)
	if err != nil {
		c.errorf("--fleet: %v", err)
		return ErrFailed
	}
	for _, k := range keys {
		keep := time.Minute
		for _, m := range msgs {
			if m.Kind == fleet.KindBan && m.Key.Overlaps(k) {
				keep = max(keep, m.Until.Sub(at))
			}
		}
		if err := link.PublishPardon(ctx, k, at, keep); err != nil {
			return c.fail(err)
		}
		c.printf("%s: pardon published to the fleet as %s", k, cfg.Fleet.Name)
	}
	return nil
}
