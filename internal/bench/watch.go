package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// containerPeaks samples, every 50 ms from watchContainers until stop, an
// action's containers in etcd and the creations in flight of the guest
// namespace: their peaks and the last container count.
type containerPeaks struct {
	cancel                   context.CancelFunc
	wg                       sync.WaitGroup
	peak, peakCreating, last atomic.Int64
}

// watchContainers starts sampling fqn's containers; e.etcd must be set.
func (e *env) watchContainers(ctx context.Context, fqn whisk.FQN) *containerPeaks {
	ctx, cancel := context.WithCancel(ctx)
	p := &containerPeaks{cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if cs, err := e.etcd.Containers(ctx, fqn); err == nil {
				n := int64(len(cs))
				p.last.Store(n)
				if n > p.peak.Load() {
					p.peak.Store(n)
				}
			}
			if _, cr, err := e.etcd.CountNamespace(ctx, whisk.GuestNamespace); err == nil && int64(cr) > p.peakCreating.Load() {
				p.peakCreating.Store(int64(cr))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// stop ends the sampling and waits for it; the figures are final after it.
// Stopping twice is harmless.
func (p *containerPeaks) stop() {
	p.cancel()
	p.wg.Wait()
}

// awaitRecords polls the count of name's records since sinceMs (every
// 100 ms) until it reaches want, as long as records keep coming: it
// returns the count short of want once none came for stall (the first
// stall counted from sinceMs). The error is the API's or ctx's.
func (e *env) awaitRecords(ctx context.Context, name string, sinceMs int64, want int, stall time.Duration) (int, error) {
	deadline, seen := time.UnixMilli(sinceMs+1).Add(stall), -1
	for {
		cnt, err := e.countActivations(ctx, name, sinceMs)
		if err != nil {
			return 0, err
		}
		if cnt >= want {
			return cnt, nil
		}
		if cnt > seen {
			seen, deadline = cnt, time.Now().Add(stall)
		}
		if time.Now().After(deadline) {
			return cnt, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// eachRecord calls fn with every record of name since sinceMs, a page of
// 200 at a time.
func (e *env) eachRecord(ctx context.Context, name string, sinceMs int64, fn func(client.Activation)) error {
	for skip := 0; ; skip += 200 {
		recs, err := e.api.ListActivations(ctx, client.ActivationListOptions{Name: name, Limit: 200, Skip: skip, Since: sinceMs, Docs: true})
		if err != nil {
			return err
		}
		for _, r := range recs {
			fn(r)
		}
		if len(recs) < 200 {
			return nil
		}
	}
}
