package controller

import (
	"context"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestRequestActivationID: a request that names its activation id is
// published with that id and marked Repeat (the queue then looks for its
// record); one that does not gets a new id, unmarked.
func TestRequestActivationID(t *testing.T) {
	r := newRig(t, "c0", nil, nil, whisk.SystemLimits{})
	r.run(t)
	ctx := context.Background()
	a := action("hello", nil, nil)
	c := queueConsumer(t, r.bus, a)
	id := whisk.DerivedActivationID(r.clock.Now(), "tick")
	res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: a, ActivationID: id})
	if err != nil || res.ActivationID != id {
		t.Fatalf("Invoke: %+v, %v; want id %s", res, err, id)
	}
	if m := nextMessage(t, c); m.ActivationID != id || !m.Repeat {
		t.Fatalf("message %s repeat %v, want %s marked", m.ActivationID, m.Repeat, id)
	}
	res, err = r.c.Invoke(ctx, Request{Identity: guest(), Action: a})
	if err != nil || res.ActivationID == "" || res.ActivationID == id {
		t.Fatalf("Invoke: %+v, %v; want a new id", res, err)
	}
	if m := nextMessage(t, c); m.ActivationID != res.ActivationID || m.Repeat {
		t.Fatalf("message %s repeat %v, want %s unmarked", m.ActivationID, m.Repeat, res.ActivationID)
	}
}
