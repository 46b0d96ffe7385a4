package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Followers (docs/cluster.md): a scheduler that follows an action's leader queue
// writes its follower key under its own lease and watches the leader key
// (WatchLeader). A leader key that vanishes alone (the leader's lease
// expired, or the leader stopped) is a failover: followers elect with
// ElectLeader, the winner starts consuming. A leader that removes its queue
// on purpose (idle, action deleted) deletes the leader key and every
// follower key in one transaction (RetireQueue), and followers seeing that
// stop following.

// RegisterFollower records that this process (info.SchedulerID) follows
// f's leader queue. The key is re-put after a lease re-grant until
// DeregisterFollower.
func (s *Session) RegisterFollower(ctx context.Context, f whisk.FQN, info whisk.LeaderInfo) error {
	return s.put(ctx, followerKey(f, info.SchedulerID), info)
}

// DeregisterFollower removes the follower key of scheduler sid for f; it is
// never re-put.
func (s *Session) DeregisterFollower(ctx context.Context, f whisk.FQN, sid string) error {
	return s.del(ctx, followerKey(f, sid))
}

// RetireQueue deletes f's leader key, if this session's lease (or one of
// its earlier leases) holds it, together with every follower key of f, in
// one transaction: followers see the queue retired (WatchLeader reports
// retired) and stop following instead of electing a new leader. A key held
// by another scheduler is left alone, and so are the follower keys then.
func (s *Session) RetireQueue(ctx context.Context, f whisk.FQN) error {
	key := leaderKey(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // the lease is revoked: the leader key is gone
	}
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", s.lease())).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(followerPrefix(f), clientv3.WithPrefix())).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cluster: retire queue of %s: %w", f, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || !s.former[clientv3.LeaseID(kvs[0].Lease)] {
		return nil // no leader, or someone else's
	}
	if _, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(followerPrefix(f), clientv3.WithPrefix())).
		Commit(); err != nil {
		return fmt.Errorf("cluster: retire queue of %s: %w", f, err)
	}
	return nil
}

// Followers returns the schedulers following f's leader queue, ordered by
// key.
func (c *Client) Followers(ctx context.Context, f whisk.FQN) ([]whisk.LeaderInfo, error) {
	return list[whisk.LeaderInfo](ctx, c, followerPrefix(f))
}

// WatchLeader follows f's leader key: it calls fn once with the current
// state (present and the leader, or absent), then for every change, in
// revision order. For a deletion, li is the leader that went away and
// retired says whether follower keys of f were deleted in the same
// revision (RetireQueue: the queue was removed on purpose, not lost). A
// put of an unchanged value (a re-put under a new lease) is not reported.
// A broken watch resumes from the last revision seen; after a compaction
// WatchLeader re-reads the key and reports the difference (a leader that
// vanished in the gap counts as retired only if no follower key is left).
// fn runs on WatchLeader's goroutine. WatchLeader returns nil when ctx
// ends, and an error only if the client is closed or the first read fails.
func (c *Client) WatchLeader(ctx context.Context, f whisk.FQN, fn func(li whisk.LeaderInfo, present, retired bool)) error {
	w := &oneLeaderWatch{c: c, f: f, fn: fn}
	if err := w.resync(ctx, true); err != nil {
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
			return fmt.Errorf("cluster: watch leader of %s: client closed: %w", f, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
		if w.needResync {
			if err := w.resync(ctx, false); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn("leader watch: resync failed, retrying", "action", f.String(), "err", err)
			}
		}
	}
}

// oneLeaderWatch is the state of one WatchLeader call.
type oneLeaderWatch struct {
	c          *Client
	f          whisk.FQN
	fn         func(whisk.LeaderInfo, bool, bool)
	present    bool
	li         whisk.LeaderInfo
	rev        int64 // every change up to rev has been delivered
	needResync bool
}

// resync reads f's queue keys and reports the leader's state if it differs
// from what was reported (always on the first call).
func (w *oneLeaderWatch) resync(ctx context.Context, first bool) error {
	resp, err := w.c.etcd.Get(ctx, queueActionPrefix(w.f), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("cluster: read leader of %s: %w", w.f, err)
	}
	var (
		li        whisk.LeaderInfo
		present   bool
		followers int
	)
	lk := leaderKey(w.f)
	for _, kv := range resp.Kvs {
		switch {
		case string(kv.Key) == lk:
			if v, ok := w.decode(kv); ok {
				li, present = v, true
			}
		case strings.HasPrefix(string(kv.Key), followerPrefix(w.f)):
			followers++
		}
	}
	w.rev = resp.Header.Revision
	w.needResync = false
	switch {
	case present && (first || !w.present || li != w.li):
		w.present, w.li = true, li
		w.fn(li, true, false)
	case !present && (first || w.present):
		gone := w.li
		w.present = false
		w.fn(gone, false, !first && followers == 0)
	}
	return nil
}

// watch follows changes from w.rev+1 until the watch breaks or ctx ends.
func (w *oneLeaderWatch) watch(ctx context.Context) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.c.etcd.Watch(wctx, queueActionPrefix(w.f), clientv3.WithPrefix(), clientv3.WithRev(w.rev+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for resp := range ch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			w.c.log.Info("leader watch fell behind a compaction; resynchronising",
				"action", w.f.String(), "from", w.rev+1, "compacted", resp.CompactRevision)
			w.needResync = true
			return
		}
		if err := resp.Err(); err != nil {
			w.c.log.Info("leader watch broken; resuming", "action", w.f.String(), "from", w.rev+1, "err", err)
			return
		}
		if resp.Canceled {
			return
		}
		if resp.IsProgressNotify() {
			w.rev = max(w.rev, resp.Header.Revision)
			continue
		}
		// Events of one revision come in one response: group them, so that
		// a leader key deleted with the follower keys reads as retired.
		evs := resp.Events
		for len(evs) > 0 {
			rev := evs[0].Kv.ModRevision
			n := 1
			for n < len(evs) && evs[n].Kv.ModRevision == rev {
				n++
			}
			w.apply(evs[:n])
			evs = evs[n:]
		}
	}
}

// apply takes the events of one revision.
func (w *oneLeaderWatch) apply(evs []*clientv3.Event) {
	lk := leaderKey(w.f)
	var (
		leaderEv        *clientv3.Event
		followerDeleted bool
	)
	for _, ev := range evs {
		w.rev = max(w.rev, ev.Kv.ModRevision)
		switch key := string(ev.Kv.Key); {
		case key == lk:
			leaderEv = ev
		case ev.Type == mvccpb.DELETE && strings.HasPrefix(key, followerPrefix(w.f)):
			followerDeleted = true
		}
	}
	if leaderEv == nil {
		return
	}
	switch leaderEv.Type {
	case mvccpb.PUT:
		li, ok := w.decode(leaderEv.Kv)
		if !ok || (w.present && li == w.li) {
			return
		}
		w.present, w.li = true, li
		w.fn(li, true, false)
	case mvccpb.DELETE:
		gone := w.li
		if leaderEv.PrevKv != nil {
			if prev, ok := w.decode(leaderEv.PrevKv); ok {
				gone = prev
			}
		}
		w.present = false
		w.fn(gone, false, followerDeleted)
	}
}

func (w *oneLeaderWatch) decode(kv *mvccpb.KeyValue) (whisk.LeaderInfo, bool) {
	var li whisk.LeaderInfo
	if err := json.Unmarshal(kv.Value, &li); err != nil {
		w.c.log.Warn("skipping undecodable leader value", "key", string(kv.Key), "err", err)
		return li, false
	}
	return li, true
}
