// Package report turns a replay into one self-contained HTML page with
// pictures: decisions over time, each top source's probes as destination
// port over time (the shape of its scan: a sweep, a random order, a slow
// scan), events and decisions per rule, and malformed lines by reason.
//
// Contract: a Collector receives events and decisions as replay produces
// them, in the engine's order, from one goroutine: Event for every event
// handed to the engine, Decision for every decision it returns, Totals once
// with the counts only the caller has (lines, outcomes, events per rule).
// Write then renders the page. The collector's memory is fixed when it is
// made, whatever the input: times are kept in a fixed number of bins whose
// width grows through round widths as the replay's span grows, sources in a
// bounded table of the busiest ones (Filtered Space-Saving: a source enters
// once it has about as many events as the least busy one in the table, and
// each count is bracketed between the events seen since it entered and an
// upper bound), and each tracked source's probes in a reservoir sample of
// at most Options.Points. So the page stays small (about 120 kB for a
// million lines, well under 2 MB for any input), and Event does not
// allocate.
//
// The page is rendered on the server side as inline SVG from html/template:
// no script, no style sheet, font or image from elsewhere, and a
// Content-Security-Policy that forbids fetching any. It opens offline, from
// a file, in any browser.
//
// report sits with actions downstream of rules: it imports parsers and
// rules for their types and nothing imports it but cmd.
package report
