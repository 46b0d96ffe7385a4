package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// invokersFresh is how long one read of the invokers' registrations
// answers the count refreshes of every queue of this scheduler.
const invokersFresh = 250 * time.Millisecond

// invokerCache shares one read of the invokers' registrations among the
// queues' count refreshes (the creator reads them afresh for each
// creation).
type invokerCache struct {
	mu   sync.Mutex
	at   time.Time
	invs []whisk.InvokerInfo
	err  error
}

func (c *invokerCache) get(ctx context.Context, now time.Time, read func(context.Context) ([]whisk.InvokerInfo, error)) ([]whisk.InvokerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < invokersFresh && now.Sub(c.at) >= 0 {
		return c.invs, c.err
	}
	c.invs, c.err = read(ctx)
	c.at = now
	return c.invs, c.err
}

// countNamespace is the queues' CountNamespace: the namespace's containers
// and creations, where an idle warm container that a creation may take
// over (a swap, see creator.admit) does not count as held: a namespace at
// its limit with idle containers still has room for its waiting actions,
// and their queues ask instead of failing their activations (429).
func (s *Scheduler) countNamespace(ctx context.Context, ns string) (containers, creations int, err error) {
	containers, creations, err = s.d.Client.CountNamespace(ctx, ns)
	if err != nil {
		return 0, 0, err
	}
	invs, err := s.invokers.get(ctx, s.d.Now(), s.d.Client.Invokers)
	if err != nil {
		return containers, creations, nil // as before: idle containers are not known
	}
	return max(0, containers-s.creator.idleOf(invs, ns)), creations, nil
}

// cpuBusy is the queues' CPUBusy: the mean CPU load of the invokers that
// are up and publish one (0 when none does).
func (s *Scheduler) cpuBusy(ctx context.Context) (int, error) {
	invs, err := s.invokers.get(ctx, s.d.Now(), s.d.Client.Invokers)
	if err != nil {
		return 0, err
	}
	sum, n := 0, 0
	for _, inv := range invs {
		if inv.Status == whisk.InvokerUp && inv.CPUBusyPct > 0 {
			sum += inv.CPUBusyPct
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return sum / n, nil
}
