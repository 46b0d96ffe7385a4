// Package kafka is the bus.Bus of clustered Eddy, on Apache Kafka (or any
// broker that speaks its protocol) through franz-go. It has the semantics
// bus.go states; where bus.go leaves room it makes the choices of bus/memory
// except where noted:
//
//   - Topics: a bus topic is a Kafka topic of one partition (ordering per
//     action), created by EnsureTopic with the configured replication factor
//     (default min(3, brokers)) and max.message.bytes Config.MaxRecordBytes
//     (default 16 MiB); "already exists" is success. Names are
//     mapped by TopicName: names from whisk.TopicSafe that fit Kafka's 249
//     characters are used as they are, longer or foreign names get a hash
//     suffix. Offsets start at 0 and are consecutive (Kafka's, one
//     partition, no transactions). Records stay for the topic's retention
//     (the broker's log.retention settings), not until every group has
//     committed them as in bus/memory.
//   - Groups: Subscribe(topic, group) joins the Kafka consumer group
//     GroupID(topic, group) = "<group>@<kafka topic>", one group per topic so
//     that no action's queue rebalances another's. Autocommit is off; a
//     group that never committed starts at the earliest record the topic
//     holds (auto.offset.reset=earliest).
//   - Publish is a synchronous produce with acks=all through an idempotent
//     producer; it returns once the record is replicated to the in-sync
//     replicas. Publish to a missing topic fails with kind NotFound after a
//     couple of metadata look-ups (well under a second), never hangs; the
//     client never creates topics.
//   - Commit(offset) commits offset+1 (Kafka's "next to read") synchronously
//     under the consumer's group generation. As in bus/memory: a commit
//     below the group's committed position is a no-op, a commit of an offset
//     not yet published fails with kind Invalid, and a commit beyond what
//     was polled skips the records in between.
//   - A second Subscribe of a topic and group:
//     in the same Bus (process) it fails at once with kind Conflict, as in
//     bus/memory. From another Bus (another process) it joins the group
//     and waits until the group's balancer gives it the partition — when
//     the first consumer closes (it leaves the group) or dies (its session,
//     Config.SessionTimeout, expires) — or until ctx ends. This is what a
//     follower scheduler that wins the election needs: its Subscribe
//     returns as soon as the dead leader's session has expired, and it reads
//     from the last committed offset. The cooperative-sticky balancer keeps
//     the partition with the first consumer while the second waits.
//   - A consumer whose partition is taken from it (its session expired, for
//     example after a long network partition) fails as soon as it learns of
//     it, at its next heartbeat: Poll and Commit return kind Conflict, and
//     the caller must Close it and Subscribe again. So a consumer never
//     silently restarts from the committed offset; what it delivers in the
//     window before it learns (at most a heartbeat interval after it is
//     reachable again) may also be delivered by the new consumer, and
//     commits it makes then fail. Eddy deduplicates by activation id.
//   - Close of a consumer leaves the group at once (it does not wait for the
//     session timeout), so the group's next consumer starts at the last
//     committed offset; uncommitted records are delivered again. Close may
//     be called while Poll blocks in another goroutine; Poll then returns.
//   - Errors: Poll on a closed consumer fails with kind Invalid; Poll and
//     Commit after DeleteTopic (by this Bus, or noticed from the broker)
//     fail with kind NotFound; after Bus.Close every operation fails with
//     kind Unavailable; an unreachable cluster is kind Unavailable. Poll
//     returns ctx.Err() when ctx ends first.
//   - Publish does not copy the value (the produce completes before it
//     returns); records returned by Poll own their values.
//
// Operating notes: brokers should run with group.initial.rebalance.delay.ms=0
// (Kafka's default of 3 s delays every first Subscribe of a group) and
// group.min.session.timeout.ms at or below Config.SessionTimeout. Keep
// Config.SessionTimeout at or below the etcd lease TTL so that a dead
// leader's group session has expired by the time its follower wins the
// election.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Config configures a Bus. Brokers is required; zero values elsewhere take
// the defaults noted.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// ClientID names this process to the brokers (default "eddy").
	ClientID string
	// Log receives the client's warnings and errors (debug with a debug
	// handler). Nil discards.
	Log *slog.Logger
	// ReplicationFactor of the topics EnsureTopic creates (default
	// min(3, number of brokers)).
	ReplicationFactor int
	// ConnectTimeout bounds New's first contact with the cluster (default 5 s).
	ConnectTimeout time.Duration
	// SessionTimeout is how long a consumer that stopped heartbeating keeps
	// its group's partition (default 6 s, Kafka's smallest by default).
	SessionTimeout time.Duration
	// HeartbeatInterval of consumers (default 1 s): also how soon a waiting
	// Subscribe learns that the partition is free.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long a group waits for its members to rejoin
	// during a rebalance (default 10 s).
	RebalanceTimeout time.Duration
	// MaxRecordBytes is the largest record Publish sends, and the
	// max.message.bytes of the topics EnsureTopic creates (default 16 MiB:
	// a completion carries an activation record with up to 10 MB of logs
	// and a 1 MB result). Topics that already exist keep their setting.
	MaxRecordBytes int
	// PublishTimeout bounds one Publish when ctx has no earlier deadline, for
	// example while no broker answers (default 30 s).
	PublishTimeout time.Duration
	// Dial, if set, opens connections to brokers (for proxies, tests).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// TLS, if set, secures the connections to brokers; with a
	// certificate, for brokers that require client certificates (see
	// pki.Files.Config). Not with Dial.
	TLS *tls.Config
	// SASL, if set, authenticates this client to the brokers, e.g.
	// scram.Auth{User: u, Pass: p}.AsSha256Mechanism().
	SASL sasl.Mechanism
}

