package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	File      string
	Line, Col int
	// Key is the path of the key ("rules[1].threshold.within"), "" for the
	// file as a whole.
	Key string
	Msg string
}

// String formats the problem as file:line:col: key: message, the form
// editors jump to.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a config file, one per line, in file
// order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LoadFile reads and validates the config file at path.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, data)
}

// Load validates data, naming it file in errors. A returned error of type
// *Error lists every problem.
func Load(file string, data []byte) (*Config, error) {
	l := &loader{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		l.yamlErr(err)
		return nil, l.err()
	}
	l.index(&root, "")
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		l.add(1, 0, "", "the file must be a YAML mapping of sections (inputs, ignore, rules, ...)")
		return nil, l.err()
	}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		l.yamlErr(err)
		return nil, l.err()
	}
	cfg := l.build(&raw)
	if err := l.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loader validates one file, collecting every problem instead of stopping
// at the first. build calls one method per section; they live next to the
// section's rules (inputs.go, rules.go, bans.go, nftables.go, daemon.go).
type loader struct {
	file     string
	problems []Problem
	// Positions of keys and sequence items by path, and paths by position,
	// so decoder messages that only give a line can name the key.
	posOf  map[string][2]int
	pathAt map[[2]int]string
	keysAt map[int][]string
}

func (l *loader) add(line, col int, key, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Col: col, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) at(path string) (int, int) {
	for {
		if p, ok := l.posOf[path]; ok {
			return p[0], p[1]
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return 0, 0
		}
		path = path[:i]
	}
}

func (l *loader) addAt(path, format string, args ...any) {
	line, col := l.at(path)
	l.add(line, col, path, format, args...)
}

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i], l.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return &Error{Problems: l.problems}
}

func (l *loader) index(n *yaml.Node, path string) {
	if l.posOf == nil {
		l.posOf = map[string][2]int{}
		l.pathAt = map[[2]int]string{}
		l.keysAt = map[int][]string{}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			l.index(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			l.posOf[p] = [2]int{k.Line, k.Column}
			l.pathAt[[2]int{v.Line, v.Column}] = p
			l.keysAt[k.Line] = append(l.keysAt[k.Line], p)
			l.index(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := l.posOf[p]; !ok {
				l.posOf[p] = [2]int{c.Line, c.Column}
			}
			l.pathAt[[2]int{c.Line, c.Column}] = p
			l.index(c, p)
		}
	}
}

var (
	reLineCol  = regexp.MustCompile(`^line (\d+) col (\d+): (.*)$`)
	reUnknown  = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)
	reLineOnly = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// yamlErr turns the decoder's messages into problems that name the key.
func (l *loader) yamlErr(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := reLineOnly.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			l.add(n, 0, "", "%s", m[2])
			return
		}
		l.add(0, 0, "", "%s", msg)
		return
	}
	for _, s := range te.Errors {
		if m := reLineCol.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			l.add(line, col, l.pathAt[[2]int{line, col}], "%s", m[3])
			continue
		}
		if m := reUnknown.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			key := m[2]
			for _, p := range l.keysAt[line] {
				if p == key || strings.HasSuffix(p, "."+key) {
					key = p
					break
				}
			}
			col := l.posOf[key][1]
			l.add(line, col, key, "unknown key")
			continue
		}
		if m := reLineOnly.FindStringSubmatch(s); m != nil {
			line, _ := strconv.Atoi(m[1])
			l.add(line, 0, "", "%s", m[2])
			continue
		}
		l.add(0, 0, "", "%s", s)
	}
}

func (l *loader) build(raw *rawConfig) *Config {
	cfg := &Config{File: l.file}
	l.inputs(raw, cfg)
	l.ignore(raw, cfg)
	l.rules(raw, cfg)
	l.bans(raw, cfg)
	l.nftables(raw, cfg)
	cfg.StateDir = DefaultStateDir
	if raw.StateDir.Set {
		if !strings.HasPrefix(raw.StateDir.V, "/") {
			l.addAt("state_dir", "must be an absolute path, got %q", raw.StateDir.V)
		}
		cfg.StateDir = raw.StateDir.V
	}
	l.log(raw, cfg)
	l.exec(raw, cfg)
	l.advanced(raw, cfg)
	l.metrics(raw, cfg)
	l.firstStrike(raw, cfg)
	l.fleet(raw, cfg)
	return cfg
}
