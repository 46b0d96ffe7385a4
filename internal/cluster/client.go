// Package cluster is Eddy's only door to etcd: an embedded etcd server for
// standalone mode (StartEmbedded), a client with the reads every role needs
// (Dial, Client), and the one-lease Session through which a scheduler or an
// invoker writes every key it owns. keys.go holds the whole key schema.
//
// Every key a process writes is attached to its Session's single lease. The
// session keeps the lease alive (Run); if the lease is lost anyway, Run
// grants a new one, re-writes every key the process still owns, and calls
// the OnRegrant hooks, so that a process that survives the loss of its
// lease converges back to the state it intends (docs/cluster.md). Watches
// resume from the last revision they saw and resynchronise after a
// compaction, so no change is missed (goal 3).
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// dialTimeout bounds Dial: an unreachable etcd is reported, not waited for.
const dialTimeout = 5 * time.Second

// watchRetry is the pause before re-opening a broken watch.
const watchRetry = 250 * time.Millisecond

// Client reads Eddy's shared state from etcd. It is safe for concurrent use.
type Client struct {
	etcd      *clientv3.Client
	endpoints []string
	log       *slog.Logger
}

// Dial connects to etcd at endpoints and checks, within 5 s, that the
// cluster answers a linearizable read.
func Dial(ctx context.Context, endpoints []string, log *slog.Logger) (*Client, error) {
	return DialTLS(ctx, endpoints, nil, log)
}

// DialTLS is Dial over TLS with tc (https:// endpoints; tc presents the
// client certificate that an etcd requiring client certificates checks):
// see pki.Files.Config. A nil tc is Dial.
func DialTLS(ctx context.Context, endpoints []string, tc *tls.Config, log *slog.Logger) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("cluster: dial etcd: no endpoints")
	}
	log = orDiscard(log)
	eps := append([]string(nil), endpoints...)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tc,
		Logger:               zapToSlog(log.With("component", "etcd-client"), zapcore.WarnLevel, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: dial etcd at %s: %w", strings.Join(eps, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, root, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster: etcd at %s unreachable (no answer within %s): %w",
			strings.Join(eps, ","), dialTimeout, err)
	}
	return &Client{etcd: cli, endpoints: eps, log: log}, nil
}

// Close closes the connection. It does not revoke any lease: a Session's
// keys live until Session.Close or until its lease expires.
func (c *Client) Close() error {
	if err := c.etcd.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cluster: close etcd client: %w", err)
	}
	return nil
}

// Leader returns the scheduler holding f's leader queue, if any.
func (c *Client) Leader(ctx context.Context, f whisk.FQN) (whisk.LeaderInfo, bool, error) {
	var li whisk.LeaderInfo
	key := leaderKey(f)
	resp, err := c.etcd.Get(ctx, key)
	if err != nil {
		return li, false, fmt.Errorf("cluster: get leader of %s: %w", f, err)
	}
	if len(resp.Kvs) == 0 {
		return li, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &li); err != nil {
		return li, false, fmt.Errorf("cluster: decode %s: %w", key, err)
	}
	return li, true, nil
}

// LeadersOf returns the actions whose leader key names scheduler sid, in
// key order (one range read of the queue subtree).
func (c *Client) LeadersOf(ctx context.Context, sid string) ([]whisk.FQN, error) {
	resp, err := c.etcd.Get(ctx, queuePrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: read leaders: %w", err)
	}
	var out []whisk.FQN
	for _, kv := range resp.Kvs {
		f, ok := parseLeaderKey(string(kv.Key))
		if !ok {
			continue
		}
		var li whisk.LeaderInfo
		if err := json.Unmarshal(kv.Value, &li); err != nil {
			c.log.Warn("undecodable leader key", "key", string(kv.Key), "err", err)
			continue
		}
		if li.SchedulerID == sid {
			out = append(out, f)
		}
	}
	return out, nil
}

// Schedulers returns every registered scheduler, ordered by key.
func (c *Client) Schedulers(ctx context.Context) ([]whisk.SchedulerInfo, error) {
	return list[whisk.SchedulerInfo](ctx, c, schedulerPrefix())
}

// Invokers returns every registered invoker, ordered by key.
func (c *Client) Invokers(ctx context.Context) ([]whisk.InvokerInfo, error) {
	return list[whisk.InvokerInfo](ctx, c, invokerPrefix())
}

// Containers returns the registered containers of f, every revision.
func (c *Client) Containers(ctx context.Context, f whisk.FQN) ([]whisk.ContainerInfo, error) {
	return list[whisk.ContainerInfo](ctx, c, containerActionPrefix(f))
}

