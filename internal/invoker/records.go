package invoker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// recordQueue bounds the records waiting for the store; a full queue makes
// proxies wait (back-pressure) rather than drop a record.
const recordQueue = 1024

// recordWorkers is how many records are written at once: a store that
// group-commits concurrent writes (store/sqlite) then writes the records
// that piled up during one commit in the next, and a record being retried
// does not hold up the others. Each worker waits for its record's commit,
// so a batch holds at most recordWorkers records: with commits paced every
// 2 ms or more (sqlite.Options.CommitDelay), 16 workers capped the records
// written near 5,000/s, and larger batches cost less CPU per record
// (sqlite.BenchmarkPutActivationPace). A store without group commit
// (postgres) bounds its own concurrency with its connection pool.
const recordWorkers = 256

// Retry policy of one record write. A write that fails because the store
// is unreachable or slow (whisk.Unavailable, whisk.Timeout: the database
// is down, restarting or failing over) is retried until it succeeds, for
// as long as the invoker runs (and, on shutdown, until recordFlushLimit):
// an outage of the store delays records, it does not lose them. Other
// failures are tried recordAttempts times.
const (
	recordAttempts   = 8
	recordBackoff    = 50 * time.Millisecond
	recordMaxBackoff = 2 * time.Second
	recordPutTimeout = 10 * time.Second
	recordFlushLimit = 15 * time.Second // total time a flush on shutdown may take
)

// recordWriter writes activation records off the response path:
// recordWorkers goroutines on a bounded queue, retries with back-off, and a
// flush on close.
type recordWriter struct {
	store Actions
	log   *slog.Logger
	queue chan whisk.Activation

	backoff, maxBackoff time.Duration // recordBackoff, recordMaxBackoff (tests shorten them)

	mu     sync.Mutex
	closed bool
	stop   chan struct{} // closed when the flush deadline passed
	timer  *time.Timer   // closes stop
}

func newRecordWriter(store Actions, log *slog.Logger) *recordWriter {
	return &recordWriter{store: store, log: log, queue: make(chan whisk.Activation, recordQueue), stop: make(chan struct{}),
		backoff: recordBackoff, maxBackoff: recordMaxBackoff}
}

// put queues a record; it blocks while the queue is full. After close the
// record is written synchronously so that it is never lost.
func (w *recordWriter) put(a whisk.Activation) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.write(a)
		return
	}
	// Sending under the lock keeps close from closing the channel under a
	// sender; the writer goroutine never takes the lock, so it drains.
	w.queue <- a
	w.mu.Unlock()
}

// run writes queued records until close, then flushes what is left.
func (w *recordWriter) run() {
	var wg sync.WaitGroup
	for range recordWorkers {
		wg.Go(func() {
			for a := range w.queue {
				w.write(a)
			}
		})
	}
	wg.Wait()
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// close stops taking records; run returns once the queue is flushed or the
// flush limit passed.
func (w *recordWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	close(w.queue)
	w.timer = time.AfterFunc(recordFlushLimit, func() { close(w.stop) })
}

// write stores one record, retrying failures (see recordAttempts).
func (w *recordWriter) write(a whisk.Activation) {
	backoff := retry.New(w.backoff, w.maxBackoff)
	for i := 1; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), recordPutTimeout)
		err := w.store.PutActivation(ctx, a)
		cancel()
		if err == nil {
			if i > 1 {
				w.log.Info("activation record stored after retries", "activation", a.ActivationID, "attempts", i)
			}
			return
		}
		transient := whisk.IsKind(err, whisk.Unavailable) || whisk.IsKind(err, whisk.Timeout)
		if !transient && i >= recordAttempts {
			w.log.Error("activation record lost: the store keeps failing", "activation", a.ActivationID, "err", err)
			return
		}
		if i == 1 || i%10 == 0 {
			w.log.Warn("storing an activation record failed; retrying", "activation", a.ActivationID, "attempt", i, "err", err)
		}
		select {
		case <-time.After(backoff.Next()):
		case <-w.stop:
			w.log.Error("activation record lost: shutdown flush limit passed", "activation", a.ActivationID, "err", err)
			return
		}
	}
}
