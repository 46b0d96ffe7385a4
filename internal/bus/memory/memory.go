// Package memory is the in-process bus.Bus of standalone Eddy: topics are
// slices of records in memory, with Kafka's semantics as bus.go states them.
// Open makes it durable: every change is written ahead to a log on disk
// (wal.go), and a Publish returns once its record is there, so records
// accepted before a crash (kill -9 included) are there after a restart.
// New's bus keeps nothing.
//
// Choices this implementation makes where bus.go leaves room:
//   - Offsets of a topic start at 0 and are consecutive.
//   - A second Subscribe of a topic for a group that already has an open
//     consumer fails at once with an error of kind Conflict.
//   - A group that subscribes to a topic for the first time starts at the
//     oldest record the topic still holds (Kafka's auto.offset.reset=earliest):
//     it does not see records trimmed before it subscribed.
//   - Records are dropped once every group that has ever subscribed to the
//     topic has committed them. Records published before any group
//     subscribed are kept until one does and commits them; a group that
//     subscribes but never commits keeps everything from where it started.
//   - Commit of an offset below the group's committed position is a no-op
//     (commits never move back); Commit of an offset not yet published fails
//     with kind Invalid; Commit beyond what the consumer has polled skips the
//     records in between.
//   - Publish copies the value; records returned by Poll share memory with
//     the topic and must not be modified.
//   - Poll on a closed consumer fails with kind Invalid; Poll and Commit
//     after DeleteTopic fail with kind NotFound; after Bus.Close every
//     operation fails with kind Unavailable. Poll returns ctx.Err() when ctx
//     ends first.
//   - Close of a consumer may be called from another goroutine while Poll
//     blocks; Poll then returns.
//   - A consumer can call back instead of blocking (Notify): its reader need
//     not keep a goroutine waiting in Poll while the topic is quiet.
//
// Publish and Poll take one mutex per topic and allocate only the copy of the
// value and the slice Poll returns; a blocked Poll waits on its consumer's
// wake channel, which Publish signals without blocking.
package memory

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Bus is an in-memory bus.Bus. It is safe for concurrent use.
type Bus struct {
	log    *slog.Logger
	mu     sync.RWMutex
	topics map[string]*topic
	closed bool
	wal    *wal // the write-ahead log of a durable bus (Open); nil for New's

	track  string                  // Options.Track
	wait   func(topic string) bool // Options.Wait
	doneMu sync.Mutex
	done   doneRing
}

var _ bus.Bus = (*Bus)(nil)

// New returns an empty bus.
func New(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{log: log, topics: map[string]*topic{}}
}

// topic is one log. All fields are guarded by mu.
type topic struct {
	b       *Bus
	name    string
	mu      sync.Mutex
	base    int64    // offset of values[head]
	head    int      // values[:head] are trimmed (nil)
	values  [][]byte // values[head:] are records base, base+1, ...
	groups  map[string]*group
	deleted bool // by DeleteTopic
	closed  bool // by Bus.Close
}

// group is a consumer group's state in one topic.
type group struct {
	next   int64     // first offset not committed
	active *consumer // the open consumer, if any
}

// end is the offset the next published record gets.
func (t *topic) end() int64 { return t.base + int64(len(t.values)-t.head) }

func (t *topic) failure(op string) error {
	switch {
	case t.closed:
		return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("bus closed"))
	case t.deleted:
		return whisk.E(op, whisk.NotFound, "", fmt.Errorf("topic %s deleted", t.name))
	}
	return nil
}

