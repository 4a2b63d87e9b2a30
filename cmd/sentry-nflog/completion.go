package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
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
		writeBash(e.stdout, helpTable())
	case "zsh":
		writeZsh(e.stdout, helpTable())
	default:
		fmt.Fprintf(e.stderr, "completion: unknown shell %q (bash or zsh)\n", fs.Arg(0))
		return exitUsage
	}
	return exitOK
}

// flagArg says what a flag takes: "" for a boolean, else the argument's
// name as its usage text spells it (FILE, DIR, duration ...).
func flagArg(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	arg, _ := flag.UnquoteUsage(f)
	if arg == "" {
		arg = "value"
	}
	return arg
}

func writeBash(w io.Writer, cmds []commandHelp) {
	// Flags are grouped by what follows them, for completing that; a flag
	// several commands share is listed once.
	var names, fileFlags, dirFlags, argFlags []string
	seen := map[string]bool{}
	for _, c := range cmds {
		names = append(names, c.name)
		for _, f := range c.flags {
			arg := flagArg(f)
			if seen[f.Name+" "+arg] {
				continue
			}
			seen[f.Name+" "+arg] = true
			switch arg {
			case "":
			case "FILE":
				fileFlags = append(fileFlags, "--"+f.Name, "-"+f.Name)
			case "DIR":
				dirFlags = append(dirFlags, "--"+f.Name, "-"+f.Name)
			default:
				argFlags = append(argFlags, "--"+f.Name, "-"+f.Name)
			}
		}
	}
	fmt.Fprintf(w, `# bash completion for sentry-nflog, made by "sentry-nflog completion bash"
# from the commands' help.
_sentry_nflog() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	case $prev in
	%s) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	%s) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	%s) COMPREPLY=(); return ;;
	esac
	case ${COMP_WORDS[1]} in
`, strings.Join(names, " "), caseWords(fileFlags), caseWords(dirFlags), caseWords(argFlags))
	for _, c := range cmds {
		var opts []string
		for _, f := range c.flags {
			opts = append(opts, "--"+f.Name)
		}
		fmt.Fprintf(w, "\t%s) opts=%q ;;\n", c.name, strings.Join(opts, " "))
	}
	fmt.Fprint(w, `	*) opts= ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _sentry_nflog sentry-nflog
`)
}

// caseWords joins patterns for a bash case; a pattern that never matches
// stands in for none.
func caseWords(ws []string) string {
	if len(ws) == 0 {
		return "--sentry-nflog-none--"
	}
	return strings.Join(ws, "|")
}

func writeZsh(w io.Writer, cmds []commandHelp) {
	fmt.Fprint(w, `#compdef sentry-nflog
# zsh completion for sentry-nflog, made by "sentry-nflog completion zsh"
# from the commands' help.

_sentry-nflog() {
	local -a commands
	commands=(
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t%s\n", zshQuote(c.name+":"+c.summary))
	}
	fmt.Fprint(w, `	)
	if (( CURRENT == 2 )); then
		_describe -t commands 'sentry-nflog command' commands
		return
	fi
	local cmd=${words[2]}
	shift words
	(( CURRENT-- ))
	case $cmd in
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments -s", c.name)
		for _, f := range c.flags {
			_, usage := flag.UnquoteUsage(f)
			desc := zshEscape(firstLine(usage))
			switch arg := flagArg(f); arg {
			case "":
				fmt.Fprintf(w, " \\\n\t\t\t%s", zshQuote("--"+f.Name+"["+desc+"]"))
			case "FILE":
				fmt.Fprintf(w, " \\\n\t\t\t%s", zshQuote("--"+f.Name+"=["+desc+"]:"+arg+":_files"))
			case "DIR":
				fmt.Fprintf(w, " \\\n\t\t\t%s", zshQuote("--"+f.Name+"=["+desc+"]:"+arg+":_files -/"))
			default:
				fmt.Fprintf(w, " \\\n\t\t\t%s", zshQuote("--"+f.Name+"=["+desc+"]:"+zshEscape(arg)+":"))
			}
		}
		fmt.Fprint(w, " \\\n\t\t\t'*:file:_files'\n\t\t;;\n")
	}
	fmt.Fprint(w, `	esac
}

_sentry-nflog "$@"
`)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// zshEscape escapes what _arguments gives a meaning to in a description.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

// zshQuote single-quotes s for zsh.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
