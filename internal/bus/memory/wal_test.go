package memory

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/bustest"
	"github.com/eddy-faas/eddy/internal/testenv"
)

func TestDurableContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus {
		b, err := Open(t.TempDir(), nil, Options{SyncPublish: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func mustOpen(t *testing.T, dir string) *Bus {
	t.Helper()
	b, err := Open(dir, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pollAll reads every record available to group without committing.
func pollAll(t *testing.T, b *Bus, topic, group string) []bus.Record {
	t.Helper()
	c, err := b.Subscribe(context.Background(), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []bus.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		rs, err := c.Poll(ctx, 0)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, rs...)
	}
}

func values(rs []bus.Record) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d:%s ", r.Offset, r.Value)
	}
	return b.String()
}

// A reopened bus has its topics, records, offsets and groups' positions.
func TestDurableReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, dir)
	for _, topic := range []string{"a", "b", "gone"} {
		if err := b.EnsureTopic(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		for _, topic := range []string{"a", "b", "gone"} {
			if err := b.Publish(ctx, topic, []byte(topic+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := b.Subscribe(ctx, "a", "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, 1); err != nil { // a0, a1 done
		t.Fatal(err)
	}
	c.Close()
	if err := b.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	wantA := values(pollAll(t, b, "a", "g"))
	wantB := values(pollAll(t, b, "b", "other"))
	b.Close()

	b = mustOpen(t, dir)
	defer b.Close()
	if got := values(pollAll(t, b, "a", "g")); got != wantA || got != "2:a2 3:a3 4:a4 " {
		t.Errorf("topic a after reopen: %q, want %q", got, wantA)
	}
	if got := values(pollAll(t, b, "b", "other")); got != wantB || got != "0:b0 1:b1 2:b2 3:b3 4:b4 " {
		t.Errorf("topic b after reopen: %q, want %q", got, wantB)
	}
	if err := b.Publish(ctx, "gone", []byte("x")); err == nil {
		t.Error("the deleted topic came back")
	}
	// Offsets go on where they were.
	if err := b.Publish(ctx, "a", []byte("a5")); err != nil {
		t.Fatal(err)
	}
	if got := values(pollAll(t, b, "a", "g")); got != "2:a2 3:a3 4:a4 5:a5 " {
		t.Errorf("topic a after a publish: %q", got)
	}
}

// A log with a torn last entry opens with every whole entry, and new
// entries follow the whole ones.
func TestDurableTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, dir)
	if err := b.EnsureTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Publish(ctx, "t", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	path := filepath.Join(dir, "bus.wal")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Half an entry: a length that promises more than follows.
	if _, err := f.Write([]byte{0, 0, 0, 40, walRecord, 1, 't', 'x'}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for round := range 2 {
		b = mustOpen(t, dir)
		if round == 0 {
			if err := b.Publish(ctx, "t", []byte("3")); err != nil {
				t.Fatal(err)
			}
		}
		if got := values(pollAll(t, b, "t", "g")); got != "0:0 1:1 2:2 3:3 " {
			t.Fatalf("round %d: %q", round, got)
		}
		b.Close()
	}
}

// Compaction keeps the state and shrinks the log.
func TestDurableCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, dir)
	b.wal.compactAt = 16 << 10
	if err := b.EnsureTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(ctx, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("v", 100))
	for i := range 1000 {
		if err := b.Publish(ctx, "t", value); err != nil {
			t.Fatal(err)
		}
		if i < 990 {
			rs, err := c.Poll(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Commit(ctx, rs[0].Offset); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Close()
	// The log's goroutine compacts on a tick when the log is past
	// compactAt: a compaction in the middle of the loop leaves the log to
	// grow again with what the loop wrote after it, until the next tick.
	// Wait for a compaction and for the log to be under compactAt, where
	// no further compaction is due.
	path := filepath.Join(dir, "bus.wal")
	testenv.Eventually(t, time.Minute, "the log compacted and under compactAt", func() bool {
		st, err := os.Stat(path)
		return b.wal.compactions.Load() > 0 && err == nil && st.Size() < 16<<10
	})
	b.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 records of 100 bytes were logged (over 100 KB); what is live
	// is 10 records, so the log was compacted at least once.
	if st.Size() > 40<<10 {
		t.Errorf("log is %d bytes after compaction, want it under 40 KB", st.Size())
	}
	b = mustOpen(t, dir)
	defer b.Close()
	rs := pollAll(t, b, "t", "g")
	if len(rs) != 10 || rs[0].Offset != 990 || rs[9].Offset != 999 {
		t.Fatalf("after reopen: %d records from offset %v, want 990..999", len(rs), rs)
	}
}

// TestDurableCompactionDuringClose compacts the log at the moment a tick
// of the log's goroutine can: Bus.Close has let go of the bus's state but
// has not yet stopped the log. The compaction must leave the log as it is;
// a snapshot of the closed bus, which holds nothing, would replace it and
// the reopened bus would have lost its topics and records.
func TestDurableCompactionDuringClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, dir)
	w := b.wal
	if err := b.EnsureTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.Publish(ctx, "t", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the writer's role, as the log's goroutine does on a tick, so
	// that Close stops short of the log; then compact as that tick would.
	w.acquire()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		b.Close()
	}()
	testenv.Eventually(t, time.Minute, "Close to mark the bus closed", func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return b.closed
	})
	b.compactLog()
	w.release()
	<-closed

	b = mustOpen(t, dir)
	defer b.Close()
	rs := pollAll(t, b, "t", "g")
	if got := values(rs); got != "0:0 1:1 2:2 3:3 4:4 5:5 6:6 7:7 8:8 9:9 " {
		t.Fatalf("after a compaction during Close and a reopen: %q, want records 0..9", got)
	}
}

// walChildEnv names the directory of the child process of TestDurableKill.
const walChildEnv = "EDDY_WAL_CHILD_DIR"

// TestDurableKillChild publishes from 8 goroutines and prints "acked <v>"
// once each Publish returned; it runs only as TestDurableKill's child.
func TestDurableKillChild(t *testing.T) {
	dir := os.Getenv(walChildEnv)
	if dir == "" {
		t.Skip("the child of TestDurableKill")
	}
	b, err := Open(dir, nil, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	if err := b.EnsureTopic(ctx, "t"); err != nil {
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				v := fmt.Sprintf("%d-%d", w, i)
				if err := b.Publish(ctx, "t", []byte(v)); err != nil {
					fmt.Println("publish:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Println("acked", v)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// Every record whose Publish returned is there after a kill -9.
func TestDurableKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurableKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), walChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 2000 {
		line := sc.Text()
		v, ok := strings.CutPrefix(line, "acked ")
		if !ok {
			t.Fatalf("child: %s", line)
		}
		acked[v] = true
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("the child acked %d records before it ended, want 2000", len(acked))
	}
	b := mustOpen(t, dir)
	defer b.Close()
	got := map[string]bool{}
	for _, r := range pollAll(t, b, "t", "g") {
		got[string(r.Value)] = true
	}
	lost := 0
	for v := range acked {
		if !got[v] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost in the kill (%d records replayed)", lost, len(acked), len(got))
	}
	t.Logf("%d acknowledged records, %d replayed (the rest were written, not yet acknowledged)", len(acked), len(got))
}

// Backlog names each topic with records a group has not committed.
func TestBacklog(t *testing.T) {
	ctx := context.Background()
	b := New(nil)
	defer b.Close()
	for _, topic := range []string{"done", "half", "unread", "empty"} {
		if err := b.EnsureTopic(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{"done", "half", "unread"} {
		for i := range 2 {
			if err := b.Publish(ctx, topic, []byte(topic+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for topic, upto := range map[string]int64{"done": 1, "half": 0} {
		c, err := b.Subscribe(ctx, topic, "q")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Commit(ctx, upto); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	got := map[string]string{}
	for _, r := range b.Backlog("q") {
		got[r.Topic] = fmt.Sprintf("%d:%s", r.Offset, r.Value)
	}
	want := map[string]string{"half": "1:half1", "unread": "0:unread0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Backlog = %v, want %v", got, want)
	}
}

// Done remembers what the tracked group committed, across a reopen and a
// compaction, and nothing of other groups.
func TestDoneSurvivesReopenAndCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Bus {
		b, err := Open(dir, nil, Options{Track: "queue"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	if err := b.EnsureTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := b.Publish(ctx, "t", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Both groups subscribe before either commits (records both committed
	// are trimmed).
	cq, err := b.Subscribe(ctx, "t", "queue")
	if err != nil {
		t.Fatal(err)
	}
	co, err := b.Subscribe(ctx, "t", "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Commit(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := cq.Commit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	cq.Close()
	co.Close()
	want := "0:0 1:1 2:2 3:3 "
	if got := values(b.Done()); got != want {
		t.Fatalf("Done = %q, want %q", got, want)
	}
	b.Close()
	b = open()
	if got := values(b.Done()); got != want {
		t.Fatalf("Done after reopen = %q, want %q", got, want)
	}
	b.wal.compactAt = 1
	c, err := b.Subscribe(ctx, "t", "queue")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, 4); err != nil { // logged: the writer compacts after it
		t.Fatal(err)
	}
	c.Close()
	for b.wal.compactions.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.Close()
	b = open()
	defer b.Close()
	if got := values(b.Done()); got != want+"4:4 " {
		t.Fatalf("Done after compaction = %q, want %q", got, want+"4:4 ")
	}
	if got := values(pollAll(t, b, "t", "queue")); got != "5:5 " {
		t.Fatalf("queue group after compaction reads %q, want 5:5", got)
	}
}

// BenchmarkPublishDurable is a sequential Publish of a 400-byte record on
// an in-memory bus and on a durable one (written, not synced, per call).
func BenchmarkPublishDurable(b *testing.B) {
	value := []byte(strings.Repeat("x", 400))
	for _, mode := range []string{"memory", "durable"} {
		b.Run(mode, func(b *testing.B) {
			bus := New(nil)
			if mode == "durable" {
				var err error
				if bus, err = Open(b.TempDir(), nil, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			defer bus.Close()
			ctx := context.Background()
			if err := bus.EnsureTopic(ctx, "t"); err != nil {
				b.Fatal(err)
			}
			c, err := bus.Subscribe(ctx, "t", "g")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := bus.Publish(ctx, "t", value); err != nil {
					b.Fatal(err)
				}
				if err := c.Commit(ctx, int64(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
