package cluster

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// eddy/demand/<ns>/<action>: the action's leader queue wants containers
// that its namespace's concurrent-containers limit refuses, and holds fewer
// than its fair share (queue.FairShare). Written by the leader's scheduler
// (PutDemand) under its lease, deleted when the want ends (DeleteDemand),
// with the queue, or with the lease. Read with the namespace's containers
// and creations by NamespaceShare: the queues of the namespace's busiest
// actions give containers back (internal/queue, GiveBack).
func demandKey(f whisk.FQN) string { return demandNamespacePrefix(f.Namespace) + seg(f.Name) }
func demandNamespacePrefix(ns string) string {
	return root + "demand/" + seg(ns) + "/"
}

// PutDemand says f's queue wants a share of its namespace's containers.
func (s *Session) PutDemand(ctx context.Context, f whisk.FQN, schedulerID string) error {
	return s.put(ctx, demandKey(f), whisk.LeaderInfo{SchedulerID: schedulerID})
}

// DeleteDemand withdraws f's demand.
func (s *Session) DeleteDemand(ctx context.Context, f whisk.FQN) error {
	return s.del(ctx, demandKey(f))
}

// NamespaceShare reads, in one transaction of three keys-only range reads,
// how many containers and in-flight creations each action of namespace ns
// holds (every revision) and which actions want a share (demand keys).
// The reads are bounded by the namespace's limit (plus the demand keys).
func (c *Client) NamespaceShare(ctx context.Context, ns string) (held map[string]int, wanting map[string]bool, err error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(containerNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(creationNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(demandNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: namespace share %q: %w", ns, err)
	}
	held, wanting = map[string]int{}, map[string]bool{}
	for i, prefix := range []string{containerNamespacePrefix(ns), creationNamespacePrefix(ns)} {
		for _, kv := range resp.Responses[i].GetResponseRange().Kvs {
			rest := strings.TrimPrefix(string(kv.Key), prefix)
			name, _, _ := strings.Cut(rest, "/")
			if n, ok := unseg(name); ok && n != "" {
				held[n]++
			}
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		if n, ok := unseg(strings.TrimPrefix(string(kv.Key), demandNamespacePrefix(ns))); ok && n != "" {
			wanting[n] = true
		}
	}
	return held, wanting, nil
}

// HasDemand reports, with one count-only read, whether any action of
// namespace ns wants a share of its containers (has a demand key).
func (c *Client) HasDemand(ctx context.Context, ns string) (bool, error) {
	resp, err := c.etcd.Get(ctx, demandNamespacePrefix(ns), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("cluster: demand of namespace %q: %w", ns, err)
	}
	return resp.Count > 0, nil
}

// CountUsed counts, in one transaction of four count-only reads, what
// namespace f.Namespace and revision rev of f use against their limits:
// registered containers plus in-flight creations. A container registered
// whose creation key is not deleted yet (its ack is on its way) counts
// twice: the count errs on the safe side. at is the revision counted: a
// creation admitted on this count is written with Session.PutCreation(…,
// at), which refuses it if another was admitted in the namespace since.
func (c *Client) CountUsed(ctx context.Context, f whisk.FQN, rev int64) (ns, action int, at int64, err error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(containerNamespacePrefix(f.Namespace), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(creationNamespacePrefix(f.Namespace), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(containerRevPrefix(f, rev), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(creationRevPrefix(f, rev), clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cluster: count used by %s: %w", f, err)
	}
	n := func(i int) int { return int(resp.Responses[i].GetResponseRange().Count) }
	return n(0) + n(1), n(2) + n(3), resp.Header.Revision, nil
}