// trim drops the records every group has committed. Called with t.mu held.
func (t *topic) trim() {
	if len(t.groups) == 0 {
		return
	}
	low := t.end()
	for _, g := range t.groups {
		low = min(low, g.next)
	}
	n := int(low - t.base)
	if n <= 0 {
		return
	}
	clear(t.values[t.head : t.head+n]) // let the values be collected now
	t.head += n
	t.base = low
	switch live := len(t.values) - t.head; {
	case live == 0:
		// Reuse the array from its start; shrink it after a burst.
		if cap(t.values) > maxIdleCap {
			t.values = nil
		} else {
			t.values = t.values[:0]
		}
		t.head = 0
	case t.head >= minCompact && t.head >= live:
		// Mostly trimmed: move the live records to the front (amortized O(1)).
		copy(t.values, t.values[t.head:])
		clear(t.values[live:])
		t.values = t.values[:live]
		t.head = 0
	}
}

// Trimming keeps a topic's array of records compact: when at least
// minCompact records at its front are trimmed and they outnumber the live
// ones, the live ones move to the front; an empty array larger than
// maxIdleCap is released.
const (
	minCompact = 256
	maxIdleCap = 4096
)

// wakeAll signals every open consumer of t. Called with t.mu held.
func (t *topic) wakeAll() {
	for _, g := range t.groups {
		if g.active != nil {
			g.active.wake()
		}
	}
}

func (b *Bus) lookup(op, name string) (*topic, error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, whisk.E(op, whisk.Unavailable, "", fmt.Errorf("bus closed"))
	}
	if !ok {
		return nil, whisk.E(op, whisk.NotFound, "", fmt.Errorf("topic %s does not exist", name))
	}
	return t, nil
}

// EnsureTopic creates topic if it does not exist.
func (b *Bus) EnsureTopic(ctx context.Context, name string) error {
	const op = "memory.EnsureTopic"
	if name == "" {
		return whisk.E(op, whisk.Invalid, "", fmt.Errorf("empty topic name"))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("bus closed"))
	}
	if _, ok := b.topics[name]; !ok {
		if err := b.logged(&walEntry{kind: walTopic, topic: name}); err != nil {
			return err
		}
		b.topics[name] = &topic{b: b, name: name, groups: map[string]*group{}}
	}
	return nil
}

// DeleteTopic removes topic and its records; its open consumers fail.
func (b *Bus) DeleteTopic(ctx context.Context, name string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return whisk.E("memory.DeleteTopic", whisk.Unavailable, "", fmt.Errorf("bus closed"))
	}
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return nil
	}
	if err := b.logged(&walEntry{kind: walDelete, topic: name}); err != nil {
		b.mu.Unlock()
		return err
	}
	delete(b.topics, name)
	b.mu.Unlock()
	t.mu.Lock()
	t.deleted = true
	t.values, t.head = nil, 0
	t.wakeAll()
	t.mu.Unlock()
	return nil
}

// Publish appends a copy of value to topic. On a durable bus it returns
// once the record is on disk (or ctx ended: the record may then be lost
// with the process).
func (b *Bus) Publish(ctx context.Context, name string, value []byte) error {
	const op = "memory.Publish"
	t, err := b.lookup(op, name)
	if err != nil {
		return err
	}
	v := make([]byte, len(value))
	copy(v, value)
	t.mu.Lock()
	if err := t.failure(op); err != nil {
		t.mu.Unlock()
		return err
	}
	synced, err := b.logPublish(name, v)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	t.values = append(t.values, v)
	t.wakeAll()
	t.mu.Unlock()
	if synced != nil {
		return synced(ctx)
	}
	return nil
}

// Subscribe opens a consumer of topic for group. It fails with kind
// Conflict while another consumer of the same topic and group is open.
func (b *Bus) Subscribe(ctx context.Context, name, groupName string) (bus.Consumer, error) {
	const op = "memory.Subscribe"
	t, err := b.lookup(op, name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.failure(op); err != nil {
		return nil, err
	}
	g, ok := t.groups[groupName]
	if !ok {
		if err := b.logged(&walEntry{kind: walGroup, topic: name, group: groupName, offset: t.base}); err != nil {
			return nil, err
		}
		g = &group{next: t.base}
		t.groups[groupName] = g
	}
	if g.active != nil {
		return nil, whisk.E(op, whisk.Conflict, "", fmt.Errorf("topic %s already has a consumer for group %s", name, groupName))
	}
	c := &consumer{t: t, g: g, group: groupName, pos: g.next, wakeCh: make(chan struct{}, 1)}
	g.active = c
	return c, nil
}

// Close closes the bus: every open consumer fails, and so does every later call.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	topics := b.topics
	b.topics = nil
	b.mu.Unlock()
	for _, t := range topics {
		t.mu.Lock()
		t.closed = true
		t.values, t.head = nil, 0
		t.wakeAll()
		t.mu.Unlock()
	}
	if b.wal != nil {
		b.wal.close()
	}
	return nil
}

