// Package rules is the detection engine: Event in, Decision out.
//
// It is pure: no I/O, no goroutines, no clock but the events' own
// timestamps, so a replay of saved logs and the live daemon reach the same
// decisions from the same packets. It imports parsers for the Event type and
// nothing downstream (never actions).
//
// Memory is bounded whatever the input: at most Config.MaxTrackedSources
// sources (limits.max_tracked_sources in sentry.yaml) are tracked, the stalest evicted first, and idle state is dropped
// once it can no longer contribute to a threshold.
package rules
