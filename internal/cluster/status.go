package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Status reads schedulers, invokers, leader and follower keys, containers
// and in-flight creations in one transaction, so every part of the answer
// is of the same etcd revision, and groups them per action. It is for
// operators (`eddy status`, GET /eddy/v1/status): it reads whole subtrees,
// and nothing on the invocation path calls it.
func (c *Client) Status(ctx context.Context) (whisk.ClusterStatus, error) {
	var st whisk.ClusterStatus
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(schedulerPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(invokerPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(queuePrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(containerPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(creationPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return st, fmt.Errorf("cluster: read status: %w", err)
	}
	kvs := func(i int) []*mvccpb.KeyValue { return resp.Responses[i].GetResponseRange().Kvs }
	st.Revision = resp.Header.Revision
	st.Schedulers = decodeAll[whisk.SchedulerInfo](c, kvs(0))
	st.Invokers = decodeAll[whisk.InvokerInfo](c, kvs(1))

	queues := map[whisk.FQN]*whisk.QueueStatus{}
	queue := func(f whisk.FQN) *whisk.QueueStatus {
		q := queues[f]
		if q == nil {
			q = &whisk.QueueStatus{Namespace: f.Namespace, Action: f.Name}
			queues[f] = q
		}
		return q
	}
	for _, kv := range kvs(2) {
		key := string(kv.Key)
		if f, ok := parseLeaderKey(key); ok {
			var li whisk.LeaderInfo
			if err := json.Unmarshal(kv.Value, &li); err != nil {
				c.log.Warn("skipping undecodable etcd value", "key", key, "err", err)
				continue
			}
			q := queue(f)
			q.Leader, q.LeaderAddr = li.SchedulerID, li.Addr
		} else if f, sid, ok := parseFollowerKey(key); ok {
			q := queue(f)
			q.Followers = append(q.Followers, sid)
		}
	}
	for _, ci := range decodeAll[whisk.ContainerInfo](c, kvs(3)) {
		queue(ci.FQN()).Containers++
	}
	for _, cr := range decodeAll[whisk.CreationInfo](c, kvs(4)) {
		queue(whisk.FQN{Namespace: cr.Namespace, Name: cr.Action}).Creations++
	}
	for f, q := range queues {
		for _, inv := range st.Invokers {
			q.Idle += inv.IdleActions[f.String()]
		}
		q.Idle = min(q.Idle, q.Containers) // keys and counts are read together, but a count may lag
	}
	st.Queues = make([]whisk.QueueStatus, 0, len(queues))
	for _, q := range queues {
		st.Queues = append(st.Queues, *q)
	}
	slices.SortFunc(st.Queues, func(a, b whisk.QueueStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Action, b.Action))
	})
	return st, nil
}

// decodeAll decodes every value; one that does not decode is logged and
// skipped, as in list.
func decodeAll[T any](c *Client, kvs []*mvccpb.KeyValue) []T {
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			c.log.Warn("skipping undecodable etcd value", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, v)
	}
	return out
}
