// Package sentrynflog holds what belongs to the repository as a whole: the
// shipped sentry.yaml, embedded so the binary runs without a config file.
package sentrynflog

import _ "embed"

//go:embed sentry.yaml
var defaultConfig []byte

// DefaultConfig returns a copy of the repository's sentry.yaml.
func DefaultConfig() []byte { return append([]byte(nil), defaultConfig...) }

// DefaultConfigName names the embedded config in messages.
const DefaultConfigName = "embedded sentry.yaml"
