package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// hiddenCommands run like the others but are left out of the usage: they
// serve packaging, not operators.
func hiddenCommands() []command {
	return []command{
		{"man", "", "print the manual page (roff) made from the commands' help", cmdMan},
	}
}

// commandHelp is one command as its --help shows it.
type commandHelp struct {
	name, summary   string
	synopsis, about string
	flags           []*flag.Flag
}

// helpTable reads every command's help from the command itself: it runs
// each with --help, in-process, with its output discarded, and keeps the
// text and flag set the command handed to flags. The context is already
// cancelled, so a command would stop at once even if it went on past its
// flags.
func helpTable() []commandHelp {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out []commandHelp
	for _, c := range commands() {
		h := commandHelp{name: c.name, summary: c.summary, synopsis: c.args}
		var fs *flag.FlagSet
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
			onFlags: func(name, synopsis, about string, f *flag.FlagSet) {
				if name == c.name && fs == nil {
					h.synopsis, h.about, fs = synopsis, about, f
				}
			}}
		c.run(ctx, e, []string{"--help"})
		if fs != nil {
			fs.VisitAll(func(f *flag.Flag) { h.flags = append(h.flags, f) })
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
	writeMan(e.stdout)
	return exitOK
}

// writeMan renders the manual page: the usage's text for NAME, DESCRIPTION
// and EXAMPLES, each command's --help for COMMANDS.
func writeMan(w io.Writer) {
	var u bytes.Buffer
	usage(&u)
	name, description, examples := splitUsage(u.String())

	fmt.Fprintln(w, `.\" The manual page of sentry-nflog, made by "sentry-nflog man" from the`)
	fmt.Fprintln(w, `.\" commands' help. Do not edit: change the help instead.`)
	fmt.Fprintf(w, ".TH SENTRY-NFLOG 1 \"\" %s \"User Commands\"\n", roffQuote("sentry-nflog "+version))
	fmt.Fprintln(w, ".SH NAME")
	fmt.Fprintf(w, "sentry-nflog \\- %s\n", roffText(name))
	fmt.Fprintln(w, ".SH SYNOPSIS")
	fmt.Fprintln(w, ".B sentry-nflog")
	fmt.Fprintln(w, ".I COMMAND")
	fmt.Fprintln(w, ".RI [ OPTIONS ]")
	fmt.Fprintln(w, ".SH DESCRIPTION")
	for i, p := range description {
		if i > 0 {
			fmt.Fprintln(w, ".PP")
		}
		writeRoffBlock(w, p)
	}
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, h := range helpTable() {
		fmt.Fprintf(w, ".SS %s\n", roffQuote(strings.TrimSpace(h.name+" "+h.synopsis)))
		about := h.about
		if about == "" {
			about = strings.ToUpper(h.summary[:1]) + h.summary[1:] + "."
		}
		writeRoffBlock(w, about)
		if len(h.flags) > 0 {
			fmt.Fprintln(w, ".PP")
			fmt.Fprintln(w, "Options:")
		}
		for _, f := range h.flags {
			arg, text := flag.UnquoteUsage(f)
			fmt.Fprintln(w, ".TP")
			if arg == "" {
				fmt.Fprintf(w, ".B %s\n", roffCode("--"+f.Name))
			} else {
				fmt.Fprintf(w, ".BI %s \" %s\"\n", roffCode("--"+f.Name), roffCode(arg))
			}
			if d := f.DefValue; d != "" && d != "0" && d != "false" {
				text += " (default " + d + ")"
			}
			fmt.Fprintln(w, roffText(text))
		}
	}
	if examples != "" {
		fmt.Fprintln(w, ".SH EXAMPLES")
		writeRoffBlock(w, examples)
	}
	fmt.Fprint(w, `.SH FILES
.TP
.I /etc/sentry-nflog/sentry.yaml
The configuration, documented in itself;
.B sentry\-nflog default\-config
prints the embedded default.
.TP
.I /var/lib/sentry-nflog
The state directory (state_dir): offences and bans kept across restarts.
.SH "EXIT STATUS"
0 on success, 1 on failure, 2 on a usage error or an invalid configuration.
.SH "SEE ALSO"
.BR nft (8),
.BR journalctl (1),
.BR systemd.service (5)
`)
}

// splitUsage cuts the usage text into the NAME line, the DESCRIPTION
// paragraphs and the "Getting started" examples; the command list and the
// usage line are left to the COMMANDS and SYNOPSIS sections.
func splitUsage(u string) (name string, description []string, examples string) {
	for i, p := range strings.Split(strings.TrimSpace(u), "\n\n") {
		switch {
		case i == 0:
			name = strings.TrimSuffix(strings.TrimPrefix(p, "sentry-nflog: "), ".")
		case strings.HasPrefix(p, "Usage:"), strings.HasPrefix(p, "Commands:"):
		case strings.HasPrefix(p, "Getting started:"):
			examples = p
		default:
			description = append(description, p)
		}
	}
	return name, description, examples
}

// writeRoffBlock writes help text: paragraphs as filled text, lines
// indented by two spaces (examples) as they are.
func writeRoffBlock(w io.Writer, text string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case l == "":
			fmt.Fprintln(w, ".PP")
		case strings.HasPrefix(l, "  "):
			fmt.Fprintln(w, ".RS 4")
			fmt.Fprintln(w, ".nf")
			for ; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
				fmt.Fprintln(w, roffCode(strings.TrimPrefix(lines[i], "  ")))
			}
			i--
			fmt.Fprintln(w, ".fi")
			fmt.Fprintln(w, ".RE")
		default:
			fmt.Fprintln(w, roffText(l))
		}
	}
}

// roffText escapes one line of text: backslashes, and a leading dot or
// quote that roff would take for a request.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffCode escapes a command or option: like text, and every hyphen is a
// minus sign, so that what is copied from the page runs.
func roffCode(s string) string {
	return strings.ReplaceAll(roffText(s), "-", `\-`)
}

// roffQuote makes s one macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffCode(s), `"`, `""`) + `"`
}
