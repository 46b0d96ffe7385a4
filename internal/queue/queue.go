package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/lograte"
	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// State is where a queue is in its life (README.md has the diagram).
type State int32

// The states of a queue.
const (
	Running  State = iota // consuming, handing out, deciding every tick
	Idle                  // nothing to do; removed after the idle timeout
	Flushing              // container creation failing and no container: activations wait (or fail at once for developer errors)
	Removing              // stopping: parked fetches answered, consumer being closed
	Removed               // done; Run has returned or is returning
)

var stateNames = [...]string{"running", "idle", "flushing", "removing", "removed"}

// End is why a queue ended (Queue.Ended); its owner resigns leadership
// accordingly.
type End int32

// Why queues end.
const (
	EndNone      End = iota // Run has not returned
	EndStopped              // ctx ended or Stop: the scheduler stops; a follower may take over
	EndIdle                 // idle for the idle timeout with no container left: the queue is retired
	EndTopicGone            // the action's topic was deleted: the queue is retired
	EndAbandoned            // Abandon: another scheduler leads the action
	EndLost                 // the bus gave the topic to another consumer (kind Conflict): no longer leader
)

var endNames = [...]string{"none", "stopped", "idle", "topic gone", "abandoned", "lost"}

func (e End) String() string {
	if e < 0 || int(e) >= len(endNames) {
		return fmt.Sprintf("end(%d)", int(e))
	}
	return endNames[e]
}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// Defaults (README.md lists the flags that change them).
const (
	DefaultTick        = 100 * time.Millisecond
	DefaultPark        = time.Second
	DefaultRetention   = 60 * time.Second
	DefaultIdleTimeout = 30 * time.Second
	DefaultFlushRetry  = time.Second
	// DefaultCreateBackoff is the longest wait after creations that failed
	// for want of room (Config.CreateBackoff).
	DefaultCreateBackoff = 2 * time.Second
	DefaultMaxBuffer     = 10000
	// DefaultCountTimeout bounds one round of etcd counts (CountContainers
	// and CountNamespace); they run off the owner goroutine.
	DefaultCountTimeout = time.Second
	// DurationWindow is how many recent run times the average covers.
	DurationWindow = 10
	// minDurations is how many run times make the average known.
	minDurations = 3
	// pollBatch is the most records one Poll returns.
	pollBatch = 128
	// pollWait bounds how long a moved commit watermark waits for the
	// reader's next commit: a Poll that began with nothing to commit waits
	// for records without a deadline (an idle queue costs nothing), and is
	// ended pollWait after the owner moved the watermark.
	pollWait = 250 * time.Millisecond
	// DefaultDedupWindow is how many recent activation ids a queue
	// remembers to skip duplicates.
	DefaultDedupWindow = 4096
	// DefaultDedupSkew is the clock skew allowed between the publisher's
	// Published stamp and the queue's clock when deciding which records a
	// predecessor may have handed out (see Deps.Recorded).
	DefaultDedupSkew = time.Second
)

// Config is one queue's configuration; zero durations take the defaults.
type Config struct {
	// Action is the action as known when the queue starts; the queue adopts
	// newer revisions from the messages it consumes.
	Action whisk.ActionMeta
	// NamespaceLimit is the namespace's container limit until a message
	// carries one (whisk.ActivationMessage.NamespaceLimit).
	NamespaceLimit int
	Tick           time.Duration // decision tick
	Park           time.Duration // how long a fetch waits for an activation
	Retention      time.Duration // queued longer → failed with whisk.MsgNotInitiated
	IdleTimeout    time.Duration // Idle this long (and no containers) → Removed
	FlushRetry     time.Duration // while Flushing, at most one creation per FlushRetry
	CreateBackoff  time.Duration // after failed creations, no creation for 100 ms doubling up to this, with jitter
	FlushGrace     time.Duration // Flushing, empty, no arrival this long → Idle (default Retention)
	MaxBuffer      int           // the buffer's bound; past it the rest waits in the bus (one Poll batch, at most 128, may pass it)
	CountTimeout   time.Duration // bounds one round of etcd counts
	DedupWindow    int           // recent activation ids remembered to skip duplicates
	DedupSkew      time.Duration // clock skew allowed when checking records with Deps.Recorded
	// GoneGrace and LostAfter time the error records of activations lost
	// with their container (lost.go).
	GoneGrace time.Duration // a container's key vanished this long ago → fail what it had not finished
	LostAfter time.Duration // handed out, no record this long past the action's limits → failed
	// Provisional says Action holds only the action's name and a revision
	// (a queue re-created for a container's fetch, with no action metadata
	// at hand): the queue takes the metadata of the first message of that
	// revision or newer, asks for no container before it, and never hands
	// an older message its incomplete metadata.
	Provisional bool
}

