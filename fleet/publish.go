package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Publishing limits.
const (
	// DefaultQueue bounds the bans waiting to be published: the local
	// valve (bans.max_new_per_minute) keeps far fewer coming while a
	// server is away.
	DefaultQueue = 4096
	// publishRetryMax caps the pause between retries of one publish.
	publishRetryMax = time.Second
	// closeGrace is how long Close keeps publishing what is queued.
	closeGrace = 2 * time.Second
	// publishTimeout bounds one try: a lost ack is retried (with the same
	// message id) rather than waited for.
	publishTimeout = 2 * time.Second
)

// Publisher is the action that publishes the daemon's own ban decisions
// to the fleet. Act never blocks the daemon's loop: it puts the message
// in a bounded queue that one goroutine drains, publishing each message
// until the server has stored it, with the same message id on every try
// (the stream stores it once) and the TTL computed anew from Until on
// every try; a message whose ban has ended by then is dropped. Decisions
// other than bans are not published, and neither is anything received
// from the fleet, since that never passes through the daemon's door.
type Publisher struct {
	l    *Link
	q    chan Message
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// again takes the one list of Republish, once its loader is done;
	// loading is that loader's goroutine.
	again   chan []Message
	loading sync.WaitGroup
	// ctx ends closeGrace after Close: publishing gives up then.
	ctx    context.Context
	cancel context.CancelFunc
	clock  func() time.Time
}

// Publisher starts the goroutine that publishes this host's bans, with
// room for DefaultQueue of them. Close stops it.
func (l *Link) Publisher() *Publisher { return l.newPublisher(DefaultQueue) }

func (l *Link) newPublisher(queue int) *Publisher {
	p := &Publisher{l: l, q: make(chan Message, queue), stop: make(chan struct{}), done: make(chan struct{}),
		again: make(chan []Message, 1), clock: time.Now}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	l.states.init("queue", "ok")
	l.states.init("publish", "ok")
	go p.run()
	return p
}

// Act queues a ban decision for publishing. It returns at once; a full
// queue drops the decision (counted, and logged once until there is room
// again).
func (p *Publisher) Act(d *rules.Decision) error {
	if d.Action != rules.Ban {
		return nil
	}
	p.Enqueue(FromDecision(p.l.cfg.Name, d, p.clock()))
	return nil
}

// Enqueue queues m for publishing, without blocking; see Act.
func (p *Publisher) Enqueue(m Message) {
	select {
	case p.q <- m:
		p.l.states.set("queue", "ok", slog.LevelInfo, "fleet: publish queue has room again")
	default:
		p.l.dropped.Add(1)
		p.l.states.set("queue", "full", slog.LevelError, "fleet: publish queue full; bans are dropped, not published", "queue", cap(p.q))
	}
}

// Republish publishes again bans this host decided before it started:
// those a stop left queued while no server was reachable (Close drops
// them), or that the stream lost. load returns them; it runs on a
// goroutine of its own, since it may read a long journal. Each is
// published only if the stream holds no message of its (origin, key),
// so that what the stream has (the same ban, a later one, a pardon) is
// never replaced, and the others cost one refused publish each. They go
// out after the bans Act queues, and between them: a new ban waits for
// one of them at most. Call it once, before Close; those left at Close
// are logged, and the next start tries them again.
func (p *Publisher) Republish(load func() []Message) {
	p.loading.Add(1)
	go func() {
		defer p.loading.Done()
		ms := load()
		select {
		case p.again <- ms:
		case <-p.stop:
		}
	}()
}

// Close stops the publisher: what is still queued gets closeGrace to be
// published, then is dropped (counted and logged). It waits for the
// goroutines, so none outlives the daemon. Safe to call more than once.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		close(p.stop)
		grace := time.AfterFunc(closeGrace, p.cancel)
		<-p.done
		grace.Stop()
		p.cancel()
		p.loading.Wait()
	})
	<-p.done
	return nil
}

func (p *Publisher) run() {
	defer close(p.done)
	var again []Message
	var stored, held int
	// cut counts the bans whose publish the stop's grace ended, left
	// those of again.
	var cut, left int
	for {
		if len(again) > 0 {
			select {
			case m := <-p.q:
				cut += p.cutShort(p.publish(&m, false))
				continue
			case <-p.stop:
				p.stopping(cut, left+len(again))
				return
			default:
			}
			m := again[0]
			again = again[1:]
			switch o := p.publish(&m, true); o {
			case published:
				stored++
			case present:
				held++
			default:
				left += p.cutShort(o)
			}
			if len(again) == 0 {
				p.l.log.Info("fleet: bans from before the start published again where the stream had none",
					"published", stored, "already_there", held)
			}
			continue
		}
		select {
		case m := <-p.q:
			cut += p.cutShort(p.publish(&m, false))
		case again = <-p.again:
		case <-p.stop:
			p.stopping(cut, left)
			return
		}
	}
}

// cutShort is 1 when a publish ended as dropped because the stop's grace
// ran out, 0 otherwise.
func (p *Publisher) cutShort(o outcome) int {
	if o == dropped && p.ctx.Err() != nil {
		return 1
	}
	return 0
}