func (c *Config) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = "eddy"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = min(time.Second, c.SessionTimeout/3)
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 10 * time.Second
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 16 << 20
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
}

// commonOpts are the client options of the producer and of every consumer.
func (c *Config) commonOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithLogger(kgoLogger{c.Log}),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*50*time.Millisecond, time.Second)
		}),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	if c.Dial != nil {
		opts = append(opts, kgo.Dialer(c.Dial))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	return opts
}

// Bus is a bus.Bus on a Kafka cluster. It is safe for concurrent use.
type Bus struct {
	cfg  Config
	log  *slog.Logger
	cl   *kgo.Client // producer and admin requests
	adm  *kadm.Client
	repl int16 // replication factor of new topics
	// maxBytes is the max.message.bytes of new topics.
	maxBytes string

	mu        sync.Mutex
	closed    bool
	consumers map[subKey]*consumer // open consumers of this Bus
}

type subKey struct{ topic, group string }

var _ bus.Bus = (*Bus)(nil)

// New connects to the cluster. It fails with kind Unavailable when no broker
// answers within cfg.ConnectTimeout (or ctx's deadline, if earlier).
func New(ctx context.Context, cfg Config) (*Bus, error) {
	const op = "kafka.New"
	if len(cfg.Brokers) == 0 {
		return nil, whisk.E(op, whisk.Invalid, "", errors.New("no Kafka brokers configured"))
	}
	if cfg.Dial != nil && cfg.TLS != nil {
		return nil, whisk.E(op, whisk.Invalid, "", errors.New("the Dial and TLS settings exclude each other"))
	}
	cfg.setDefaults()
	opts := append(cfg.commonOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // also the idempotent producer's default
		kgo.ProducerLinger(0),
		kgo.UnknownTopicRetries(2),
		kgo.RecordDeliveryTimeout(cfg.PublishTimeout),
		kgo.ProducerBatchMaxBytes(int32(min(cfg.MaxRecordBytes, math.MaxInt32))),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, whisk.E(op, whisk.Invalid, "", fmt.Errorf("kafka client: %w", err))
	}
	adm := kadm.NewClient(cl)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	brokers, err := adm.ListBrokers(pctx)
	if err != nil {
		cl.Close()
		return nil, whisk.E(op, whisk.Unavailable, "",
			fmt.Errorf("no Kafka broker answered at %v within %v: %w", cfg.Brokers, cfg.ConnectTimeout, err))
	}
	repl := cfg.ReplicationFactor
	if repl <= 0 {
		repl = min(3, len(brokers))
	}
	b := &Bus{
		cfg: cfg, log: cfg.Log, cl: cl, adm: adm, repl: int16(max(repl, 1)),
		maxBytes:  strconv.Itoa(cfg.MaxRecordBytes),
		consumers: map[subKey]*consumer{},
	}
	b.log.Debug("kafka bus connected", "brokers", len(brokers), "replication", b.repl)
	return b, nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func errClosed(op string) error {
	return whisk.E(op, whisk.Unavailable, "", errors.New("bus closed"))
}

// EnsureTopic creates topic (one partition) if it does not exist, and waits
// until the cluster's metadata shows it.
func (b *Bus) EnsureTopic(ctx context.Context, topic string) error {
	const op = "kafka.EnsureTopic"
	if topic == "" {
		return whisk.E(op, whisk.Invalid, "", errors.New("empty topic name"))
	}
	if b.isClosed() {
		return errClosed(op)
	}
	name := TopicName(topic)
	configs := map[string]*string{"max.message.bytes": &b.maxBytes}
	// CreateTopics returns once the controller has the topic; brokers learn
	// of it shortly after. Wait so that Publish and Subscribe find it. A
	// topic being deleted still "exists" for CreateTopics: create again
	// until the new one shows.
	backoff := retry.New(10*time.Millisecond, 500*time.Millisecond)
	for {
		_, err := b.adm.CreateTopic(ctx, 1, b.repl, configs, name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return b.mapErr(op, ctx, err, "create topic "+name)
		}
		ok, err := b.topicExists(ctx, name)
		if err != nil {
			return b.mapErr(op, ctx, err, "topic metadata "+name)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff.Next()):
		}
	}
}

