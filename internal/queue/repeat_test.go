package queue

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestRunSkipsRepeatedActivations publishes activations marked Repeat (a
// re-fired alarm tick) after the queue got the topic: one whose id already
// has a record is skipped, and one published twice with no record yet is
// handed out once (the four messages are all accounted for: two handed,
// two skipped); an unmarked one published as late is not looked up.
func TestRunSkipsRepeatedActivations(t *testing.T) {
	c := newFakeConsumer()
	var (
		mu    sync.Mutex
		asked = map[whisk.ActivationID]int{}
	)
	ran := whisk.ActivationID("0000000000000000000000000000001a")
	q := startQueueWith(t, c, func(d *Deps) {
		d.Recorded = func(_ context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error) {
			mu.Lock()
			defer mu.Unlock()
			out := map[whisk.ActivationID]bool{}
			for _, m := range msgs {
				asked[m.ActivationID]++
				out[m.ActivationID] = m.ActivationID == ran
			}
			return out, nil
		}
	})
	late := t0.Add(time.Minute).UnixMilli() // after the consumer got the topic
	done := activation(string(ran), 1)
	done.Published, done.Repeat = late, true
	twice := activation("0000000000000000000000000000001b", 1)
	twice.Published, twice.Repeat = late, true
	plain := activation("0000000000000000000000000000001c", 1)
	plain.Published = late
	c.publish(t, 0, done)
	c.publish(t, 1, twice)
	c.publish(t, 2, twice)
	c.publish(t, 3, plain)
	var got []whisk.ActivationID
	for range 2 {
		r := fetchOne(t, q)
		if r.Status != rpc.FetchOK {
			t.Fatalf("fetch %+v", r)
		}
		got = append(got, r.Activation.ActivationID)
	}
	if got[0] != twice.ActivationID || got[1] != plain.ActivationID {
		t.Fatalf("handed %v, want [%s %s]", got, twice.ActivationID, plain.ActivationID)
	}
	if n := q.Duplicates(); n != 2 {
		t.Fatalf("duplicates %d, want 2 (the recorded one and the second copy)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked[ran] == 0 || asked[twice.ActivationID] == 0 {
		t.Errorf("repeat-marked activations not looked up: %v", asked)
	}
	if asked[plain.ActivationID] != 0 {
		t.Errorf("looked up %s, unmarked and published after the consumer got the topic", plain.ActivationID)
	}
}
