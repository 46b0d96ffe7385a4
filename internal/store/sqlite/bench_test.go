package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// randomID is an activation id of 128 random bits, as minted before ids
// were time-ordered: every insert lands at a random place of the
// primary-key index.
func randomID() whisk.ActivationID {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return whisk.ActivationID(hex.EncodeToString(b[:]))
}

// noopRecord is the record an invoker writes for a warm no-op call.
func noopRecord(id whisk.ActivationID, start int64) whisk.Activation {
	a := whisk.Activation{Namespace: "guest", Name: "noop", Version: "0.0.1", Subject: "guest",
		ActivationID: id, Start: start, End: start + 1, Duration: 1,
		Response: whisk.NewResponse(whisk.StatusSuccess, json.RawMessage(`{}`)), Logs: []string{}}
	meta := whisk.ActionMeta{Namespace: "guest", Name: "noop", Version: "0.0.1", Kind: "native",
		Limits: whisk.Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1}}
	a.Annotate(meta, whisk.Timings{Queued: 1, Run: 1, Start: whisk.StartWarm}, false)
	return a
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPutActivationIDs writes no-op records from 16 goroutines (the
// invoker's record writers) into a table that already holds prefill
// records, with random or time-ordered ids, as fast as they go
// (rate=max) or at 2,500 records/s (the rate of the throughput benchmark
// at concurrency 64, where batches are smaller); cpu-µs/op is the
// process's CPU time per record (the figure that counts on a loaded
// machine), records/batch the records per transaction.
func BenchmarkPutActivationIDs(b *testing.B) {
	const prefill = 100_000
	for _, rate := range []int{0, 2500} {
		for _, ids := range []string{"random", "ordered"} {
			mint := whisk.NewActivationID
			if ids == "random" {
				mint = randomID
			}
			name := fmt.Sprintf("rate=%d/ids=%s", rate, ids)
			if rate == 0 {
				name = "rate=max/ids=" + ids
			}
			b.Run(name, func(b *testing.B) { benchPut(b, prefill, rate, 16, 2*time.Millisecond, mint) })
		}
	}
}

// BenchmarkPutActivationPace writes no-op records at 2,500/s (the rate of
// the throughput benchmark at concurrency 64) from 16 or 64 writers, with
// commits paced by a CommitDelay or not: larger batches need both more
// concurrent writers and the pacing.
func BenchmarkPutActivationPace(b *testing.B) {
	for _, workers := range []int{16, 256} {
		for _, delay := range []time.Duration{2 * time.Millisecond, 5 * time.Millisecond} {
			b.Run(fmt.Sprintf("workers=%d/delay=%v", workers, delay), func(b *testing.B) {
				benchPut(b, 20_000, 2500, workers, delay, whisk.NewActivationID)
			})
		}
	}
}

func benchPut(b *testing.B, prefill, rate, workers int, delay time.Duration, mint func() whisk.ActivationID) {
	ctx := context.Background()
	s, err := OpenWith(ctx, filepath.Join(b.TempDir(), "eddy.db"), nil, Options{CommitDelay: delay})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now().UnixMilli() - int64(prefill)
	batch := make([]*actReq, 0, 4096)
	for i := range prefill {
		a := noopRecord(mint(), start+int64(i))
		doc, _ := json.Marshal(a)
		batch = append(batch, &actReq{ctx: ctx, args: []any{string(a.ActivationID), a.Namespace, a.Name, a.Start, a.End, string(doc)}})
		if len(batch) == cap(batch) || i == prefill-1 {
			if err := s.writeBatch(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	s.commits.Store(0)
	s.recorded.Store(0)
	// As the invoker's record writer: a queue and 16 workers.
	queue := make(chan whisk.Activation, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for a := range queue {
				if err := s.PutActivation(ctx, a); err != nil {
					b.Error(err)
				}
			}
		})
	}
	t0 := time.Now()
	for i := range b.N {
		if rate > 0 {
			if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		queue <- noopRecord(mint(), time.Now().UnixMilli())
	}
	close(queue)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(s.recorded.Load())/float64(max(s.commits.Load(), 1)), "records/batch")
}

// BenchmarkEncodeActivation is the encoding of a no-op record's document.
func BenchmarkEncodeActivation(b *testing.B) {
	a := noopRecord(whisk.NewActivationID(), time.Now().UnixMilli())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
}
