// Package config loads sentry.yaml: strict YAML (unknown keys are errors)
// decoded into raw structs, then validated into typed settings (durations,
// netip prefixes, compiled rules). Every problem is reported with the file,
// line, column and key path, and all problems are reported at once, so an
// operator fixes a file in one pass.
package config