// CreateRequest asks the scheduler for one container. Done must be called
// exactly once with the outcome (it never blocks).
type CreateRequest struct {
	ID     string
	Action whisk.ActionMeta
	// NamespaceLimit is the namespace's concurrent-containers limit the
	// queue decided with: the creator admits the creation only if the
	// namespace (and the action, Action.Limits.Instances) has room in
	// etcd at that moment, else it answers Refused.
	NamespaceLimit int
	Done           func(CreationResult)
}

// CreationResult is the final outcome of a CreateRequest, after the
// creator's own retries.
type CreationResult struct {
	ID        string
	OK        bool
	Developer bool // the action's fault: queued activations fail with a developer error
	// Refused says the creator found no room under the namespace's or the
	// action's limit when it came to write the creation (another queue
	// took it since the counts the decision used): no container, and no
	// failure either; the queue decides again on fresh counts.
	Refused bool
	Error   string // why it failed, shown in developer error records
	// Action, when it has a newer revision than the queue's, is the
	// action's current metadata as the invoker found it (the creation
	// failed because the action changed): the queue adopts it.
	Action whisk.ActionMeta
}

// Deps are what a queue needs from its scheduler. All but Log and Ticker
// are required.
type Deps struct {
	Log *slog.Logger
	// Warnings rate-limits the warnings a flood repeats (failed
	// creations), shared by the queues of a scheduler; optional (each
	// queue then has its own).
	Warnings *lograte.Limiter
	Now      func() time.Time
	// Subscribe opens the consumer of the action's topic (group "queue").
	// The reader goroutine calls it, retrying until it succeeds.
	Subscribe func(ctx context.Context) (bus.Consumer, error)
	// CountContainers counts the action's containers of a revision
	// (count-only read); called only when the queue has work, never on
	// the owner goroutine, with a deadline (Config.CountTimeout).
	CountContainers func(ctx context.Context, rev int64) (int, error)
	// CountNamespace counts the namespace's containers and creations;
	// called like CountContainers.
	CountNamespace func(ctx context.Context) (containers, creations int, err error)
	// CPUBusy, if set, reads the invokers' CPU load in % (the throughput
	// rule's brake, Decide); called with the counts. Without it the
	// throughput rule is off.
	CPUBusy func(ctx context.Context) (int, error)
	// Create starts a container creation; it must not block.
	Create func(CreateRequest)
	// Fail stores an activation record made by the queue and sends the
	// completion to the controller that waits for it.
	Fail func(ctx context.Context, msg whisk.ActivationMessage, rec whisk.Activation) error
	// Ticker, if set, makes the queue's tick source in place of its own
	// wake-up timer (tests drive time with it): the queue then does its
	// periodic work exactly when a value comes, taken as the time of the
	// tick. Without it the queue arms one timer for the next moment it has
	// something to do (README.md "Wake-ups"): every Config.Tick while
	// activations wait, never while it is idle but for its idle timeout.
	Ticker func(d time.Duration) (<-chan time.Time, func())
	// Recorded, if set, reports which of msgs already have an activation
	// record (a predecessor leader handed them out and they ran, or failed
	// them). The reader asks it, off the owner goroutine, about every
	// record published before the queue's consumer got the topic (plus
	// Config.DedupSkew): only those can have been handed out by a previous
	// leader without a commit. Recorded ones are skipped and committed. An
	// error counts as "none recorded" (a duplicate is better than a loss).
	Recorded func(ctx context.Context, msgs []whisk.ActivationMessage) (map[whisk.ActivationID]bool, error)
	// InvokerAlive, if set, reports whether an invoker is registered. A
	// container key removed while its invoker lives (the container went
	// idle or was removed, the invoker is shutting down, or it got a new
	// lease) is the invoker's to record: the queue acts on a vanished
	// container key only when its invoker is gone as well. Called off the
	// owner goroutine. Without it a vanished key is taken as the
	// container's loss. Activations handed out are tracked only when
	// Recorded is set (lost.go).
	InvokerAlive func(ctx context.Context, invokerID string) (bool, error)
	// NamespaceShare, if set, reads how many containers (and creations)
	// each action of the namespace holds and which actions want a share
	// (Share, without Limit: the queue knows it). Called like
	// CountNamespace, with the counts, while the action holds containers
	// or is throttled; without it the namespace is not shared (the first
	// action to take the limit keeps it).
	//
	// giveBackOnly says the queue reads only to give idle containers back
	// (it holds containers, has no backlog, is not throttled and wants
	// nothing): an implementation may then answer with no counts and no
	// wanting actions when no action of the namespace wants a share, which
	// it can learn without reading every container key of the namespace.
	NamespaceShare func(ctx context.Context, giveBackOnly bool) (held map[string]int, wanting map[string]bool, err error)
	// Want publishes (true) or withdraws (false) the action's demand for a
	// share of the namespace (an etcd key the other queues read through
	// NamespaceShare). Called off the owner goroutine, one call at a time,
	// and once more as the queue ends if a demand is published.
	Want func(ctx context.Context, want bool) error
	// Handover, if set, records every hand-out for a successor leader
	// before the fetch is answered, fences this queue once a newer
	// leadership exists, and gives the queue, as it starts, what its
	// predecessors handed out (handover.go). It needs Recorded.
	Handover Handover
}

