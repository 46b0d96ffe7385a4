package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/whisk"
)

type leaderEvent struct {
	f       whisk.FQN
	li      whisk.LeaderInfo
	deleted bool
}

func (e leaderEvent) String() string {
	op := "put"
	if e.deleted {
		op = "delete"
	}
	return fmt.Sprintf("%s %s→%s", op, e.f, e.li.SchedulerID)
}

// watchLeaders runs c.WatchLeaders until the test ends and returns its
// events.
func watchLeaders(t *testing.T, c *Client) <-chan leaderEvent {
	t.Helper()
	events := make(chan leaderEvent, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.WatchLeaders(ctx, func(f whisk.FQN, li whisk.LeaderInfo, deleted bool) {
			events <- leaderEvent{f, li, deleted}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchLeaders returned %v after ctx ended, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("WatchLeaders did not return after ctx ended")
		}
	})
	return events
}

// expect reads len(want) events (in any order) and fails on anything else.
func expect(t *testing.T, events <-chan leaderEvent, want ...leaderEvent) {
	t.Helper()
	pending := map[string]int{}
	for _, w := range want {
		pending[w.String()]++
	}
	for range want {
		select {
		case got := <-events:
			if pending[got.String()] == 0 {
				t.Fatalf("unexpected event %s; still waiting for %v", got, pending)
			}
			pending[got.String()]--
		case <-time.After(15 * time.Second):
			t.Fatalf("timed out waiting for %v", pending)
		}
	}
	select {
	case got := <-events:
		t.Fatalf("unexpected extra event %s", got)
	case <-time.After(100 * time.Millisecond):
	}
}

func put(f whisk.FQN, sid string) leaderEvent {
	return leaderEvent{f: f, li: whisk.LeaderInfo{SchedulerID: sid, Addr: "127.0.0.1:1"}}
}

func del(f whisk.FQN, sid string) leaderEvent {
	e := put(f, sid)
	e.deleted = true
	return e
}

// setLeader writes or deletes a leader key directly (no lease).
func setLeader(t *testing.T, c *Client, e leaderEvent) {
	t.Helper()
	ctx := ctxT(t)
	var err error
	if e.deleted {
		_, err = c.etcd.Delete(ctx, leaderKey(e.f))
	} else {
		b, _ := json.Marshal(e.li)
		_, err = c.etcd.Put(ctx, leaderKey(e.f), string(b))
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatchLeadersResumesAfterCompaction(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	writer := dial(t, e.Endpoints())
	p := newProxy(t, e.Endpoints()[0])
	watcher := dial(t, []string{p.url()})
	ctx := ctxT(t)

	f1 := whisk.FQN{Namespace: "a", Name: "one"}
	f2 := whisk.FQN{Namespace: "a/b", Name: "two"} // escaped namespace
	f3 := whisk.FQN{Namespace: "a", Name: "three x"}
	f4 := whisk.FQN{Namespace: "a", Name: "four"}

	// Current leaders are delivered first, as puts.
	setLeader(t, writer, put(f1, "s1"))
	setLeader(t, writer, put(f2, "s2"))
	if _, err := writer.etcd.Put(ctx, followerKey(f1, "s9"), "{}"); err != nil { // not a leader: ignored
		t.Fatal(err)
	}
	events := watchLeaders(t, watcher)
	expect(t, events, put(f1, "s1"), put(f2, "s2"))

	// Then changes; through a session too.
	s, _ := newSession(t, writer, 5*time.Second)
	if won, _, err := s.ElectLeader(ctx, f3, put(f3, "s3").li); err != nil || !won {
		t.Fatalf("ElectLeader: %v %v", won, err)
	}
	expect(t, events, put(f3, "s3"))
	if err := s.ResignLeader(ctx, f3); err != nil {
		t.Fatal(err)
	}
	expect(t, events, del(f3, "s3"))
	setLeader(t, writer, put(f1, "s5")) // a new leader for f1
	expect(t, events, put(f1, "s5"))

	// Cut the watcher off. Meanwhile: f2's leader goes, f4 gets one, f1
	// changes twice, and etcd compacts past everything the watcher saw.
	p.pause()
	setLeader(t, writer, del(f2, "s2"))
	setLeader(t, writer, put(f4, "s4"))
	setLeader(t, writer, put(f1, "s6"))
	setLeader(t, writer, put(f1, "s7"))
	resp, err := writer.etcd.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.etcd.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	p.resume()

	// The watcher resynchronises: the deletion in the gap is delivered,
	// and the latest values.
	expect(t, events, del(f2, "s2"), put(f4, "s4"), put(f1, "s7"))

	// And it keeps following.
	setLeader(t, writer, del(f4, "s4"))
	expect(t, events, del(f4, "s4"))
}

func TestWatchLeadersSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	clientPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := EmbedConfig{
		Dir:       t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", peerPort),
	}
	e := startEtcdAt(t, cfg)
	watcher := dial(t, e.Endpoints())

	f1 := whisk.FQN{Namespace: "ns", Name: "one"}
	f2 := whisk.FQN{Namespace: "ns", Name: "two"}
	setLeader(t, watcher, put(f1, "s1"))
	events := watchLeaders(t, watcher)
	expect(t, events, put(f1, "s1"))

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the watch is broken
	e = startEtcdAt(t, cfg)            // same data, same URLs
	writer := dial(t, e.Endpoints())
	setLeader(t, writer, del(f1, "s1"))
	setLeader(t, writer, put(f2, "s2"))
	expect(t, events, del(f1, "s1"), put(f2, "s2"))
}
