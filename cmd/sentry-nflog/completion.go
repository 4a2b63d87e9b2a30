package main

import (
	"context"
	"fmt"

	"github.com/sentry-nflog/sentry-nflog/internal/clidoc"
)

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