// Queue is one action's leader queue. Create it with New, run it with Run.
type Queue struct {
	cfg Config
	d   Deps
	log *slog.Logger
	fqn whisk.FQN

	msgs    chan []inbound // one Poll's records at a time
	fetches chan *fetch
	cancels chan *fetch
	results chan *CreationResult
	failed  chan failBatch
	claimc  chan []whisk.Handout // predecessors' hand-outs, once claimedEpoch is set (handover.go)
	handedc chan *handResult     // hand-out records that came back
	forgotc chan *forgetResult   // hand-out key deletions that came back
	countc  chan *countResult    // at most one count in flight
	endc    chan ending          // the reader found the topic gone or taken
	stopc   chan struct{}
	final   chan struct{} // closed once commitTo holds the last watermark
	done    chan struct{}

	// Safe from any goroutine.
	state     atomic.Int32
	commitTo  atomic.Int64 // the reader commits up to here
	poll      pollWaker    // ends the reader's open-ended Poll once commitTo moves
	abandoned atomic.Bool  // Abandon: someone else leads now
	ended     atomic.Int32 // End, set when Run returns
	dups      atomic.Int64 // duplicate activations skipped
	lostCount atomic.Int64 // activations failed as lost with their container (lost.go)
	fenced    atomic.Bool  // a newer leadership exists (handover.go)
	claimed   atomic.Int64 // activations a predecessor handed out, taken over (handover.go)
	// redelivered counts activations handed out again because their
	// hand-out never reached its container (unanswered.go).
	redelivered atomic.Int64
	// claimedEpoch is the epoch the reader claimed (handover.go), set
	// before the owner gets the claim: the leadership the queue hands out
	// under, records under and commits under (0: not claimed yet).
	claimedEpoch atomic.Int64
	stats        statsState // what Stats reads (stats.go)

	// Everything below is owned by the goroutine running Run (the loop),
	// grouped by concern; each group's fields are the loop's to read and
	// write, and its methods live in the file of that concern.
	ctx      context.Context
	countCtx context.Context // counts run under it; cancelled when Run ends
	st       State
	why      End // why the queue ends, once it does
	actionState
	handoffState
	commitState
	creationState
	countState
	shareState
	failState
	timerState
	lostState
	handoverState
}

