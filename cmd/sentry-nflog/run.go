package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/internal/ownerlock"
)

func cmdRun(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "run", "[--config FILE] [--dry-run]", `Run the daemon: read the configured inputs (NFLOG groups, kernel log files,
/dev/kmsg), apply the rules and ban offenders with timed elements in the
nftables table it owns (inet sentry by default). Bans stay in the kernel
when the daemon stops; the kernel expires them, and after a reboot the
daemon restores those with time left. Logs go to standard error (the
journal under systemd).

Signals: SIGHUP reloads the config (an invalid file keeps the running one
and logs what is wrong); SIGINT and SIGTERM stop cleanly, after deciding
every event already read.

It needs CAP_NET_ADMIN (root) and opens no network socket, only netlink;
in fleet mode (a fleet section) it also keeps one outbound connection to a
NATS server, and still listens on nothing. Add the logging rules first
(sentry-nflog firewall), or use advanced mode.

Examples:
  sentry-nflog run --dry-run      # decisions printed, nothing banned
  sentry-nflog run --config /etc/sentry-nflog/sentry.yaml`)
	cfgPath := fs.String("config", "", "config `FILE` (default: the embedded sentry.yaml)")
	dryRun := fs.Bool("dry-run", false, "decide and print, but ban nothing and save no state (decisions go to standard output)")
	health := fs.Duration("health-interval", time.Minute, "how often to log the one-line health summary")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if *health < time.Second {
		fmt.Fprintf(e.stderr, "run: --health-interval %v: want 1s or more\n", *health)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	log := cfg.Log.Logger(e.stderr)
	deps := daemon.Deps{
		Log: log, Host: hostinfo.DefaultPaths(), Report: e.stdout, HealthEvery: *health,
		Load: func() (*config.Config, error) { return loadConfig(*cfgPath) },
	}
	deps.DryRun = *dryRun
	if !*dryRun {
		// One owner per table and state_dir: a second daemon refuses
		// before it touches either.
		lk, err := ownerlock.Acquire(ownerlock.DefaultRunDir, cfg.StateDir, cfg.NFTables.Table)
		if err != nil {
			log.Error("cannot start", "err", err)
			return exitFailure
		}
		defer lk.Release()
	}
	// A dry run needs the table only for advanced mode's logging chain.
	if !*dryRun || cfg.Advanced != nil {
		t, err := actions.OpenTable(daemon.TableSpec(cfg), 0)
		if err != nil {
			log.Error("cannot start", "err", err)
			return exitFailure
		}
		defer t.Close()
		deps.Table = t
	}
	if f := cfg.Fleet; f != nil && *dryRun {
		log.Info("dry run: fleet mode off, nothing is published or received")
	} else if f != nil {
		link, err := fleet.Dial(f.Link(log))
		if err != nil {
			log.Error("cannot start", "err", err)
			return exitFailure
		}
		defer link.Close()
		deps.Fleet = link
	}
	d, err := daemon.New(cfg, deps)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }()
	go func() {
		for range hup {
			d.Reload()
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return exitFailure
	}
	return exitOK
}
