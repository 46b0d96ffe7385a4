package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// leaveTimeout bounds the LeaveGroup request of Close, so that Close
// returns even when no broker answers (the session then expires instead).
const leaveTimeout = 5 * time.Second

// consumer is a member of the Kafka group GroupID(topic, group), consuming
// the topic's one partition.
type consumer struct {
	b     *Bus
	topic string // the bus name, as Records carry it
	name  string // the Kafka name
	group string
	// direct: the consumer reads the partition itself (Assign), no member
	// of any group; it starts at the group's committed offset and commits
	// to it as a simple commit.
	direct bool
	cl     *kgo.Client // set by open

	// ctx is cancelled, with the reason, when the consumer closes or fails:
	// a blocked Poll returns.
	ctx    context.Context
	cancel context.CancelCauseFunc

	assigned     chan struct{} // closed when the partition is assigned
	assignedOnce sync.Once

	mu        sync.Mutex
	closed    bool  // by Close
	failure   error // why the consumer can no longer be used (not Close)
	next      int64 // offset after the last record Poll returned; -1 before the first
	committed int64 // the group's committed "next to read"; -1 when unknown
}

func (c *consumer) open(ctx context.Context) error {
	const op = "kafka.Subscribe"
	b := c.b
	ok, err := b.topicExists(ctx, c.name)
	if err != nil {
		return b.mapErr(op, ctx, err, "topic metadata "+c.name)
	}
	if !ok {
		return whisk.E(op, whisk.NotFound, "", fmt.Errorf("topic %s does not exist", c.topic))
	}
	c.next, c.committed = -1, -1
	if c.direct {
		return c.openDirect(ctx)
	}
	cfg := &b.cfg
	opts := append(cfg.commonOpts(),
		kgo.ConsumerGroup(GroupID(c.topic, c.group)),
		kgo.ConsumeTopics(c.name),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.KeepRetryableFetchErrors(), // to notice a deleted topic
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onRevoked),
	)
	if err := c.newClient(op, opts); err != nil {
		return err
	}
	// The client joins the group in the background; wait for the partition.
	select {
	case <-c.assigned:
		return nil
	case <-c.ctx.Done():
		return context.Cause(c.ctx)
	case <-ctx.Done():
		return whisk.E(op, whisk.Timeout, "",
			fmt.Errorf("topic %s group %s: still waiting for the partition (another consumer holds it): %w", c.topic, c.group, ctx.Err()))
	}
}

// newClient makes the consumer's client with opts.
func (c *consumer) newClient(op string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return whisk.E(op, whisk.Invalid, "", fmt.Errorf("kafka consumer: %w", err))
	}
	c.mu.Lock()
	c.cl = cl
	c.mu.Unlock()
	return nil
}

func (c *consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	if len(assigned[c.name]) > 0 {
		c.assignedOnce.Do(func() { close(c.assigned) })
	}
}

// onRevoked fails the consumer when the group takes its partition (also on
// Close, when the failure no longer matters).
func (c *consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked[c.name]) == 0 {
		return
	}
	c.fail(whisk.E("kafka.Poll", whisk.Conflict, "",
		fmt.Errorf("topic %s group %s: the group gave the partition to another consumer", c.topic, c.group)))
}

// fail makes every later Poll and Commit return err; a blocked Poll returns.
func (c *consumer) fail(err error) {
	c.mu.Lock()
	if c.failure == nil && !c.closed {
		c.failure = err
	}
	c.mu.Unlock()
	c.cancel(err)
}

// state returns the error Poll and Commit return now, if any.
func (c *consumer) state(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failure != nil: // before closed: Bus.Close fails, then closes
		return c.failure
	case c.closed:
		return whisk.E(op, whisk.Invalid, "", errors.New("consumer closed"))
	}
	return nil
}

// Notify returns true: a Kafka consumer cannot call back, so its reader
// blocks in Poll.
func (c *consumer) Notify(func()) (ready bool) { return true }