// consumer reads one topic for one group. pos and closed are guarded by t.mu.
type consumer struct {
	t      *topic
	g      *group
	group  string
	pos    int64 // next offset to deliver
	closed bool
	wakeCh chan struct{} // capacity 1: "something changed, look again"
	notify func()        // Notify's callback, called (once) by the next wake
}

func (c *consumer) wake() {
	if f := c.notify; f != nil {
		c.notify = nil
		f()
	}
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

// ready says a Poll would not block. Called with t.mu held.
func (c *consumer) ready() bool {
	t := c.t
	return t.closed || t.deleted || c.closed || t.end() > max(c.pos, t.base)
}

// Notify arranges for f to be called once when a Poll would not block
// (records are available, or the consumer, its topic or the bus is
// closed), and returns false; or returns true at once, without keeping f,
// if a Poll would not block now. f is called with the topic's lock held,
// from the goroutine that published or closed: it must return at once and
// must not call the consumer. A later Notify replaces f; a Poll drops it.
func (c *consumer) Notify(f func()) (ready bool) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.ready() {
		c.notify = nil
		return true
	}
	c.notify = f
	return false
}

// Poll returns the next records, blocking until there is at least one.
func (c *consumer) Poll(ctx context.Context, limit int) ([]bus.Record, error) {
	const op = "memory.Poll"
	t := c.t
	for {
		t.mu.Lock()
		c.notify = nil
		if err := t.failure(op); err != nil {
			t.mu.Unlock()
			return nil, err
		}
		if c.closed {
			t.mu.Unlock()
			return nil, whisk.E(op, whisk.Invalid, "", fmt.Errorf("consumer closed"))
		}
		c.pos = max(c.pos, t.base) // the group may have committed past it
		if n := t.end() - c.pos; n > 0 {
			if limit > 0 && n > int64(limit) {
				n = int64(limit)
			}
			out := make([]bus.Record, n)
			i := t.head + int(c.pos-t.base)
			for k := range out {
				out[k] = bus.Record{Topic: t.name, Offset: c.pos + int64(k), Value: t.values[i+k]}
			}
			c.pos += n
			t.mu.Unlock()
			return out, nil
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.wakeCh:
		}
	}
}

// Commit marks every record up to and including offset done for the group.
func (c *consumer) Commit(ctx context.Context, offset int64) error {
	const op = "memory.Commit"
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.failure(op); err != nil {
		return err
	}
	if c.closed {
		return whisk.E(op, whisk.Invalid, "", fmt.Errorf("consumer closed"))
	}
	if offset >= t.end() {
		return whisk.E(op, whisk.Invalid, "", fmt.Errorf("commit of offset %d beyond the end of topic %s (%d)", offset, t.name, t.end()))
	}
	if offset < c.g.next {
		return nil
	}
	if err := t.b.logged(&walEntry{kind: walCommit, topic: t.name, group: c.group, offset: offset}); err != nil {
		return err
	}
	t.b.noteDone(t, c.group, c.g.next, offset)
	c.g.next = offset + 1
	c.pos = max(c.pos, c.g.next)
	t.trim()
	return nil
}

// Close stops the consumer; the group's next consumer starts after the last
// committed record. A Poll blocked in another goroutine returns.
func (c *consumer) Close() error {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.g.active == c {
		c.g.active = nil
	}
	c.wake()
	return nil
}