// topicExists reports whether the cluster's metadata has topic (a Kafka
// name) with a leader for its partition.
func (b *Bus) topicExists(ctx context.Context, name string) (bool, error) {
	td, err := b.adm.ListTopics(ctx, name)
	if err != nil {
		return false, err
	}
	d, ok := td[name]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) || errors.Is(d.Err, kerr.UnknownTopicID) {
		return false, nil
	}
	if d.Err != nil {
		return false, d.Err
	}
	for _, p := range d.Partitions {
		if p.Leader < 0 {
			return false, nil
		}
	}
	return len(d.Partitions) > 0, nil
}

// DeleteTopic deletes topic. Consumers of it in this Bus fail at once with
// kind NotFound; consumers elsewhere when their broker says the topic is gone.
func (b *Bus) DeleteTopic(ctx context.Context, topic string) error {
	const op = "kafka.DeleteTopic"
	if b.isClosed() {
		return errClosed(op)
	}
	name := TopicName(topic)
	_, err := b.adm.DeleteTopic(ctx, name)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.UnknownTopicID) {
		return b.mapErr(op, ctx, err, "delete topic "+name)
	}
	// Forget the topic's metadata and producer sequence numbers, so that
	// Publish fails promptly and a topic of the same name starts afresh.
	b.cl.PurgeTopicsFromClient(name)
	b.mu.Lock()
	var gone []*consumer
	for k, c := range b.consumers {
		if k.topic == topic {
			gone = append(gone, c)
		}
	}
	b.mu.Unlock()
	for _, c := range gone {
		c.fail(whisk.E("kafka.Poll", whisk.NotFound, "", fmt.Errorf("topic %s deleted", topic)))
	}
	return nil
}

// Publish appends value to topic and returns once the record is
// acknowledged by all in-sync replicas.
func (b *Bus) Publish(ctx context.Context, topic string, value []byte) error {
	const op = "kafka.Publish"
	if b.isClosed() {
		return errClosed(op)
	}
	if value == nil {
		value = []byte{} // a record with a nil value is a tombstone in Kafka
	}
	rec := &kgo.Record{Topic: TopicName(topic), Value: value}
	if err := b.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		if b.isClosed() {
			return errClosed(op)
		}
		return b.mapErr(op, ctx, err, "publish to "+topic)
	}
	return nil
}

// Subscribe opens a consumer of topic for group. See the package comment
// for what a second Subscribe of the same topic and group does.
func (b *Bus) Subscribe(ctx context.Context, topic, group string) (bus.Consumer, error) {
	return b.consume(ctx, "kafka.Subscribe", topic, group, false)
}

// consume opens a consumer of topic for group: a group member, or with
// direct a consumer of the partition outside the group (Assign). A second
// consumer of one topic and group in the Bus gets Conflict.
func (b *Bus) consume(ctx context.Context, op, topic, group string, direct bool) (bus.Consumer, error) {
	if group == "" {
		return nil, whisk.E(op, whisk.Invalid, "", errors.New("empty group name"))
	}
	key := subKey{topic, group}
	c := &consumer{b: b, topic: topic, name: TopicName(topic), group: group, direct: direct, assigned: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, errClosed(op)
	case b.consumers[key] != nil:
		b.mu.Unlock()
		return nil, whisk.E(op, whisk.Conflict, "", fmt.Errorf("topic %s already has a consumer for group %s", topic, group))
	}
	b.consumers[key] = c // reserved: a concurrent Subscribe gets Conflict
	b.mu.Unlock()

	if err := c.open(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every open consumer of the Bus (they leave their groups) and
// the producer. Later calls fail with kind Unavailable.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	open := make([]*consumer, 0, len(b.consumers))
	for _, c := range b.consumers {
		open = append(open, c)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range open {
		c.fail(errClosed("kafka.Poll"))
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	b.cl.Close()
	return nil
}

func (b *Bus) release(c *consumer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := subKey{c.topic, c.group}
	if b.consumers[k] == c {
		delete(b.consumers, k)
	}
}

// mapErr gives a client error its kind. what says what was being done.
func (b *Bus) mapErr(op string, ctx context.Context, err error, what string) error {
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("%s: %s: %w", op, what, ctx.Err())
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return whisk.E(op, whisk.NotFound, "", fmt.Errorf("%s: topic does not exist: %w", what, err))
	case errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidReplicationFactor),
		errors.Is(err, kerr.InvalidPartitions), errors.Is(err, kerr.MessageTooLarge),
		errors.Is(err, kerr.RecordListTooLarge):
		return whisk.E(op, whisk.Invalid, "", fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, kgo.ErrClientClosed):
		return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("%s: %w", what, err))
	}
	return whisk.E(op, whisk.Unavailable, "", fmt.Errorf("%s: %w", what, err))
}

// kgoLogger passes franz-go's log lines to slog.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
