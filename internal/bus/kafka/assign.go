package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-faas/eddy/internal/bus"
)

// Assign opens a consumer of topic's one partition that is no member of a
// consumer group: it starts at the offset group GroupID(topic, group) last
// committed (the earliest record when none) and commits there as a simple
// commit (generation -1), as Subscribe's consumer would, with the same
// Poll and Commit semantics. No group session stands between a dead
// consumer and its successor: a new leader queue reads at once, instead of
// waiting for the dead leader's session to expire (docs/internals.md,
// "Fast failover"). Nothing in Kafka keeps two such consumers apart: the
// caller must fence them itself (Eddy's leader queues are fenced by the
// epoch of their etcd leader key, and confirm it before each commit). A
// second Assign of a topic and group in the same Bus fails with kind
// Conflict, as Subscribe does.
func (b *Bus) Assign(ctx context.Context, topic, group string) (bus.Consumer, error) {
	return b.consume(ctx, "kafka.Assign", topic, group, true)
}

// openDirect reads the group's committed offset and consumes the partition
// from there.
func (c *consumer) openDirect(ctx context.Context) error {
	const op = "kafka.Assign"
	b := c.b
	offs, err := b.adm.FetchOffsets(ctx, GroupID(c.topic, c.group))
	if err == nil {
		err = offs.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		err, offs = nil, nil // never committed: from the start
	}
	if err != nil {
		return b.mapErr(op, ctx, err, "committed offset of "+c.topic)
	}
	start := kgo.NewOffset().AtStart()
	if o, ok := offs.Lookup(c.name, 0); ok && o.Err == nil && o.At >= 0 {
		start = kgo.NewOffset().At(o.At)
		c.committed = o.At
	}
	opts := append(b.cfg.commonOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.name: {0: start}}),
		kgo.KeepRetryableFetchErrors(), // to notice a deleted topic
		kgo.FetchMaxWait(time.Second),
	)
	return c.newClient(op, opts)
}

// commitDirect commits offset+1 for the group as a simple commit.
func (c *consumer) commitDirect(ctx context.Context, offset int64) error {
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: c.name, Partition: 0, At: offset + 1, LeaderEpoch: -1})
	resp, err := c.b.adm.CommitOffsets(ctx, GroupID(c.topic, c.group), os)
	if err != nil {
		return err
	}
	return resp.Error()
}