// list decodes every value under prefix. A value that does not decode is
// logged and skipped: one bad key must not hide the others.
func list[T any](ctx context.Context, c *Client, prefix string) ([]T, error) {
	resp, err := c.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			c.log.Warn("skipping undecodable etcd value", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// CountContainers counts the registered containers of revision rev of f
// with a count-only range read.
func (c *Client) CountContainers(ctx context.Context, f whisk.FQN, rev int64) (int, error) {
	return c.count(ctx, containerRevPrefix(f, rev))
}

// CountCreations counts the in-flight creations of revision rev of f with a
// count-only range read.
func (c *Client) CountCreations(ctx context.Context, f whisk.FQN, rev int64) (int, error) {
	return c.count(ctx, creationRevPrefix(f, rev))
}

func (c *Client) count(ctx context.Context, prefix string) (int, error) {
	resp, err := c.etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("cluster: count %s: %w", prefix, err)
	}
	return int(resp.Count), nil
}

// CountNamespace counts the containers and in-flight creations of every
// action of namespace ns, both at the same revision (one transaction of two
// count-only reads).
func (c *Client) CountNamespace(ctx context.Context, ns string) (containers, creations int, err error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(containerNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(creationNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: count namespace %q: %w", ns, err)
	}
	return int(resp.Responses[0].GetResponseRange().Count), int(resp.Responses[1].GetResponseRange().Count), nil
}

// WatchLeaders calls fn for every leader key: first once for each current
// leader (deleted=false), then for every change, in revision order. For a
// deletion, the LeaderInfo is the last value the key had. A broken watch is
// re-opened from the last revision seen; if etcd has compacted that
// revision away, WatchLeaders re-reads the leaders and reports the
// difference (including deletions that happened in the gap), so no change
// is ever missed. fn runs on WatchLeaders' goroutine and should be quick.
// WatchLeaders returns nil when ctx ends, and an error only if the client
// is closed or the first read fails.
func (c *Client) WatchLeaders(ctx context.Context, fn func(whisk.FQN, whisk.LeaderInfo, bool)) error {
	w := leaderWatch{c: c, fn: fn, known: map[string]whisk.LeaderInfo{}}
	if err := w.resync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		w.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := c.etcd.Ctx().Err(); err != nil {
			return fmt.Errorf("cluster: watch leaders: client closed: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
		if w.needResync {
			if err := w.resync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn("leader watch: resync failed, retrying", "err", err)
			}
		}
	}
}

// leaderWatch is the state of one WatchLeaders call.
type leaderWatch struct {
	c          *Client
	fn         func(whisk.FQN, whisk.LeaderInfo, bool)
	known      map[string]whisk.LeaderInfo // leader key → last value delivered
	rev        int64                       // every change up to rev has been delivered
	needResync bool
}

// resync reads every leader and delivers the difference to what was
// delivered before: new and changed leaders as puts, vanished ones as
// deletions.
func (w *leaderWatch) resync(ctx context.Context) error {
	resp, err := w.c.etcd.Get(ctx, queuePrefix(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("cluster: read leaders: %w", err)
	}
	seen := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		f, ok := parseLeaderKey(key)
		if !ok {
			continue
		}
		seen[key] = true
		li, ok := w.decode(kv.Key, kv.Value)
		if !ok {
			continue
		}
		if old, had := w.known[key]; had && old == li {
			continue
		}
		w.known[key] = li
		w.fn(f, li, false)
	}
	for key, li := range w.known {
		if !seen[key] {
			f, _ := parseLeaderKey(key)
			delete(w.known, key)
			w.fn(f, li, true)
		}
	}
	w.rev = resp.Header.Revision
	w.needResync = false
	return nil
}

// watch follows changes from w.rev+1 until the watch breaks or ctx ends.
func (w *leaderWatch) watch(ctx context.Context) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.c.etcd.Watch(wctx, queuePrefix(), clientv3.WithPrefix(), clientv3.WithRev(w.rev+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for resp := range ch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			w.c.log.Info("leader watch fell behind a compaction; resynchronising",
				"from", w.rev+1, "compacted", resp.CompactRevision)
			w.needResync = true
			return
		}
		if err := resp.Err(); err != nil {
			w.c.log.Info("leader watch broken; resuming", "from", w.rev+1, "err", err)
			return
		}
		if resp.Canceled {
			return
		}
		if resp.IsProgressNotify() {
			// Sent only to a synced watcher: nothing is pending up to here.
			w.rev = max(w.rev, resp.Header.Revision)
			continue
		}
		for _, ev := range resp.Events {
			w.apply(ev)
		}
	}
}

func (w *leaderWatch) apply(ev *clientv3.Event) {
	if ev.Kv.ModRevision > w.rev {
		w.rev = ev.Kv.ModRevision
	}
	key := string(ev.Kv.Key)
	f, ok := parseLeaderKey(key)
	if !ok {
		return
	}
	switch ev.Type {
	case mvccpb.PUT:
		li, ok := w.decode(ev.Kv.Key, ev.Kv.Value)
		if !ok {
			return
		}
		w.known[key] = li
		w.fn(f, li, false)
	case mvccpb.DELETE:
		li, had := w.known[key]
		if ev.PrevKv != nil {
			if prev, ok := w.decode(ev.PrevKv.Key, ev.PrevKv.Value); ok {
				li = prev
			}
		} else if !had {
			// Never delivered and no previous value: nothing to retract.
			return
		}
		delete(w.known, key)
		w.fn(f, li, true)
	}
}

func (w *leaderWatch) decode(key, value []byte) (whisk.LeaderInfo, bool) {
	var li whisk.LeaderInfo
	if err := json.Unmarshal(value, &li); err != nil {
		w.c.log.Warn("skipping undecodable leader value", "key", string(key), "err", err)
		return li, false
	}
	return li, true
}