// actionState is the action the queue serves, as last learned
// (handoff.go adopts newer revisions).
type actionState struct {
	meta        whisk.ActionMeta
	provisional bool // meta holds only the name and a revision (Config.Provisional)
	nsLimit     int  // the namespace's concurrent-containers limit
}

// handoffState is the buffer and the fetches waiting for it (handoff.go).
type handoffState struct {
	buf       []*entry
	parked    []*fetch
	recent    recents // activation ids consumed lately (duplicates are skipped)
	lastFetch time.Time
	lastMsg   time.Time
	durs      []int64 // the last DurationWindow run times (counts.go: avg)
	durNext   int
	arrived   arrivals // activations entering the buffer, for the arrival rate
}

// commitState is what the owner publishes for the reader to commit
// (reader.go).
type commitState struct {
	offs      offsets
	published int64 // the watermark last stored in commitTo
}

// creationState is the container creations the queue asked for and the
// Flushing state's reason (counts.go: decideNow, handleResult).
type creationState struct {
	inflight map[string]int64 // creation id → the revision it creates
	lastAsk  time.Time
	// After a creation failed for want of room: no creation before
	// holdUntil; the delay doubles with each such failure (backoff) and
	// starts again after a creation succeeds: 100 ms doubling to
	// Config.CreateBackoff, with jitter.
	holdUntil time.Time
	backoff   *retry.Backoff
	flushDev  bool
	flushMsg  string
}

// countState is the counts decisions use. No etcd call runs on the owner
// goroutine: decisions use the last known counts, and a helper goroutine
// refreshes them (counts.go).
type countState struct {
	counting   bool      // a count is in flight
	counted    bool      // the counts below are of the current revision
	countGen   int       // bumped when lastCount is raised by a fetch or an ack
	lastCount  int       // containers at the last count (adjusted by fetches and acks)
	nsCount    int       // namespace containers at the last count
	nsCreating int       // namespace creations at the last count
	cpuPct     int       // the invokers' CPU load at the last count (Deps.CPUBusy)
	countAt    time.Time // when the last successful count came back
	wantDecide bool      // a decision waits for the counts
	throttled  bool      // the last decision was held back by the namespace limit
}

// shareState is the namespace share as last read and what the queue does
// about it (Deps.NamespaceShare, Deps.Want; counts.go).
type shareState struct {
	share        Share       // the last read
	shareAt      time.Time   // when it came back
	sharePartial bool        // it was a give-back-only read without counts
	wanting      bool        // the action wants a share (to publish)
	wantPub      bool        // the demand as last published
	release      int         // containers to tell to go (FetchRelease) on their next fetch
	releasedAt   []time.Time // when the containers told to go lately were told (releaseGrace)
	released     int64       // containers given back, in all
}

// failState is the error records being stored (failures.go).
type failState struct {
	failing int       // fail batches running
	refail  []failure // records whose Fail errored, tried again next tick
}

// timerState is when the loop wakes next (timers.go).
type timerState struct {
	wakeAt    time.Time // the wake-up timer is armed for then (zero: not armed)
	wakes     int       // times the wake-up timer fired (read by tests after Done)
	idleSince time.Time
	lostWake  time.Time // no lost check is due before then (zero: none tracked); see checkLost
}

// lostState is the activations handed out that may still run, per
// container (lost.go).
type lostState struct {
	work   map[ctrID]*ctrWork
	gonec  chan ctrID
	lostc  chan *lostCheck
	checks int // lost checks in flight
}

