package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// In-flight hand-over (docs/internals.md): a leader queue records every
// activation it hands to a container under eddy/handout/<ns>/<action>/<aid>
// before it answers the container's fetch, in a transaction that succeeds
// only while the leader key still has the creation revision the queue
// started under (its epoch). A leader that lost its key — expired while it
// was paused or cut off, resigned, or taken by a successor — can hand out
// nothing more: the transaction fails and the queue ends. A successor
// reads the keys when it starts (ClaimHandouts), skips those activations
// when the bus delivers them again and gives an error record to those whose
// container is lost; keys are deleted once their activation is known to be
// finished and recorded (DeleteHandouts).

// ClaimHandouts reads, in one transaction, f's leader key — which must be
// held by this session's current lease — and every hand-out recorded for
// f. The epoch is the leader key's creation revision: it stays the same
// while the key lives (a re-grant moves the key to the new lease with a
// put), and changes with every new election. A key held by another lease
// (another scheduler, or this scheduler's predecessor) is an error of kind
// Conflict.
func (s *Session) ClaimHandouts(ctx context.Context, f whisk.FQN) (int64, []whisk.Handout, error) {
	key := leaderKey(f)
	s.mu.Lock()
	lease := s.lease()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, nil, fmt.Errorf("cluster: claim hand-outs of %s: %w", f, ErrSessionClosed)
	}
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).
		Then(clientv3.OpGet(key), clientv3.OpGet(handoutPrefix(f), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return 0, nil, fmt.Errorf("cluster: claim hand-outs of %s: %w", f, err)
	}
	if !resp.Succeeded {
		return 0, nil, whisk.Errorf(whisk.Conflict, "cluster: the leader key of %s is not held by this scheduler's lease", f)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, nil, whisk.Errorf(whisk.Conflict, "cluster: the leader key of %s is gone", f)
	}
	epoch := kvs[0].CreateRevision
	var hs []whisk.Handout
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var h whisk.Handout
		if err := json.Unmarshal(kv.Value, &h); err != nil || h.Message.ActivationID == "" {
			continue // not ours to understand; a later DeleteHandouts cannot name it either
		}
		hs = append(hs, h)
	}
	return epoch, hs, nil
}

// PutHandout records h for f if, and only if, f's leader key still has
// creation revision epoch, deleting the hand-outs of forget in the same
// transaction. A newer leadership (or none) fails it with kind Conflict:
// the caller must not hand the activation out.
func (c *Client) PutHandout(ctx context.Context, f whisk.FQN, epoch int64, h whisk.Handout, forget []whisk.ActivationID) error {
	val, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("cluster: encode hand-out: %w", err)
	}
	ops := make([]clientv3.Op, 0, 1+len(forget))
	ops = append(ops, clientv3.OpPut(handoutKey(f, h.Message.ActivationID), string(val)))
	for _, id := range forget {
		ops = append(ops, clientv3.OpDelete(handoutKey(f, id)))
	}
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(leaderKey(f)), "=", epoch)).
		Then(ops...).
		Commit()
	if err != nil {
		return fmt.Errorf("cluster: record hand-out of %s: %w", h.Message.ActivationID, err)
	}
	if !resp.Succeeded {
		return fenced(f, epoch)
	}
	return nil
}

// ConfirmEpoch fails with kind Conflict unless f's leader key still has
// creation revision epoch (a leader checks before it writes a record of
// its own).
func (c *Client) ConfirmEpoch(ctx context.Context, f whisk.FQN, epoch int64) error {
	resp, err := c.etcd.Get(ctx, leaderKey(f), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("cluster: confirm the leadership of %s: %w", f, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != epoch {
		return fenced(f, epoch)
	}
	return nil
}

// fenced is the error of a leadership at epoch that has ended.
func fenced(f whisk.FQN, epoch int64) error {
	return whisk.Errorf(whisk.Conflict, "cluster: fenced: the leadership of %s at revision %d has ended", f, epoch)
}

// DeleteHandouts deletes the hand-outs of ids (finished and recorded).
func (c *Client) DeleteHandouts(ctx context.Context, f whisk.FQN, ids []whisk.ActivationID) error {
	for len(ids) > 0 {
		n := min(len(ids), maxTxnOps)
		ops := make([]clientv3.Op, 0, n)
		for _, id := range ids[:n] {
			ops = append(ops, clientv3.OpDelete(handoutKey(f, id)))
		}
		if _, err := c.etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("cluster: delete hand-outs of %s: %w", f, err)
		}
		ids = ids[n:]
	}
	return nil
}

// maxTxnOps stays under etcd's default limit of operations per
// transaction (128).
const maxTxnOps = 100

// PutHandout is Client.PutHandout through the session's client.
func (s *Session) PutHandout(ctx context.Context, f whisk.FQN, epoch int64, h whisk.Handout, forget []whisk.ActivationID) error {
	return s.c.PutHandout(ctx, f, epoch, h, forget)
}

// ConfirmEpoch is Client.ConfirmEpoch through the session's client.
func (s *Session) ConfirmEpoch(ctx context.Context, f whisk.FQN, epoch int64) error {
	return s.c.ConfirmEpoch(ctx, f, epoch)
}

// DeleteHandouts is Client.DeleteHandouts through the session's client.
func (s *Session) DeleteHandouts(ctx context.Context, f whisk.FQN, ids []whisk.ActivationID) error {
	return s.c.DeleteHandouts(ctx, f, ids)
}

// DeposeLeader deletes f's leader key if it still names li (the same
// scheduler at the same address): a follower found li's process gone (its
// port refuses connections) and takes over without waiting for the lease
// to expire. It is safe only with fenced hand-outs: a leader that was not
// dead after all can hand out nothing more once its key is gone. Reports
// whether it deleted the key.
func (c *Client) DeposeLeader(ctx context.Context, f whisk.FQN, li whisk.LeaderInfo) (bool, error) {
	key := leaderKey(f)
	resp, err := c.etcd.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("cluster: depose the leader of %s: %w", f, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	var cur whisk.LeaderInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil || cur != li {
		return false, nil
	}
	tresp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", resp.Kvs[0].CreateRevision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("cluster: depose the leader of %s: %w", f, err)
	}
	return tresp.Succeeded, nil
}

// DeposeLeader is Client.DeposeLeader through the session's client.
func (s *Session) DeposeLeader(ctx context.Context, f whisk.FQN, li whisk.LeaderInfo) (bool, error) {
	return s.c.DeposeLeader(ctx, f, li)
}
