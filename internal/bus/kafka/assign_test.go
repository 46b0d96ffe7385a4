package kafka

import (
	"fmt"
	"testing"
	"time"
)

// A consumer of Assign resumes from the group's last commit when its
// predecessor dies (kill -9: no close, no leave), and it does so at once:
// no group session has to expire first. Its own commits are what the next
// one resumes from.
func TestAssignResumesAtOnceAfterCrash(t *testing.T) {
	ctx := t.Context()
	cfgA := testConfig()
	cfgA.SessionTimeout = 10 * time.Second // a group member's would hold the partition this long
	d, a, topic := crashableWithTen(t, cfgA)
	ca, err := a.Assign(ctx, topic, "queue")
	if err != nil {
		t.Fatal(err)
	}
	recs := pollN(t, ca, 10)
	if err := ca.Commit(ctx, recs[4].Offset); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(ctx, topic, "queue"); err == nil {
		t.Fatal("a second Assign in the same Bus worked")
	}
	d.crash()

	b := newBus(t, testConfig())
	start := time.Now()
	cb, err := b.Assign(ctx, topic, "queue")
	if err != nil {
		t.Fatal(err)
	}
	got := pollN(t, cb, 5)
	took := time.Since(start)
	for i, r := range got {
		if want := fmt.Sprintf("m%d", 5+i); string(r.Value) != want || r.Offset != recs[5+i].Offset {
			t.Fatalf("record %d: %q at %d, want %q at %d", i, r.Value, r.Offset, want, recs[5+i].Offset)
		}
	}
	// Within the dead consumer's session (10 s) it read: no session wait.
	if took >= cfgA.SessionTimeout {
		t.Fatalf("the next consumer read after %v, not before the dead one's session (%v) would have expired", took, cfgA.SessionTimeout)
	}
	if err := cb.Commit(ctx, got[2].Offset); err != nil {
		t.Fatal(err)
	}
	cb.Close()
	cc, err := b.Assign(ctx, topic, "queue")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if r := pollN(t, cc, 1); string(r[0].Value) != "m8" {
		t.Fatalf("after the second commit: %q, want m8", r[0].Value)
	}
	t.Logf("the next consumer read %v after the crash (a group member's session: %v)", took.Round(time.Millisecond), cfgA.SessionTimeout)
}