type ending struct {
	why End
	err error
}

// New validates cfg and deps and returns a queue ready to Run.
func New(cfg Config, deps Deps) (*Queue, error) {
	if cfg.Action.Namespace == "" || cfg.Action.Name == "" {
		return nil, errors.New("queue: action namespace and name are required")
	}
	if deps.Now == nil || deps.Subscribe == nil || deps.CountContainers == nil ||
		deps.CountNamespace == nil || deps.Create == nil || deps.Fail == nil {
		return nil, errors.New("queue: Now, Subscribe, CountContainers, CountNamespace, Create and Fail are required")
	}
	if deps.Handover != nil && deps.Recorded == nil {
		return nil, errors.New("queue: Handover needs Recorded")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Tick, DefaultTick)
	def(&cfg.Park, DefaultPark)
	def(&cfg.Retention, DefaultRetention)
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	def(&cfg.FlushRetry, DefaultFlushRetry)
	def(&cfg.CreateBackoff, DefaultCreateBackoff)
	def(&cfg.FlushGrace, cfg.Retention)
	def(&cfg.CountTimeout, DefaultCountTimeout)
	def(&cfg.DedupSkew, DefaultDedupSkew)
	def(&cfg.GoneGrace, DefaultGoneGrace)
	def(&cfg.LostAfter, DefaultLostAfter)
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = DefaultMaxBuffer
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Warnings == nil {
		deps.Warnings = lograte.New(0, deps.Now)
	}
	fqn := cfg.Action.FQN()
	q := &Queue{
		cfg: cfg, d: deps, fqn: fqn,
		log:         deps.Log.With("action", fqn.String()),
		msgs:        make(chan []inbound, 1),
		fetches:     make(chan *fetch),
		cancels:     make(chan *fetch),
		results:     make(chan *CreationResult),
		failed:      make(chan failBatch),
		claimc:      make(chan []whisk.Handout),
		handedc:     make(chan *handResult),
		forgotc:     make(chan *forgetResult),
		countc:      make(chan *countResult, 1),
		endc:        make(chan ending, 1),
		stopc:       make(chan struct{}, 1),
		final:       make(chan struct{}),
		done:        make(chan struct{}),
		ctx:         context.Background(),
		countCtx:    context.Background(),
		actionState: actionState{meta: cfg.Action, provisional: cfg.Provisional, nsLimit: cfg.NamespaceLimit},
		handoffState: handoffState{
			recent: recents{ids: map[whisk.ActivationID]struct{}{}, size: cfg.DedupWindow},
		},
		commitState:   commitState{offs: offsets{mark: -1, done: map[int64]bool{}}},
		creationState: creationState{inflight: map[string]int64{}, backoff: retry.New(MinStaleThreshold, cfg.CreateBackoff)},
		lostState:     lostState{work: map[ctrID]*ctrWork{}, gonec: make(chan ctrID, 16), lostc: make(chan *lostCheck)},
	}
	q.commitTo.Store(-1)
	q.published = -1
	now := deps.Now()
	q.lastFetch, q.lastMsg = now, now
	return q, nil
}

// FQN is the action the queue serves.
func (q *Queue) FQN() whisk.FQN { return q.fqn }

// State is the queue's current state (safe from any goroutine).
func (q *Queue) State() State { return State(q.state.Load()) }

// Done is closed when Run has returned.
func (q *Queue) Done() <-chan struct{} { return q.done }

// Ended says why the queue ended; EndNone until Run has returned.
func (q *Queue) Ended() End { return End(q.ended.Load()) }

// Duplicates is the number of activations the queue skipped because it
// had consumed them already or a record of them existed (safe from any
// goroutine).
func (q *Queue) Duplicates() int64 { return q.dups.Load() }

// Stop ends the queue: it answers parked fetches, commits what was handed
// out, closes the consumer (unhanded records go to the next consumer) and
// Run returns.
func (q *Queue) Stop() {
	select {
	case q.stopc <- struct{}{}:
	default:
	}
}

