// Package clidoc renders a command-line program's manual page (roff) and
// its bash and zsh completion scripts from one description of its commands:
// the same texts and flag sets its --help prints, so the three never drift
// apart. It knows nothing of sentry-nflog's commands; cmd hands them over.
package clidoc

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Command is one command as its --help shows it.
type Command struct {
	// Name is the command word, Summary its one-line description in the
	// usage.
	Name, Summary string
	// Synopsis is what follows the name ("[--config FILE] FILE..."),
	// About its --help text.
	Synopsis, About string
	// Flags are its options, in the order --help lists them.
	Flags []*flag.Flag
}

// Page is what the manual page is made of.
type Page struct {
	// Program is the command's name ("sentry-nflog"), Version its version.
	Program, Version string
	// Usage is the program's usage text: the first paragraph names it
	// ("prog: what it does."), paragraphs starting "Usage:" and
	// "Commands:" are left out, "Getting started:" becomes EXAMPLES, the
	// rest DESCRIPTION.
	Usage string
	// Commands are documented in COMMANDS, in order.
	Commands []Command
	// Tail is roff appended as is (FILES, EXIT STATUS, SEE ALSO).
	Tail string
}

// Man renders the manual page (section 1): the usage's text for NAME,
// DESCRIPTION and EXAMPLES, each command's --help for COMMANDS.
func Man(w io.Writer, p Page) {
	name, description, examples := splitUsage(p.Program, p.Usage)

	fmt.Fprintf(w, ".\\\" The manual page of %s, made from the commands' help.\n", p.Program)
	fmt.Fprintln(w, `.\" Do not edit: change the help instead.`)
	fmt.Fprintf(w, ".TH %s 1 \"\" %s \"User Commands\"\n", strings.ToUpper(p.Program), roffQuote(p.Program+" "+p.Version))
	fmt.Fprintln(w, ".SH NAME")
	fmt.Fprintf(w, "%s \\- %s\n", roffCode(p.Program), roffText(name))
	fmt.Fprintln(w, ".SH SYNOPSIS")
	fmt.Fprintf(w, ".B %s\n", roffCode(p.Program))
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
	for _, h := range p.Commands {
		fmt.Fprintf(w, ".SS %s\n", roffQuote(strings.TrimSpace(h.Name+" "+h.Synopsis)))
		about := h.About
		if about == "" && h.Summary != "" {
			about = strings.ToUpper(h.Summary[:1]) + h.Summary[1:] + "."
		}
		writeRoffBlock(w, about)
		if len(h.Flags) > 0 {
			fmt.Fprintln(w, ".PP")
			fmt.Fprintln(w, "Options:")
		}
		for _, f := range h.Flags {
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
	fmt.Fprint(w, p.Tail)
}

// splitUsage cuts the usage text into the NAME line, the DESCRIPTION
// paragraphs and the "Getting started" examples; the command list and the
// usage line are left to the COMMANDS and SYNOPSIS sections.
func splitUsage(program, u string) (name string, description []string, examples string) {
	for i, p := range strings.Split(strings.TrimSpace(u), "\n\n") {
		switch {
		case i == 0:
			name = strings.TrimSuffix(strings.TrimPrefix(p, program+": "), ".")
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

// Bash renders the bash completion script of program.
func Bash(w io.Writer, program string, cmds []Command) {
	// Flags are grouped by what follows them, for completing that; a flag
	// several commands share is listed once.
	var names, fileFlags, dirFlags, argFlags []string
	seen := map[string]bool{}
	for _, c := range cmds {
		names = append(names, c.Name)
		for _, f := range c.Flags {
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
	fmt.Fprintf(w, `# bash completion for %[5]s, made from the commands' help.
%[6]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W %[1]q -- "$cur"))
		return
	fi
	case $prev in
	%[2]s) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	%[3]s) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	%[4]s) COMPREPLY=(); return ;;
	esac
	case ${COMP_WORDS[1]} in
`, strings.Join(names, " "), caseWords(fileFlags), caseWords(dirFlags), caseWords(argFlags), program, bashFunc(program))
	for _, c := range cmds {
		var opts []string
		for _, f := range c.Flags {
			opts = append(opts, "--"+f.Name)
		}
		fmt.Fprintf(w, "\t%s) opts=%q ;;\n", c.Name, strings.Join(opts, " "))
	}
	fmt.Fprint(w, `	*) opts= ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
`)
	fmt.Fprintf(w, "complete -o filenames -F %s %s\n", bashFunc(program), program)
}

// caseWords joins patterns for a bash case; a pattern that never matches
// stands in for none.
func caseWords(ws []string) string {
	if len(ws) == 0 {
		return "--no-such-flag--"
	}
	return strings.Join(ws, "|")
}

// Zsh renders the zsh completion script of program (#compdef).
func Zsh(w io.Writer, program string, cmds []Command) {
	fn := "_" + program
	fmt.Fprintf(w, `#compdef %[1]s
# zsh completion for %[1]s, made from the commands' help.

%[2]s() {
	local -a commands
	commands=(
`, program, fn)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t%s\n", zshQuote(c.Name+":"+c.Summary))
	}
	fmt.Fprint(w, `	)
	if (( CURRENT == 2 )); then
		_describe -t commands 'command' commands
		return
	fi
	local cmd=${words[2]}
	shift words
	(( CURRENT-- ))
	case $cmd in
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments -s", c.Name)
		for _, f := range c.Flags {
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

`)
	fmt.Fprintf(w, "%s \"$@\"\n", fn)
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

// bashFunc is the completion function's name: "_" and the program's name
// with what a shell name cannot hold made an underscore.
func bashFunc(program string) string {
	return "_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, program)
}
