package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/bustest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// brokers are the addresses of the kfake cluster every test shares (topic
// names are unique per test).
var brokers []string

func TestMain(m *testing.M) {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(3),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	brokers = cluster.ListenAddrs()
	code := m.Run()
	cluster.Close()
	os.Exit(code)
}

// testConfig has short timeouts so that group hand-overs take little time.
func testConfig() Config {
	return Config{
		Brokers:           brokers,
		ClientID:          "eddy-test",
		SessionTimeout:    time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
	}
}

func newBus(t testing.TB, cfg Config) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus { return newBus(t, testConfig()) })
}

func TestNewFailsFast(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = New(t.Context(), Config{Brokers: []string{addr}, ConnectTimeout: time.Second})
	if !whisk.IsKind(err, whisk.Unavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("New with no broker: %v, want kind Unavailable naming %s", err, addr)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("New took %v to fail", el)
	}
	if _, err := New(t.Context(), Config{}); !whisk.IsKind(err, whisk.Invalid) {
		t.Fatalf("New with no brokers: %v, want kind Invalid", err)
	}
}

func TestTopicName(t *testing.T) {
	for _, name := range []string{"action-guest-hello", "a.b_c-D9", strings.Repeat("x", 249)} {
		if got := TopicName(name); got != name {
			t.Errorf("TopicName(%q) = %q, want it unchanged", name, got)
		}
	}
	long := "action-" + strings.Repeat("n", 300)
	for _, name := range []string{long, long + "x", strings.Repeat("x", 250), "a b", "", ".", "..", "ü"} {
		got := TopicName(name)
		if !validTopic(got) || len(got) > maxTopicLen {
			t.Errorf("TopicName(%q) = %q: not a valid Kafka topic", name, got)
		}
		if got == name {
			t.Errorf("TopicName(%q) unchanged", name)
		}
		if got != TopicName(name) {
			t.Errorf("TopicName(%q) not stable", name)
		}
	}
	if TopicName(long) == TopicName(long+"x") {
		t.Error("two long names map to the same topic")
	}
	if !strings.HasPrefix(TopicName(long), "action-nnn") {
		t.Errorf("TopicName(long) = %q, want the name's start kept", TopicName(long))
	}
	// A long bus topic works end to end, and records carry the bus name.
	b := newBus(t, testConfig())
	ctx := t.Context()
	topic := long + fmt.Sprintf("%08x", rand.Uint32())
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, topic, []byte("v")); err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs := pollN(t, c, 1)
	if recs[0].Topic != topic || string(recs[0].Value) != "v" {
		t.Fatalf("record = %+v", recs[0])
	}
}

func uniqueTopic(t testing.TB) string {
	return fmt.Sprintf("kafkatest.%s.%08x", strings.ReplaceAll(t.Name(), "/", "."), rand.Uint32())
}

func pollN(t testing.TB, c bus.Consumer, n int) []bus.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []bus.Record
	for len(out) < n {
		recs, err := c.Poll(ctx, n-len(out))
		if err != nil {
			t.Fatalf("Poll after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

// crashableWithTen is a Bus of cfg whose connections d.crash severs, and a
// new topic it published m0 to m9 to.
func crashableWithTen(t *testing.T, cfg Config) (d *crashDialer, a *Bus, topic string) {
	t.Helper()
	ctx := t.Context()
	d = &crashDialer{}
	cfg.Dial = d.dial
	cfg.Log = slog.New(slog.DiscardHandler)
	a = newBus(t, cfg)
	topic = uniqueTopic(t)
	if err := a.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := a.Publish(ctx, topic, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return d, a, topic
}

// crashDialer opens connections that crash() severs, refusing new ones
// after: the client vanishes as a killed process does, without leaving its
// group or committing.
type crashDialer struct {
	mu      sync.Mutex
	conns   []net.Conn
	crashed bool
}

func (d *crashDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashed {
		return nil, errors.New("crashed")
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, conn)
	}
	return conn, err
}

func (d *crashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = true
	for _, c := range d.conns {
		c.Close()
	}
}

// TestFailover is a leader scheduler's failover, as the bus sees it: leader A polls
// ten activations, commits the first five (handed to containers), and dies;
// leader B of the same group resumes at the sixth.
func TestFailover(t *testing.T) {
	for _, how := range []string{"crash", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx := t.Context()
			d, a, topic := crashableWithTen(t, testConfig())
			ca, err := a.Subscribe(ctx, topic, "queue")
			if err != nil {
				t.Fatal(err)
			}
			recs := pollN(t, ca, 10)
			if err := ca.Commit(ctx, recs[4].Offset); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "crash":
				d.crash() // no commit, no LeaveGroup: the session must expire
			case "close":
				ca.Close() // leaves the group, no commit
			}

			b := newBus(t, testConfig())
			start := time.Now()
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			cb, err := b.Subscribe(sctx, topic, "queue")
			if err != nil {
				t.Fatalf("Subscribe of the next leader: %v", err)
			}
			defer cb.Close()
			took := time.Since(start)
			got := pollN(t, cb, 5)
			for i, r := range got {
				if want := fmt.Sprintf("m%d", 5+i); string(r.Value) != want || r.Offset != recs[5+i].Offset {
					t.Fatalf("record %d: %q at %d, want %q at %d", i, r.Value, r.Offset, want, recs[5+i].Offset)
				}
			}
			t.Logf("%s: the next consumer got the partition after %v", how, took)
		})
	}
}