// Abandon ends the queue like Stop: someone else leads the action now. It
// still commits what it handed out, so those activations do not run twice
// (a bus that fenced this consumer off refuses the commit; that is logged).
func (q *Queue) Abandon() {
	q.abandoned.Store(true)
	q.Stop()
}

// CreationDone reports the outcome of a CreateRequest. It never blocks for
// long: after Run returned it drops the result.
func (q *Queue) CreationDone(r CreationResult) {
	select {
	case q.results <- &r:
	case <-q.done:
	}
}

// Fetch hands a container's request to the queue and waits for the answer:
// an activation at once when one is buffered, else after up to the park
// time. When ctx ends first, an activation already given to this fetch is
// put back at the head of the queue.
func (q *Queue) Fetch(ctx context.Context, req *whisk.FetchRequest) (*whisk.FetchResponse, error) {
	f := &fetch{req: *req, reply: make(chan *whisk.FetchResponse, 1)}
	select {
	case q.fetches <- f:
	case <-q.done:
		return &whisk.FetchResponse{Status: whisk.FetchNoQueue}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-f.reply:
		if ctx.Err() != nil && r.Status == whisk.FetchOK {
			// The caller went away while (or just before) the activation
			// came: it would be lost with the caller's connection. Give it
			// back; the owner puts it at the head of the queue.
			f.reply <- r
			q.cancel(f)
			return nil, ctx.Err()
		}
		return r, nil
	case <-q.done:
		select {
		case r := <-f.reply:
			return r, nil
		default:
			return &whisk.FetchResponse{Status: whisk.FetchNoQueue}, nil
		}
	case <-ctx.Done():
		q.cancel(f) // the owner takes back what it may have handed
		return nil, ctx.Err()
	}
}

// cancel tells the owner that f's caller went away; the owner drains f.reply
// and puts an activation it finds there back at the head of the queue.
func (q *Queue) cancel(f *fetch) {
	select {
	case q.cancels <- f:
	case <-q.done:
	}
}

// Run owns the queue until it is Removed: by the idle timeout, Stop,
// Abandon or the end of ctx. It returns after its reader goroutine ended
// and the consumer was closed.
func (q *Queue) Run(ctx context.Context) error {
	defer close(q.done)
	q.ctx = ctx
	countCtx, stopCounts := context.WithCancel(ctx)
	q.countCtx = countCtx
	readCtx, stopReader := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	go q.read(readCtx, readerDone)
	var tick <-chan time.Time
	stopTick := func() {}
	if q.d.Ticker != nil {
		tick, stopTick = q.d.Ticker(q.cfg.Tick)
	}
	// Without a Ticker, one timer wakes the queue when it next has
	// something to do (arm); an idle queue sleeps until its idle timeout.
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	q.log.Debug("queue started", "rev", q.meta.Rev)
	q.startCount(q.d.Now()) // so the first arrival finds counts
	q.loop(ctx, tick, wake)
	stopTick()
	stopCounts()
	q.shutdown(ctx)
	stopReader()
	<-readerDone
	q.setState(Removed)
	if q.why == EndNone {
		q.why = EndStopped
	}
	q.ended.Store(int32(q.why))
	q.log.Debug("queue removed", "unhanded", len(q.buf), "why", q.why, "duplicates", q.dups.Load())
	return nil
}

