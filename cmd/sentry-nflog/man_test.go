package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentry-nflog/sentry-nflog/internal/clidoc"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// manCode is how the page spells a command or option: hyphens as minus
// signs.
func manCode(s string) string { return strings.ReplaceAll(s, "-", `\-`) }

// TestHelpTable: the man page and completions see every command, and the
// flags and text of each command that has them, the same as --help.
func TestHelpTable(t *testing.T) {
	table := helpTable()
	if len(table) != len(commands()) {
		t.Fatalf("%d commands read, want %d", len(table), len(commands()))
	}
	for _, h := range table {
		if h.Name == "version" {
			continue
		}
		if h.About == "" {
			t.Errorf("%s: its --help text was not seen", h.Name)
			continue
		}
		_, _, help := runCLI(t, nil, h.Name, "--help")
		if !strings.Contains(help, h.About) {
			t.Errorf("%s: text differs from --help", h.Name)
		}
		for _, f := range h.Flags {
			if !strings.Contains(help, "-"+f.Name) {
				t.Errorf("%s: flag %s not in --help", h.Name, f.Name)
			}
		}
	}
	var replay clidoc.Command
	for _, h := range table {
		if h.Name == "replay" {
			replay = h
		}
	}
	var names []string
	for _, f := range replay.Flags {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "config json") || !strings.Contains(got, "report") {
		t.Errorf("replay's flags read as %q", got)
	}
}

func TestMan(t *testing.T) {
	code, page, errOut := runCLI(t, nil, "man")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(page, `.\"`) || !strings.Contains(page, "\n.TH SENTRY-NFLOG 1 ") ||
		!strings.Contains(page, "\n.SH NAME\nsentry\\-nflog \\- catch port scanners") {
		t.Errorf("no roff man page header:\n%.400s", page)
	}
	for _, h := range helpTable() {
		if !strings.Contains(page, "\n.SS \""+manCode(h.Name)) {
			t.Errorf("command %s has no subsection", h.Name)
		}
		for _, f := range h.Flags {
			if !strings.Contains(page, "\n.B "+manCode("--"+f.Name)+"\n") && !strings.Contains(page, "\n.BI "+manCode("--"+f.Name)+" ") {
				t.Errorf("flag --%s of %s missing", f.Name, h.Name)
			}
		}
	}
	if strings.Contains(page, "\n.SS \"man") {
		t.Error("the hidden man command is in its own page")
	}
	if code, usage, _ := runCLI(t, nil, "help"); code != 0 || strings.Contains(usage, "  man ") {
		t.Error("man shows in the usage")
	}
	// groff, as man(1) runs it, with every warning on: none may fire.
	cmd := exec.Command(testkit.Need(t, "groff"), "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

func TestCompletionBash(t *testing.T) {
	code, script, errOut := runCLI(t, nil, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	bash := testkit.Need(t, "bash")
	path := filepath.Join(t.TempDir(), "sentry-nflog")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"sentry-nflog rep", "replay"},
		{"sentry-nflog ch", "check-config"},
		{"sentry-nflog replay --re", "--report"},
		{"sentry-nflog run --dry", "--dry-run"},
		{"sentry-nflog replay --top ", ""},
	} {
		cmd := exec.Command(bash, "--norc", "-c", `source "$1"; read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _sentry_nflog; echo "${COMPREPLY[*]}"`, "bash", path, tc.words)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%q completes to %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestCompletionZsh(t *testing.T) {
	code, script, errOut := runCLI(t, nil, "completion", "zsh")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(script, "#compdef sentry-nflog\n") {
		t.Errorf("zsh completion lacks its #compdef line")
	}
	for _, h := range helpTable() {
		if !strings.Contains(script, "\t"+h.Name+")\n") {
			t.Errorf("no case for %s", h.Name)
		}
	}
	if code, _, _ := runCLI(t, nil, "completion", "fish"); code != exitUsage {
		t.Errorf("unknown shell: exit %d, want %d", code, exitUsage)
	}
	cmd := exec.Command(testkit.Need(t, "zsh"), "-n")
	cmd.Stdin = bytes.NewReader([]byte(script))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v\n%s", err, out)
	}
}
