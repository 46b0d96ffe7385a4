package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
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
// records, with random or time-ordered ids; cpu-µs/op is the process's CPU
// time per record (the figure that counts on a loaded machine).
func BenchmarkPutActivationIDs(b *testing.B) {
	const prefill = 100_000
	for _, ids := range []string{"random", "ordered"} {
		mint := whisk.NewActivationID
		if ids == "random" {
			mint = randomID
		}
		b.Run("ids="+ids, func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenWith(ctx, filepath.Join(b.TempDir(), "eddy.db"), nil, Options{CommitDelay: 2 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			start := time.Now().UnixMilli() - prefill
			batch := make([]*actReq, 0, maxBatch)
			for i := range prefill {
				a := noopRecord(mint(), start+int64(i))
				doc, _ := json.Marshal(a)
				batch = append(batch, &actReq{ctx: ctx, args: []any{string(a.ActivationID), a.Namespace, a.Name, a.Start, a.End, string(doc)}})
				if len(batch) == maxBatch || i == prefill-1 {
					if err := s.writeBatch(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := s.PutActivation(ctx, noopRecord(mint(), time.Now().UnixMilli())); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(b.N)/float64(max(s.batches.Load(), 1)), "records/batch")
		})
	}
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
	_ = fmt.Sprint()
}