// stopping publishes what is queued, within the grace, and counts the
// rest dropped. cut bans were being published when the grace ran out;
// left bans of Republish were not published.
func (p *Publisher) stopping(cut, left int) {
	for len(p.q) > 0 && p.ctx.Err() == nil {
		m := <-p.q
		cut += p.cutShort(p.publish(&m, false))
	}
	if n := len(p.q); n > 0 || cut > 0 {
		p.l.dropped.Add(uint64(n))
		p.l.log.Warn("fleet: bans not published before stopping", "count", n+cut)
	}
	if left > 0 {
		p.l.log.Warn("fleet: bans from before the start not published again before stopping; the next start tries them", "count", left)
	}
}

// outcome is how a publish ended.
type outcome int

const (
	published outcome = iota
	// present: the stream had a message of the (origin, key) already,
	// which a publish ifAbsent leaves.
	present
	dropped
)

// publish sends m until the server stores it, m's ban ends, or Close's
// grace runs out. ifAbsent publishes only if the stream holds no message
// of m's (origin, key).
func (p *Publisher) publish(m *Message, ifAbsent bool) outcome {
	data, err := m.Encode()
	if err != nil {
		p.l.dropped.Add(1)
		p.l.log.Error("fleet: cannot encode a ban", "source", m.Key, "err", err)
		return dropped
	}
	subject := Subject(p.l.cfg.Bucket, m.Origin, m.Key)
	id := msgID(m)
	pause := 100 * time.Millisecond
	noStream := 0
	for {
		up := p.l.nextUp()
		left := m.Until.Sub(p.clock())
		if left < time.Second {
			// Ended (or too close to its end to be worth a message)
			// before a server took it.
			p.l.dropped.Add(1)
			return dropped
		}
		err := p.publishOnce(p.ctx, subject, id, data, ttlOf(left), ifAbsent)
		if ifAbsent && wrongLastSequence(err) {
			// The stream has a message of this (origin, key): this
			// ban, stored before, or what came after it.
			return present
		}
		// No stream answering is what a leader election looks like for a
		// few seconds; for longer, the stream may have been deleted, and
		// the next try looks for it (and makes it) again.
		if noStream++; !errors.Is(err, jetstream.ErrNoStreamResponse) {
			noStream = 0
		} else if noStream >= 10 {
			p.l.forgetStream()
			noStream = 0
		}
		if err == nil {
			p.l.published.Add(1)
			p.l.states.set("publish", "ok", slog.LevelInfo, "fleet: publishing again")
			return published
		}
		if p.ctx.Err() != nil {
			p.l.dropped.Add(1)
			return dropped
		}
		p.l.states.set("publish", "failing", slog.LevelWarn, "fleet: cannot publish; retrying with the same message id", "err", err)
		select {
		case <-time.After(pause):
			pause = min(2*pause, publishRetryMax)
		case <-up:
			pause = 100 * time.Millisecond // a server is back: try now
		case <-p.ctx.Done():
			p.l.dropped.Add(1)
			return dropped
		}
	}
}

func (p *Publisher) publishOnce(ctx context.Context, subject, id string, data []byte, ttl time.Duration, ifAbsent bool) error {
	if !p.l.nc.IsConnected() {
		return nats.ErrConnectionReconnecting
	}
	if err := p.l.ensureStream(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	// A new header each try: the TTL changes.
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id), jetstream.WithMsgTTL(ttl), jetstream.WithExpectStream(p.l.cfg.Bucket)}
	if ifAbsent {
		// Sequence 0: the subject must hold no message.
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(0))
	}
	_, err := p.l.js.PublishMsg(ctx, msg, opts...)
	return err
}

// wrongLastSequence reports whether err is the server refusing a publish
// whose subject does not hold the expected last sequence; a clustered
// stream says it with a code of its own.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ttlOf is a message TTL for a ban with left to run: whole seconds (the
// server's unit), rounded up so that the message never disappears before
// the ban ends, at least one.
func ttlOf(left time.Duration) time.Duration {
	s := (left + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

// PublishPardon publishes a pardon of key by this host, decided at at,
// and waits until the server has stored it. keep is how long the pardon
// stays in the stream: at least as long as the longest ban of key it
// overrides, so that a host starting later does not apply those.
func (l *Link) PublishPardon(ctx context.Context, key netip.Prefix, at time.Time, keep time.Duration) error {
	m := Message{Kind: KindPardon, Origin: l.cfg.Name, Key: key, Decided: at, Until: at.Add(ttlOf(keep))}
	data, err := m.Encode()
	if err != nil {
		return err
	}
	if err := l.ensureStream(ctx); err != nil {
		return err
	}
	msg := &nats.Msg{Subject: Subject(l.cfg.Bucket, m.Origin, m.Key), Data: data, Header: nats.Header{}}
	_, err = l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID(&m)), jetstream.WithMsgTTL(ttlOf(keep)), jetstream.WithExpectStream(l.cfg.Bucket))
	if err != nil {
		return fmt.Errorf("fleet: publish pardon of %s: %w", key, err)
	}
	l.published.Add(1)
	return nil
}
