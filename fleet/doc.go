// Package fleet carries bans between the hosts of a fleet through NATS
// JetStream, so that a scanner banned on one host is dropped on every
// host at once, and a host that starts, restarts or comes back from a
// partition gets every ban still active with its remaining time.
//
// # What travels
//
// Each ban the daemon itself decides is one Message: origin (fleet.name),
// rule, key, ban length, the absolute Until, offence number and evidence
// (first ports, hits), as JSON. A pardon (`unblock --fleet`) is a Message
// too, asking every host to lift its bans of a key decided before it.
// The kernel's provisional first-strike bans never travel (they are not
// decisions), and neither does anything a host received: remote bans
// never pass through the daemon's door, where Publisher sits.
//
// # Where it is kept: a stream, one subject per (origin, key)
//
// Messages go to the stream named by fleet.bucket (default sentry_bans)
// on the subject "<bucket>.<origin>.<key token>" (Subject, KeyToken). The
// stream keeps the last message of each subject (MaxMsgsPerSubject 1) and
// allows per-message TTLs (AllowMsgTTL): each message carries a TTL in
// whole seconds, rounded up from the time its ban has left and computed
// anew on every retry of a publish, so the server drops it when the ban
// ends. A receiver starts with the last message of every subject
// (DeliverLastPerSubject) and then follows new ones; it checks Until
// itself too, since a message can arrive already expired.
//
// We chose a stream over a KV bucket because a KV bucket's per-key TTL
// can only be set when a key is created, not when it is put again, and a
// ban of the same key by the same origin is put again when it escalates;
// the stream with one subject per (origin, key) is what a KV bucket is
// underneath, with the TTL on every message. The subject's origin token
// lets per-host credentials allow publishing only under
// "<bucket>.<origin>.>", and Decode refuses a message whose origin or key
// is not the subject's: a host holding its own credentials cannot speak
// for another.
//
// # The link
//
// Link is one outbound connection (TLS when a URL says tls://) to one of
// the servers at a time, never a listening socket. It pings the server
// every second and each consumer expects a heartbeat every second, so a
// silent partition is noticed within about three seconds (the client's
// defaults, 2 minutes and 5 s, are far too slow). A server unreachable at
// start does not stop the daemon: Dial returns at once, the link connects
// when it can, and the Publisher's queue holds the bans made meanwhile.
// Every failure is logged once when its state changes, never per message.
//
// Publisher is an actions.Action: Act queues a ban without blocking, and
// one goroutine publishes the queue in order, retrying each message with
// the same message id (Nats-Msg-Id: kind, origin, key, decision time), so
// a publish retried across a server restart or a leader failover is
// stored once. Close gives what is queued a short grace and waits for the
// goroutine. What it could not publish is not lost with the process: at
// every start, Republish publishes the host's bans still in force again,
// each only if the stream holds no message of its (origin, key)
// (Nats-Expected-Last-Subject-Sequence 0), so the bans a stop left
// unpublished, or that the stream lost, are stored, and nothing the
// stream holds (the same ban, a later one, a pardon) is replaced.
//
// Receive is a source: it runs until its context ends and sends other
// hosts' messages to a channel the daemon's loop reads; after a
// disconnection it resumes after the last message it delivered, so the
// bans missed meanwhile arrive with their Until. It decides nothing: the
// receiving daemon applies its own ignore list, accept_from, the prefix
// check, max_remote_ban, the remote valve and max_remote_active before it
// inserts a ban into its own sets.
package fleet
