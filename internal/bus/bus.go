// Package bus defines Eddy's message bus: named topics of records, consumed
// by groups that commit how far they got. Implementations: bus/memory for
// standalone, bus/kafka for clusters; bus/bustest is the contract suite every
// implementation passes.
//
// Semantics (Kafka's, so both implementations agree):
//   - a topic is an ordered log; Publish appends and returns once the record
//     is stored (acknowledged);
//   - a Consumer reads a topic on behalf of a group; its first Poll starts
//     after the group's last committed record (or at the start of the log
//     when the group never committed);
//   - Commit(r) marks every record of the group up to and including r done;
//     records polled but not committed are delivered again to the next
//     consumer of the group (after Close, or after a crash);
//   - at most one consumer per topic and group is active at once; a second
//     Subscribe with the same group waits until the first is closed or fails
//     with an error of kind Conflict (implementation's choice, documented there).
package bus

import "context"

// Record is one message on a topic.
type Record struct {
	Topic  string
	Offset int64
	Value  []byte
}

// Producer publishes records.
type Producer interface {
	// Publish appends value to topic. The topic must exist (EnsureTopic);
	// otherwise the error has kind NotFound.
	Publish(ctx context.Context, topic string, value []byte) error
}

// Bus is a message bus.
type Bus interface {
	Producer
	// EnsureTopic creates topic if it does not exist. Idempotent.
	EnsureTopic(ctx context.Context, topic string) error
	// DeleteTopic removes topic and its records; open consumers of it get
	// an error from Poll. Deleting a missing topic is not an error.
	DeleteTopic(ctx context.Context, topic string) error
	// Subscribe opens a consumer of topic for group. The topic must exist.
	Subscribe(ctx context.Context, topic, group string) (Consumer, error)
	// Close releases the bus; open consumers fail.
	Close() error
}

// Consumer reads one topic for one group. A Consumer is used by one
// goroutine at a time.
type Consumer interface {
	// Poll blocks until at least one record is available, ctx is done, or
	// the consumer or its topic is closed. It returns the next records in
	// order (at most max, if max > 0).
	Poll(ctx context.Context, max int) ([]Record, error)
	// Notify is for a reader that keeps no goroutine blocked in Poll while
	// nothing is there: it returns false and calls f once, later, when a
	// Poll would not block (records came, or the consumer, its topic or the
	// bus closed); or it returns true, keeping no f, when Poll should be
	// called now. A consumer that cannot call back (Kafka's) always returns
	// true: its Poll blocks as usual. f must return at once and must not
	// call the consumer; a later Notify replaces it, a Poll drops it.
	Notify(f func()) (ready bool)
	// Commit marks every record up to and including offset as done for the group.
	Commit(ctx context.Context, offset int64) error
	// Close stops the consumer; uncommitted records go to the next consumer.
	Close() error
}
