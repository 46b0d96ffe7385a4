package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// WatchContainerDeletes calls fn for every container key deleted from now
// on (the container went idle or was removed, or its invoker's lease
// ended): the ContainerInfo holds what the key names (namespace, action,
// revision, invoker, container). A broken watch resumes from the last
// revision seen; deletions compacted away before it resumed are missed
// (logged): schedulers have a safety net for them (internal/queue,
// lost.go). fn runs on the watch's goroutine and should be quick.
// WatchContainerDeletes returns nil when ctx ends, and an error only if the
// client is closed or the first read fails.
func (c *Client) WatchContainerDeletes(ctx context.Context, fn func(whisk.ContainerInfo)) error {
	resp, err := c.etcd.Get(ctx, containerPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cluster: watch containers: %w", err)
	}
	rev := resp.Header.Revision // every deletion up to rev is in the past
	for {
		rev = c.watchContainerDeletes(ctx, rev, fn)
		if ctx.Err() != nil {
			return nil
		}
		if err := c.etcd.Ctx().Err(); err != nil {
			return fmt.Errorf("cluster: watch containers: client closed: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
	}
}

// watchContainerDeletes follows deletions from rev+1 until the watch
// breaks or ctx ends, and returns the last revision seen.
func (c *Client) watchContainerDeletes(ctx context.Context, rev int64, fn func(whisk.ContainerInfo)) int64 {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := c.etcd.Watch(wctx, containerPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1),
		clientv3.WithFilterPut(), clientv3.WithProgressNotify())
	for resp := range ch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			c.log.Warn("container watch fell behind a compaction; deletions in the gap are missed",
				"from", rev+1, "compacted", resp.CompactRevision)
			return max(rev, resp.CompactRevision-1)
		}
		if err := resp.Err(); err != nil {
			c.log.Info("container watch broken; resuming", "from", rev+1, "err", err)
			return rev
		}
		if resp.Canceled {
			return rev
		}
		if resp.IsProgressNotify() {
			rev = max(rev, resp.Header.Revision)
			continue
		}
		for _, ev := range resp.Events {
			rev = max(rev, ev.Kv.ModRevision)
			if info, ok := parseContainerKey(string(ev.Kv.Key)); ok {
				fn(info)
			}
		}
	}
	return rev
}

// parseContainerKey extracts what a container key names; ok is false for
// any other key.
func parseContainerKey(key string) (info whisk.ContainerInfo, ok bool) {
	rest, found := strings.CutPrefix(key, containerPrefix())
	if !found {
		return info, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 {
		return info, false
	}
	var segs [4]string
	for i, p := range []string{parts[0], parts[1], parts[3], parts[4]} {
		if segs[i], ok = unseg(p); !ok {
			return info, false
		}
	}
	rev, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return info, false
	}
	return whisk.ContainerInfo{Namespace: segs[0], Action: segs[1], Rev: rev, InvokerID: segs[2], ContainerID: segs[3]}, true
}