// TestSecondSubscribeElsewhere: a Subscribe of the same group from another
// Bus (process) waits until the first consumer closes, then starts after
// the first consumer's last commit; the first consumer is undisturbed
// while it waits.
func TestSecondSubscribeElsewhere(t *testing.T) {
	ctx := t.Context()
	a, b := newBus(t, testConfig()), newBus(t, testConfig())
	topic := uniqueTopic(t)
	if err := a.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := a.Publish(ctx, topic, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := a.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	recs := pollN(t, ca, 1)
	if err := ca.Commit(ctx, recs[0].Offset); err != nil {
		t.Fatal(err)
	}

	// While A holds the partition, B's Subscribe waits until its context ends.
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = b.Subscribe(wctx, topic, "g")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe while another process's consumer is open: %v, want the deadline", err)
	}
	// A is still the consumer and can commit.
	if got := pollN(t, ca, 1); string(got[0].Value) != "b" {
		t.Fatalf("A polled %q, want b", got[0].Value)
	}
	if err := ca.Commit(ctx, recs[0].Offset+1); err != nil {
		t.Fatalf("A's Commit after B gave up: %v", err)
	}

	// B waits; A closes; B gets the partition and starts after A's commit.
	type result struct {
		c   bus.Consumer
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := b.Subscribe(ctx, topic, "g")
		ch <- result{c, err}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("B's Subscribe returned while A is open: %v", r.err)
	default:
	}
	ca.Close()
	var r result
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("B's Subscribe still waiting 10 s after A closed")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if got := pollN(t, r.c, 1); string(got[0].Value) != "c" {
		t.Fatalf("B polled %q, want c", got[0].Value)
	}
}

// TestDeletedElsewhere: a consumer notices that another process deleted
// its topic.
func TestDeletedElsewhere(t *testing.T) {
	ctx := t.Context()
	a, b := newBus(t, testConfig()), newBus(t, testConfig())
	topic := uniqueTopic(t)
	if err := a.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	c, err := a.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := b.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = c.Poll(pctx, 0)
	if !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("Poll of a topic deleted elsewhere: %v, want kind NotFound", err)
	}
}

func TestCommitBeyondEnd(t *testing.T) {
	ctx := t.Context()
	b := newBus(t, testConfig())
	topic := uniqueTopic(t)
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c", "d"} {
		if err := b.Publish(ctx, topic, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs := pollN(t, c, 1)
	if err := c.Commit(ctx, recs[0].Offset+10); !whisk.IsKind(err, whisk.Invalid) {
		t.Fatalf("Commit beyond the end: %v, want kind Invalid", err)
	}
	// Beyond what was polled: skips b and c.
	if err := c.Commit(ctx, recs[0].Offset+2); err != nil {
		t.Fatal(err)
	}
	if got := pollN(t, c, 1); string(got[0].Value) != "d" {
		t.Fatalf("after a skipping commit, polled %q, want d", got[0].Value)
	}
	// Below the committed position: a no-op.
	if err := c.Commit(ctx, recs[0].Offset); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := b.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := pollN(t, c2, 1); string(got[0].Value) != "d" {
		t.Fatalf("next consumer polled %q, want d", got[0].Value)
	}
}

// BenchmarkRoundTrip measures Publish followed by the Poll that returns the
// record, one at a time (the latency an activation adds on the bus).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	kb := newBus(b, testConfig())
	topic := uniqueTopic(b)
	if err := kb.EnsureTopic(ctx, topic); err != nil {
		b.Fatal(err)
	}
	c, err := kb.Subscribe(ctx, topic, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := make([]byte, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := kb.Publish(ctx, topic, value); err != nil {
			b.Fatal(err)
		}
		recs, err := c.Poll(ctx, 1)
		if err != nil || len(recs) != 1 {
			b.Fatalf("Poll: %d records, %v", len(recs), err)
		}
	}
}

func (d *crashDialer) heal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = false
}