// Poll returns the next records in order, blocking until there is one.
func (c *consumer) Poll(ctx context.Context, limit int) ([]bus.Record, error) {
	const op = "kafka.Poll"
	if err := c.state(op); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	if limit <= 0 {
		limit = -1
	}
	for {
		fetches := c.cl.PollRecords(pctx, limit)
		if err := c.state(op); err != nil {
			return nil, err
		}
		var ferr error
		fetches.EachError(func(topic string, _ int32, err error) {
			switch {
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			case errors.Is(err, kgo.ErrClientClosed):
				ferr = whisk.E(op, whisk.Invalid, "", errors.New("consumer closed"))
			case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
				// The topic may be gone; or metadata lags (a new topic).
				if ok, lerr := c.b.topicExists(pctx, c.name); lerr == nil && !ok {
					gone := whisk.E(op, whisk.NotFound, "", fmt.Errorf("topic %s deleted", c.topic))
					c.fail(gone)
					ferr = gone
				}
			case kerr.IsRetriable(err):
				// Leader moves and the like: the client recovers.
			default:
				c.b.log.Warn("kafka fetch error", "topic", topic, "err", err)
				ferr = whisk.E(op, whisk.Unavailable, "", fmt.Errorf("fetch %s: %w", c.topic, err))
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		// (ctx is checked after the records are taken, below.)
		out := make([]bus.Record, 0, fetches.NumRecords())
		c.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic != c.name || r.Offset < c.next {
				return // skipped by a Commit beyond what was polled
			}
			out = append(out, bus.Record{Topic: c.topic, Offset: r.Offset, Value: r.Value})
			c.next = r.Offset + 1
		})
		c.mu.Unlock()
		// Records the client handed over are returned even when ctx ended
		// meanwhile: the client's position has moved past them, so dropping
		// them here would skip them for good.
		if len(out) > 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Commit commits offset+1 for the group, synchronously.
func (c *consumer) Commit(ctx context.Context, offset int64) error {
	const op = "kafka.Commit"
	if err := c.state(op); err != nil {
		return err
	}
	c.mu.Lock()
	next, committed := c.next, c.committed
	c.mu.Unlock()
	if committed < 0 {
		if o, ok := c.cl.CommittedOffsets()[c.name][0]; ok {
			committed = o.Offset
		}
	}
	if offset+1 <= committed {
		return nil // commits never move back
	}
	skip := offset >= next
	if skip {
		// Beyond what was polled: the offset must exist.
		ends, err := c.b.adm.ListEndOffsets(ctx, c.name)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return c.b.mapErr(op, ctx, err, "end offset of "+c.topic)
		}
		end, ok := ends.Lookup(c.name, 0)
		if !ok {
			return whisk.E(op, whisk.NotFound, "", fmt.Errorf("topic %s does not exist", c.topic))
		}
		if offset >= end.Offset {
			return whisk.E(op, whisk.Invalid, "", fmt.Errorf("commit of offset %d beyond the end of topic %s (%d)", offset, c.topic, end.Offset))
		}
	}
	commit := c.commitGroup
	if c.direct {
		commit = c.commitDirect
	}
	if cerr := commit(ctx, offset); cerr != nil {
		if err := c.state(op); err != nil {
			return err
		}
		switch {
		case errors.Is(cerr, kerr.IllegalGeneration), errors.Is(cerr, kerr.UnknownMemberID),
			errors.Is(cerr, kerr.RebalanceInProgress), errors.Is(cerr, kerr.FencedInstanceID):
			return whisk.E(op, whisk.Conflict, "", fmt.Errorf("commit to %s: no longer the group's consumer: %w", c.topic, cerr))
		}
		return c.b.mapErr(op, ctx, cerr, "commit to "+c.topic)
	}
	c.mu.Lock()
	c.committed = max(c.committed, offset+1)
	if skip && c.next < offset+1 {
		c.next = offset + 1
		c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.name: {0: {Epoch: -1, Offset: offset + 1}}})
	}
	c.mu.Unlock()
	return nil
}

// commitGroup commits offset+1 under the consumer's group generation.
func (c *consumer) commitGroup(ctx context.Context, offset int64) error {
	var cerr error
	c.cl.CommitOffsetsSync(ctx,
		map[string]map[int32]kgo.EpochOffset{c.name: {0: {Epoch: -1, Offset: offset + 1}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						cerr = err
						return
					}
				}
			}
		})
	return cerr
}

// Close leaves the group; its next consumer starts after the last commit.
func (c *consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cl := c.cl
	c.mu.Unlock()
	c.cancel(errors.New("consumer closed"))
	if cl != nil {
		if !c.direct { // Assign's consumer is in no group
			ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			if err := cl.LeaveGroupContext(ctx); err != nil {
				c.b.log.Warn("kafka: leaving the group", "topic", c.topic, "group", c.group, "err", err)
			}
			cancel()
		}
		cl.Close()
	}
	c.b.release(c)
	return nil
}
