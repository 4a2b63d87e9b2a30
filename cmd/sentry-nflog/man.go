package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sentry-nflog/sentry-nflog/internal/clidoc"
)

// hiddenCommands run like the others but are left out of the usage: they
// serve packaging, not operators.
func hiddenCommands() []command {
	return []command{
		{"man", "", "print the manual page (roff) made from the commands' help", cmdMan},
	}
}

// helpTable reads every command's help from the command itself: it runs
// each with --help, in-process, with its output discarded, and keeps the
// text and flag set the command handed to flags. The context is already
// cancelled, so a command would stop at once even if it went on past its
// flags.
func helpTable() []clidoc.Command {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out []clidoc.Command
	for _, c := range commands() {
		h := clidoc.Command{Name: c.name, Summary: c.summary, Synopsis: c.args}
		var fs *flag.FlagSet
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
			onFlags: func(name, synopsis, about string, f *flag.FlagSet) {
				if name == c.name && fs == nil {
					h.Synopsis, h.About, fs = synopsis, about, f
				}
			}}
		c.run(ctx, e, []string{"--help"})
		if fs != nil {
			fs.VisitAll(func(f *flag.Flag) { h.Flags = append(h.Flags, f) })
		}
		out = append(out, h)
	}
	return out
}

func cmdMan(_ context.Context, e *env, args []string) int {
	fs := flags(e, "man", "", `Print the manual page sentry-nflog(1), in roff, made from the same command
table, texts and flags as --help, so the two never disagree. The Debian
package ships it.

Example:
  sentry-nflog man | man -l -`)
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	var u bytes.Buffer
	usage(&u)
	clidoc.Man(e.stdout, clidoc.Page{Program: "sentry-nflog", Version: version, Usage: u.String(), Commands: helpTable(), Tail: manTail})
	return exitOK
}

func cmdCompletion(_ context.Context, e *env, args []string) int {
	fs := flags(e, "completion", "bash|zsh", `Print the shell completion script for bash or zsh, made from the command
table and flags that --help shows. The Debian package installs both.

Examples:
  source <(sentry-nflog completion bash)
  sentry-nflog completion zsh > "${fpath[1]}/_sentry-nflog"`)
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	switch fs.Arg(0) {
	case "bash":
		clidoc.Bash(e.stdout, "sentry-nflog", helpTable())
	case "zsh":
		clidoc.Zsh(e.stdout, "sentry-nflog", helpTable())
	default:
		fmt.Fprintf(e.stderr, "completion: unknown shell %q (bash or zsh)\n", fs.Arg(0))
		return exitUsage
	}
	return exitOK
}

// manTail is the manual page's last sections, which no --help holds.
const manTail = `.SH FILES
.TP
.I /etc/sentry-nflog/sentry.yaml
The configuration, documented in itself;
.B sentry\-nflog default\-config
prints the embedded default.
.TP
.I /var/lib/sentry-nflog
The state directory (state_dir): offences and bans kept across restarts
.RI ( state.json ,
.IR positions.json ),
pardons given by
.B unblock
.RI ( pardons ),
manual bans made by
.B block
.RI ( blocks.jsonl ),
the decision journal read by
.B history
.RI ( journal.jsonl ,
.IR journal.jsonl.1 )
and the status file read by
.B status
.RI ( status.json ).
.SH "EXIT STATUS"
0 on success, 1 on failure, 2 on a usage error or an invalid configuration.
.SH "SEE ALSO"
.BR nft (8),
.BR journalctl (1),
.BR systemd.service (5)
`
