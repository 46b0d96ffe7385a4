package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func handout(id string) whisk.Handout {
	return whisk.Handout{InvokerID: "i1", ContainerID: "c1", HandedAt: 1, Message: whisk.ActivationMessage{ActivationID: whisk.ActivationID(id)}}
}

// A leader claims its epoch and the hand-outs of its predecessor; once a
// newer leadership exists, the old epoch's hand-outs and confirmations are
// refused with kind Conflict, and only the leader's lease can claim.
func TestHandoutFencing(t *testing.T) {
	e := startEtcd(t)
	c := dial(t, e.Endpoints())
	ctx := ctxT(t)
	f := whisk.FQN{Namespace: "ns", Name: "a"}
	s1, _ := newSession(t, c, 5*time.Second)
	s2, _ := newSession(t, c, 5*time.Second)
	if won, _, err := s1.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "s1"}); err != nil || !won {
		t.Fatalf("elect s1: %v %v", won, err)
	}
	if _, _, err := s2.ClaimHandouts(ctx, f); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("s2 claimed s1's leadership: %v", err)
	}
	e1, hs, err := s1.ClaimHandouts(ctx, f)
	if err != nil || len(hs) != 0 {
		t.Fatalf("claim s1: %d %v %v", e1, hs, err)
	}
	if err := c.PutHandout(ctx, f, e1, handout("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.PutHandout(ctx, f, e1, handout("y"), []whisk.ActivationID{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfirmEpoch(ctx, f, e1); err != nil {
		t.Fatal(err)
	}
	// s1's leadership ends (its key resigned); s2 is elected.
	if err := s1.ResignLeader(ctx, f); err != nil {
		t.Fatal(err)
	}
	if won, _, err := s2.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "s2"}); err != nil || !won {
		t.Fatalf("elect s2: %v %v", won, err)
	}
	e2, hs, err := s2.ClaimHandouts(ctx, f)
	if err != nil || e2 == e1 || len(hs) != 1 || hs[0].Message.ActivationID != "y" {
		t.Fatalf("claim s2: epoch %d (s1's %d), %+v, %v; want y alone under a new epoch", e2, e1, hs, err)
	}
	if err := c.PutHandout(ctx, f, e1, handout("z"), nil); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("the old epoch's hand-out: %v, want Conflict", err)
	}
	if err := c.ConfirmEpoch(ctx, f, e1); !whisk.IsKind(err, whisk.Conflict) {
		t.Fatalf("the old epoch confirmed: %v", err)
	}
	if err := c.DeleteHandouts(ctx, f, []whisk.ActivationID{"y"}); err != nil {
		t.Fatal(err)
	}
	if _, hs, err := s2.ClaimHandouts(ctx, f); err != nil || len(hs) != 0 {
		t.Fatalf("after delete: %+v %v", hs, err)
	}
}

// BenchmarkHandout measures what a hand-out record costs a leader queue,
// against the count-only read a queue already makes (CountContainers) and a
// plain put, in the same run on one embedded etcd member.
func BenchmarkHandout(b *testing.B) {
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: b.TempDir(), Log: testLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	c, err := Dial(ctx, e.Endpoints(), testLog())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := NewSession(ctx, c, 10*time.Second, testLog())
	if err != nil {
		b.Fatal(err)
	}
	f := whisk.FQN{Namespace: "ns", Name: "a"}
	if won, _, err := s.ElectLeader(ctx, f, whisk.LeaderInfo{SchedulerID: "s1"}); err != nil || !won {
		b.Fatal(won, err)
	}
	epoch, _, err := s.ClaimHandouts(ctx, f)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("PutHandout", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			var forget []whisk.ActivationID
			if i > 0 {
				forget = []whisk.ActivationID{whisk.ActivationID(fmt.Sprint(i - 1))}
			}
			if err := c.PutHandout(ctx, f, epoch, handout(fmt.Sprint(i)), forget); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CountContainers", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.CountContainers(ctx, f, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Put", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.etcd.Put(ctx, "eddy/bench", "v"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
