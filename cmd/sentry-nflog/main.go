// Command sentry-nflog catches port scanners from the packets the firewall
// logs and drops them for a while with timed nftables set elements. It opens
// no network socket: packets arrive over netlink (NFLOG) or from kernel log
// files, bans leave over netlink (nf_tables).
//
// Run `sentry-nflog help` for the commands.
//
// Each command here defines its flags and --help (which the man page and
// the completions read too), loads the config, calls its package (daemon,
// replay, internal/ops, firewall) and maps the result to an exit status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	sentrynflog "github.com/sentry-nflog/sentry-nflog"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/ops"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a command may touch: its arguments' streams. Commands never
// reach for os.Stdout directly, so tests run them in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// onFlags, when set, is told of each flag set flags makes: the man
	// page and the completions read the very flags that --help shows.
	onFlags func(name, synopsis, about string, fs *flag.FlagSet)
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return []command{
		{"run", "[--config FILE] [--dry-run]", "read NFLOG groups and log files, ban scanners in nftables (the daemon)", cmdRun},
		{"replay", "[--config FILE] [--json] FILE...", "run the rules over saved kernel logs and print what would be banned", cmdReplay},
		{"check-config", "[FILE]", "validate a config file (default: the embedded one); exit 2 on problems", cmdCheckConfig},
		{"list", "[--config FILE] [--json] [--fleet]", "show active bans with time left and origin, read from the kernel (or the fleet)", cmdList},
		{"block", "[--config FILE] [--for DURATION] [--reason TEXT] [--force] [--file FILE] ADDR|PREFIX...", "ban addresses or prefixes by hand, through the daemon's checks; kept across reboots", cmdBlock},
		{"unblock", "[--config FILE] [--fleet] ADDR|PREFIX...", "remove bans now and pardon the evidence (on every host with --fleet)", cmdUnblock},
		{"history", "[--config FILE] [--since DURATION] [--source ADDR|PREFIX] [--json]", "past decisions with their evidence, from the daemon's journal", cmdHistory},
		{"status", "[--config FILE] [--json]", "what the running daemon is doing: inputs, rates, bans, first strike, fleet, last errors", cmdStatus},
		{"firewall", "[--config FILE] [--iptables]", "print the rules that send probes of unused ports to sentry-nflog", cmdFirewall},
		{"default-config", "", "print the embedded sentry.yaml", cmdDefaultConfig},
		{"completion", "bash|zsh", "print the shell completion script for bash or zsh", cmdCompletion},
		{"version", "", "print the version", func(_ context.Context, e *env, _ []string) int {
			fmt.Fprintf(e.stdout, "sentry-nflog %s\n", version)
			return exitOK
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `sentry-nflog: catch port scanners from firewall logs, ban them in nftables.

The firewall logs new connection attempts to ports this host does not serve
to an NFLOG group; sentry-nflog applies per-source thresholds to them (5
distinct ports in 60s, one FIN/NULL/XMAS probe, ...) and inserts timed drops
into nftables sets that the kernel expires by itself. It opens no network
socket and never bans this host, its gateways or its resolvers.

Usage: sentry-nflog COMMAND [OPTIONS]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Getting started:
  sentry-nflog firewall               # rules to add to your firewall
  sentry-nflog replay /var/log/kern.log   # what would have been banned
  sentry-nflog check-config /etc/sentry-nflog/sentry.yaml
  sentry-nflog run --dry-run          # live, decisions logged, nothing banned
  sentry-nflog run                    # enforce (systemd: sentry-nflog.service)
  sentry-nflog status                 # is it running, is it healthy
  sentry-nflog list                   # active bans
  sentry-nflog history --since 1d     # what it decided, and why
  sentry-nflog block 203.0.113.7 --reason "ssh brute force"   # ban by hand
  sentry-nflog unblock 203.0.113.7    # lift a ban

Without --config the embedded default (sentry-nflog default-config) is used.
Run 'sentry-nflog COMMAND --help' for a command's options.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func realMain(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	case "--version", "-version":
		args[0] = "version"
	}
	for _, c := range append(commands(), hiddenCommands()...) {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "sentry-nflog: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

// flags returns a FlagSet for a command whose --help shows the command's
// synopsis, what it does and an example.
func flags(e *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if e.onFlags != nil {
		e.onFlags(name, synopsis, about, fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sentry-nflog %s %s\n\n%s\n", name, synopsis, about)
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nOptions:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args and turns -h and bad flags into an exit status:
// -1 means go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// loadConfig loads path, or the embedded default when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Load(sentrynflog.DefaultConfigName, sentrynflog.DefaultConfig())
	}
	return config.LoadFile(path)
}

func cmdDefaultConfig(_ context.Context, e *env, args []string) int {
	fs := flags(e, "default-config", "", "Print the embedded sentry.yaml, the documented default, to start a config from.")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	e.stdout.Write(sentrynflog.DefaultConfig())
	return exitOK
}

func cmdCheckConfig(_ context.Context, e *env, args []string) int {
	fs := flags(e, "check-config", "[FILE]", `Validate a config file: unknown keys, bad durations, CIDRs, port ranges and
flag names are reported with file, line, column and key. Exit status 0 when
valid, 2 when not. Without FILE the embedded default is checked.

Example:
  sentry-nflog check-config /etc/sentry-nflog/sentry.yaml`)
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := loadConfig(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	fmt.Fprintf(e.stdout, "%s: OK: %s\n", cfg.File, cfg.Summary())
	return exitOK
}

// exitCode turns what an ops command returned into the exit status; the
// command has reported the cause.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, ops.ErrUsage):
		return exitUsage
	default:
		return exitFailure
	}
}