// TestPartitionTaken: a consumer cut off from the brokers for longer than
// its session loses the partition to the group's next consumer; when it is
// back it fails with kind Conflict instead of going on delivering.
func TestPartitionTaken(t *testing.T) {
	ctx := t.Context()
	d := &crashDialer{}
	cfgA := testConfig()
	cfgA.Dial = d.dial
	a, b := newBus(t, cfgA), newBus(t, testConfig())
	topic := uniqueTopic(t)
	if err := a.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, topic, []byte("a")); err != nil {
		t.Fatal(err)
	}
	ca, err := a.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	pollN(t, ca, 1)
	d.crash()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cb, err := b.Subscribe(sctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	d.heal()
	if err := b.Publish(ctx, topic, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if got := pollN(t, cb, 2); string(got[0].Value) != "a" || string(got[1].Value) != "b" {
		t.Fatalf("B polled %q %q, want a b", got[0].Value, got[1].Value)
	}
	// A may deliver what it fetched before its next heartbeat told it (the
	// zombie window, at most a heartbeat interval); then it fails.
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	for {
		recs, err := ca.Poll(pctx, 0)
		if err != nil {
			if !whisk.IsKind(err, whisk.Conflict) {
				t.Fatalf("A's Poll after losing the partition: %v; want kind Conflict", err)
			}
			break
		}
		t.Logf("A delivered %d records in the zombie window", len(recs))
	}
	if err := ca.Commit(ctx, 0); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("A's Commit after losing the partition: %v; want kind Conflict", err)
	}
}

// TestLargeRecord: a record over Kafka's default 1 MB limit goes through
// (an activation with a 1 MB payload, a completion with megabytes of logs),
// and one over MaxRecordBytes fails with kind Invalid.
func TestLargeRecord(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig()
	cfg.MaxRecordBytes = 4 << 20
	b := newBus(t, cfg)
	topic := uniqueTopic(t)
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	big[len(big)-1] = 'x'
	if err := b.Publish(ctx, topic, big); err != nil {
		t.Fatalf("Publish of 3 MiB: %v", err)
	}
	if err := b.Publish(ctx, topic, make([]byte, 5<<20)); !whisk.IsKind(err, whisk.Invalid) {
		t.Fatalf("Publish of 5 MiB with a 4 MiB limit: %v, want kind Invalid", err)
	}
	c, err := b.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := pollN(t, c, 1); len(got[0].Value) != len(big) || got[0].Value[len(big)-1] != 'x' {
		t.Fatalf("polled %d bytes, want %d", len(got[0].Value), len(big))
	}
}

// TestClosedBusKinds: after Bus.Close everything fails with kind
// Unavailable, as in bus/memory.
func TestClosedBusKinds(t *testing.T) {
	ctx := t.Context()
	b := newBus(t, testConfig())
	topic := uniqueTopic(t)
	if err := b.EnsureTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(ctx, topic, "g")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, perr := c.Poll(ctx, 0)
	_, serr := b.Subscribe(ctx, topic, "h")
	for what, err := range map[string]error{
		"Poll":        perr,
		"Commit":      c.Commit(ctx, 0),
		"Publish":     b.Publish(ctx, topic, []byte("x")),
		"EnsureTopic": b.EnsureTopic(ctx, topic),
		"DeleteTopic": b.DeleteTopic(ctx, topic),
		"Subscribe":   serr,
	} {
		if !whisk.IsKind(err, whisk.Unavailable) {
			t.Errorf("%s after Close: %v, want kind Unavailable", what, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
