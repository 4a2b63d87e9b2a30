package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Receive is the source of remote bans: it runs until ctx ends, sending
// every valid ban and pardon other hosts published to out, first the
// last message of each subject still in the stream (so every ban still
// active, with its Until), then each new one as it is stored. It never
// closes out. After a disconnection it resumes after the last message it
// delivered, so the messages stored meanwhile arrive (those expired or
// replaced since do not). Messages of this host's own origin (its echo)
// are skipped; invalid ones are counted and dropped. It returns nil when
// ctx ends.
//
// Nothing here decides: the receiving daemon applies its own checks to
// each message.
func (l *Link) Receive(ctx context.Context, out chan<- Message) error {
	var last uint64 // stream sequence of the last message delivered
	prefix := l.cfg.Name + "_" + nuid.Next()
	for serial := 1; ctx.Err() == nil; serial++ {
		if !l.waitConnected(ctx) {
			return nil
		}
		err := l.consume(ctx, fmt.Sprintf("%s_%d", prefix, serial), &last, out)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errReconnected) {
			continue // logged as the reconnection
		}
		l.states.set("receive", err.Error(), slog.LevelWarn, "fleet: receiving stopped; resuming after the last ban received", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// waitConnected waits until the connection is up; false when ctx ended.
func (l *Link) waitConnected(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !l.nc.IsConnected() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// consume makes a consumer that starts after *last (or with the last
// message of each subject, the first time) and delivers until an error:
// a missed heartbeat (a silent partition, a server gone), a gap in the
// delivery sequence, the consumer deleted.
func (l *Link) consume(ctx context.Context, name string, last *uint64, out chan<- Message) error {
	if err := l.ensureStream(ctx); err != nil {
		return err
	}
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     l.cfg.Bucket + ".>",
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if *last == 0 {
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	} else {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = *last + 1
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	cons, err := l.js.CreateConsumer(cctx, l.cfg.Bucket, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer func() {
		// Best effort: an ephemeral consumer also goes by itself after
		// InactiveThreshold.
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.js.DeleteConsumer(dctx, l.cfg.Bucket, name)
		cancel()
	}()
	it, err := cons.Messages(jetstream.PullHeartbeat(heartbeat), jetstream.PullExpiry(5*heartbeat), jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	l.states.set("receive", "ok", slog.LevelInfo, "fleet: receiving bans", "from_sequence", *last+1)
	// After a reconnection the consumer may be gone with the server that
	// held it (a restart, a failover): resume at once on a new one rather
	// than wait for missed heartbeats.
	nctx, stop := context.WithCancel(ctx)
	defer stop()
	up := l.nextUp()
	go func() {
		select {
		case <-up:
			stop()
		case <-nctx.Done():
		}
	}()
	var dseq uint64
	for {
		msg, err := it.Next(jetstream.NextContext(nctx))
		if err != nil {
			if ctx.Err() == nil && nctx.Err() != nil {
				return errReconnected
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Consumer != dseq+1 {
			return fmt.Errorf("delivery gap: %d after %d", meta.Sequence.Consumer, dseq)
		}
		dseq, *last = meta.Sequence.Consumer, meta.Sequence.Stream
		m, err := Decode(l.cfg.Bucket, msg.Subject(), msg.Data())
		if err != nil {
			l.invalid.Add(1)
			// One line for the first: the next ones, however they differ
			// (a flood of forged messages), are only counted.
			l.states.set("invalid", "refused", slog.LevelWarn, "fleet: refused an invalid message (further ones are counted)", "subject", msg.Subject(), "err", err)
			continue
		}
		if m.Origin == l.cfg.Name {
			continue // our own echo
		}
		m.Stored, m.Seq, m.Pending = meta.Timestamp, meta.Sequence.Stream, meta.NumPending
		select {
		case out <- m:
			l.received.Add(1)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errReconnected ends a consumer after a reconnection.
var errReconnected = errors.New("reconnected")

// Active returns what the stream holds: the last message of each
// (origin, key) whose Until has not passed, in stream order, this host's
// included. It is what `list --fleet` prints and what `unblock --fleet`
// reads to know how long a pardon must last.
func (l *Link) Active(ctx context.Context) ([]Message, error) {
	if !l.waitConnected(ctx) {
		return nil, fmt.Errorf("fleet: no server reachable: %w", ctx.Err())
	}
	if err := l.ensureStream(ctx); err != nil {
		return nil, err
	}
	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{l.cfg.Bucket + ".>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: read stream %s: %w", l.cfg.Bucket, err)
	}
	var out []Message
	if cons.CachedInfo().NumPending == 0 {
		return out, nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("fleet: read stream %s: %w", l.cfg.Bucket, err)
	}
	defer it.Stop()
	now := time.Now()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return out, fmt.Errorf("fleet: read stream %s: %w", l.cfg.Bucket, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return out, err
		}
		if m, err := Decode(l.cfg.Bucket, msg.Subject(), msg.Data()); err == nil && m.Until.After(now) {
			m.Stored, m.Seq = meta.Timestamp, meta.Sequence.Stream
			out = append(out, m)
		}
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}
