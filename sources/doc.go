// Package sources reads the inputs sentry-nflog watches (an NFLOG group,
// kernel log files it follows, /dev/kmsg) and turns what they deliver into
// parsers.Event values with the decoders of package parsers. It owns the
// I/O around them: sockets, file following through rotation and truncation
// (and what a rotation while stopped left under a rotated or compressed
// name), saved file positions, and the accounting of what the input lost.
//
// Every source keeps one contract, the Source interface:
//
//   - Run(ctx, out) runs until ctx ends, sending one Item (the Event and,
//     from a source whose position is saved, its Mark) per firewall record
//     to out. It never closes out: the channel belongs to the caller and is
//     shared by every source. The consumer commits each Mark once the event
//     is decided; a source's saved position never passes an event that was
//     not. It returns nil when ctx ends, as
//     cancellation is no failure, and an error when the input cannot be read
//     (at start: a missing capability, a busy NFLOG group). Once Run has
//     returned it sends nothing more. Sending blocks while the consumer is
//     busy; what the input drops meanwhile is counted, never hidden.
//   - Ready() is closed once no event can be missed: a record the kernel
//     logs from then on is delivered or counted as lost. Callers wait for it
//     before they report that they are running. It is never closed if Run
//     fails first, so callers wait for Run's error too.
//   - Stats (each source has its own counter type), Name, and FileSource's
//     Position may be called from any goroutine at any time, while Run runs.
//
// Run may be called again after it returned with an error (the daemon
// restarts an input that failed), never while it runs: counters go on
// counting, Ready stays closed once closed, and a FileSource resumes where
// the last run stopped.
//
// Data flows one way: sources imports parsers, and never rules or actions.
package sources