// loop handles events until the queue is removing. Its frame is what an
// idle queue's goroutine keeps on its stack: the rare events' work is in
// methods of their own.
func (q *Queue) loop(ctx context.Context, tick <-chan time.Time, wake *time.Timer) {
	for q.st != Removed && q.st != Removing {
		q.publishMark()
		q.publishStats()
		if tick == nil {
			q.arm(wake, q.d.Now())
		}
		in := q.msgs
		if len(q.buf) >= q.cfg.MaxBuffer {
			in = nil // the rest waits in the bus
		}
		select {
		case <-ctx.Done():
			q.why = EndStopped
			q.setState(Removing)
		case <-q.stopc:
			q.why = EndStopped
			if q.abandoned.Load() {
				q.why = EndAbandoned
			}
			q.setState(Removing)
		case ms := <-in:
			now := q.d.Now()
			for i := range ms {
				q.handleMessage(now, &ms[i])
			}
		case f := <-q.fetches:
			q.handleFetch(q.d.Now(), f)
		case f := <-q.cancels:
			q.handleCancel(f)
		case r := <-q.results:
			q.handleResult(q.d.Now(), r)
		case b := <-q.failed:
			q.handleFailed(b)
		case c := <-q.claimc:
			q.handleClaim(q.d.Now(), c)
		case r := <-q.handedc:
			q.handleHanded(r)
		case r := <-q.forgotc:
			q.handleForgot(r)
		case c := <-q.countc:
			q.handleCount(q.d.Now(), c)
		case id := <-q.gonec:
			q.handleGone(q.d.Now(), id)
		case r := <-q.lostc:
			q.handleCheck(q.d.Now(), r)
		case e := <-q.endc:
			q.handleEnd(e)
		case now := <-tick:
			q.tick(now)
		case <-wake.C:
			q.wakeAt = time.Time{}
			q.wakes++
			q.tick(q.d.Now())
		}
	}
}

// handleEnd takes the reader's news that the topic is gone or taken.
func (q *Queue) handleEnd(e ending) {
	q.why = e.why
	switch e.why {
	case EndLost:
		// Another consumer has the topic: it is the leader now and
		// gets every uncommitted record again. Hand out nothing
		// more; what was handed stays handed (its commit fails, and
		// the successor skips what has a record by then).
		q.log.Warn("queue: the bus gave the action's topic to another consumer; ending the queue",
			"unhanded", len(q.buf), "err", e.err)
		q.dropUnhanded(q.buf)
		q.buf = nil
	default:
		// The topic is gone (the action was deleted, maybe
		// re-created with a new topic): end, so the next
		// invocation elects a fresh queue on the new topic; never
		// run a new action's activations with this queue's
		// metadata.
		q.log.Warn("queue: the action's topic is gone; removing the queue", "err", e.err)
	}
	q.setState(Removing)
}

// shutdown withdraws the share demand, answers parked fetches, lets
// running checks and fail batches finish (their records are stored or
// their offsets stay uncommitted) and publishes the last watermark for the
// reader to commit.
func (q *Queue) shutdown(ctx context.Context) {
	if q.counting {
		q.handleCount(q.d.Now(), <-q.countc)
	}
	if q.d.Want != nil && (q.wantPub || q.wanting) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.CountTimeout)
		if err := q.d.Want(wctx, false); err != nil {
			q.log.Warn("queue: withdrawing the namespace share demand", "err", err)
		}
		cancel()
		q.wanting, q.wantPub = false, false
	}

	// Shut down: answer parked fetches, let running fail batches finish
	// (their records are stored or their offsets stay uncommitted), publish
	// the last watermark and let the reader commit it and close.
	for _, f := range q.parked {
		f.reply <- &whisk.FetchResponse{Status: whisk.FetchUnavailable}
	}
	q.parked = nil
	for q.handing > 0 { // a recorded hand-out is answered: it runs
		q.handleHanded(<-q.handedc)
	}
	for q.checks > 0 { // a lost check that finds activations to fail starts a fail batch
		q.handleCheck(q.d.Now(), <-q.lostc)
	}
	for q.failing > 0 {
		q.handleFailed(<-q.failed)
	}
	q.forgetAtEnd(ctx)
	q.publishMark()
	close(q.final)
}

func (q *Queue) setState(s State) {
	if q.st == s {
		return
	}
	q.log.Debug("queue state", "from", q.st, "to", s)
	q.st = s
	q.state.Store(int32(s))
}
