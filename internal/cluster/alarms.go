package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ClaimAlarmShard makes owner (this process's alarms provider) the owner
// of alarm shard n if no one holds it (put-if-absent under the session's
// lease), and reports whether it holds it now. A shard key left by one of
// this session's former leases is taken over, as ElectLeader does.
func (s *Session) ClaimAlarmShard(ctx context.Context, n int, owner string) (bool, error) {
	key := alarmShardKey(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("cluster: claim alarm shard %d: %w", n, ErrSessionClosed)
	}
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner, clientv3.WithLease(s.lease()))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.signalLost()
		}
		return false, fmt.Errorf("cluster: claim alarm shard %d: %w", n, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, nil // deleted meanwhile: the next poll claims it
	}
	kv := kvs[0]
	holder := clientv3.LeaseID(kv.Lease)
	if holder == s.lease() {
		return string(kv.Value) == owner, nil
	}
	if !s.former[holder] || string(kv.Value) != owner {
		return false, nil
	}
	tresp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpPut(key, owner, clientv3.WithLease(s.lease()))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("cluster: take over alarm shard %d: %w", n, err)
	}
	return tresp.Succeeded, nil
}

// ReleaseAlarmShard deletes alarm shard n's key if this session's lease
// (or a former one) holds it.
func (s *Session) ReleaseAlarmShard(ctx context.Context, n int) error {
	key := alarmShardKey(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // the lease is revoked: the key is gone
	}
	leases := []clientv3.LeaseID{s.lease()}
	for id := range s.former {
		leases = append(leases, id)
	}
	for _, id := range leases {
		resp, err := s.c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("cluster: release alarm shard %d: %w", n, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return nil
}

// AlarmShardOwners returns the owner of every held alarm shard (one range
// read).
func (s *Session) AlarmShardOwners(ctx context.Context) (map[int]string, error) {
	return s.c.AlarmShardOwners(ctx)
}

// AlarmShardOwners returns the owner of every held alarm shard (one range
// read).
func (c *Client) AlarmShardOwners(ctx context.Context) (map[int]string, error) {
	resp, err := c.etcd.Get(ctx, alarmShardPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: read alarm shards: %w", err)
	}
	out := make(map[int]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), alarmShardPrefix()))
		if err != nil {
			continue
		}
		out[n] = string(kv.Value)
	}
	return out, nil
}
