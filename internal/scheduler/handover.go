package scheduler

import (
	"context"

	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Handovers records the hand-outs of this scheduler's leader queues in etcd
// for their successors and fences queues whose leadership ended
// (*cluster.Session has it; internal/queue, handover.go).
type Handovers interface {
	ClaimHandouts(ctx context.Context, f whisk.FQN) (epoch int64, handed []whisk.Handout, err error)
	PutHandout(ctx context.Context, f whisk.FQN, epoch int64, h whisk.Handout, forget []whisk.ActivationID) error
	ConfirmEpoch(ctx context.Context, f whisk.FQN, epoch int64) error
	DeleteHandouts(ctx context.Context, f whisk.FQN, ids []whisk.ActivationID) error
	// DeposeLeader deletes f's leader key if it still names li (a
	// follower found li's process gone); whether it did.
	DeposeLeader(ctx context.Context, f whisk.FQN, li whisk.LeaderInfo) (bool, error)
}

// handover is queue.Handover for one action.
type handover struct {
	h Handovers
	f whisk.FQN
}

var _ queue.Handover = handover{}

func (h handover) Claim(ctx context.Context) (int64, []whisk.Handout, error) {
	return h.h.ClaimHandouts(ctx, h.f)
}

func (h handover) Record(ctx context.Context, epoch int64, ho whisk.Handout, forget []whisk.ActivationID) error {
	return h.h.PutHandout(ctx, h.f, epoch, ho, forget)
}

func (h handover) Forget(ctx context.Context, ids []whisk.ActivationID) error {
	return h.h.DeleteHandouts(ctx, h.f, ids)
}

func (h handover) Confirm(ctx context.Context, epoch int64) error {
	return h.h.ConfirmEpoch(ctx, h.f, epoch)
}
