package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// field is a scalar that remembers where it was written, so validation
// errors can point at it, and whether it was written at all, so defaults
// apply only to what the file leaves out.
type field[T any] struct {
	V         T
	Line, Col int
	Set       bool
}

func (f *field[T]) UnmarshalYAML(n *yaml.Node) error {
	f.Line, f.Col, f.Set = n.Line, n.Column, true
	if n.Kind != yaml.ScalarNode {
		return typeErr(n, "want %s, got a %s", kindName[T](), nodeKind(n))
	}
	// A string takes the scalar's text whatever YAML resolves it to, so
	// `flags: [null]` means the class named null, not YAML's null.
	if sp, ok := any(&f.V).(*string); ok {
		*sp = n.Value
		return nil
	}
	if err := n.Decode(&f.V); err != nil {
		return typeErr(n, "want %s, got %q", kindName[T](), n.Value)
	}
	return nil
}

// list is a scalar or a sequence of scalars: `proto: tcp` and
// `proto: [tcp, udp]` both work.
type list struct {
	Items     []field[string]
	Line, Col int
	Set       bool
}

func (l *list) UnmarshalYAML(n *yaml.Node) error {
	l.Line, l.Col, l.Set = n.Line, n.Column, true
	switch n.Kind {
	case yaml.ScalarNode:
		var f field[string]
		if err := f.UnmarshalYAML(n); err != nil {
			return err
		}
		l.Items = []field[string]{f}
		return nil
	case yaml.SequenceNode:
		for _, c := range n.Content {
			var f field[string]
			if err := f.UnmarshalYAML(c); err != nil {
				return err
			}
			l.Items = append(l.Items, f)
		}
		return nil
	}
	return typeErr(n, "want a value or a list of values, got a %s", nodeKind(n))
}

// typeErr reports through yaml.TypeError so the decoder collects every such
// error instead of stopping at the first. The position is parsed back out
// in Load to name the key.
func typeErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d col %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}

func kindName[T any]() string {
	var z T
	switch any(z).(type) {
	case int:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	}
	return "a string"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return strings.TrimPrefix(n.Tag, "!!")
}
