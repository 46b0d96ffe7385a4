package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/rpc"
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

// Defaults (BRIEF §6).
const (
	DefaultTick        = 100 * time.Millisecond
	DefaultPark        = time.Second
	DefaultRetention   = 60 * time.Second
	DefaultIdleTimeout = 30 * time.Second
	DefaultFlushRetry  = time.Second
	DefaultMaxBuffer   = 10000
	// DefaultCountTimeout bounds one round of etcd counts (CountContainers
	// and CountNamespace); they run off the owner goroutine.
	DefaultCountTimeout = time.Second
	// DurationWindow is how many recent run times the average covers.
	DurationWindow = 10
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
	Now func() time.Time
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
}

// Sharing the namespace's containers (see Share).
const (
	// ShareEvery is how often a queue that holds containers but has no
	// backlog reads the namespace share, to give back idle containers.
	ShareEvery = time.Second
	// shareFresh is how old a share read may be to act on it.
	shareFresh = 2 * time.Second
	// releaseGrace is how long a container told to go may still be
	// registered (it deregisters once removed): share reads within it
	// count it, so the give-back they compute is reduced by it.
	releaseGrace = 5 * time.Second
)

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
	countc  chan *countResult // at most one count in flight
	endc    chan ending       // the reader found the topic gone or taken
	stopc   chan struct{}
	final   chan struct{} // closed once commitTo holds the last watermark
	done    chan struct{}

	state     atomic.Int32
	commitTo  atomic.Int64 // the reader commits up to here
	poll      pollWaker    // ends the reader's open-ended Poll once commitTo moves
	abandoned atomic.Bool  // Abandon: someone else leads now
	ended     atomic.Int32 // End, set when Run returns
	dups      atomic.Int64 // duplicate activations skipped

	// Everything below is owned by the goroutine running Run.
	ctx         context.Context
	countCtx    context.Context // counts run under it; cancelled when Run ends
	wakeAt      time.Time       // the wake-up timer is armed for then (zero: not armed)
	wakes       int             // times the wake-up timer fired (read by tests after Done)
	published   int64           // the watermark last stored in commitTo
	lostWake    time.Time       // no lost check is due before then (zero: none tracked); see checkLost
	st          State
	meta        whisk.ActionMeta
	provisional bool // meta holds only the name and a revision (Config.Provisional)
	nsLimit     int
	buf         []*entry
	parked      []*fetch
	inflight    map[string]int64 // creation id → the revision it creates
	// Counts (BRIEF §3 goal 7: no etcd call on the owner goroutine):
	// decisions use the last known counts; a helper goroutine refreshes them.
	counting   bool      // a count is in flight
	counted    bool      // the counts below are of the current revision
	countGen   int       // bumped when lastCount is raised by a fetch or an ack
	nsCount    int       // namespace containers at the last count
	nsCreating int       // namespace creations at the last count
	countAt    time.Time // when the last successful count came back
	wantDecide bool      // a decision waits for the counts
	offs       offsets
	durs       []int64
	durNext    int
	lastCount  int // containers at the last count (adjusted by fetches and acks)
	lastFetch  time.Time
	lastMsg    time.Time
	idleSince  time.Time
	lastAsk    time.Time
	flushDev   bool
	flushMsg   string
	throttled  bool
	failing    int       // fail batches running
	refail     []failure // records whose Fail errored, tried again next tick
	started    time.Time
	why        End     // why the queue ends, once it does
	recent     recents // activation ids consumed lately (duplicates are skipped)
	// Activations handed out that may still run, per container (lost.go).
	work      map[ctrID]*ctrWork
	gonec     chan ctrID
	lostc     chan *lostCheck
	checks    int // lost checks in flight
	lostCount atomic.Int64
	// Sharing the namespace (Deps.NamespaceShare, Deps.Want).
	share        Share       // the last read
	shareAt      time.Time   // when it came back
	sharePartial bool        // it was a give-back-only read without counts
	wanting      bool        // the action wants a share (to publish)
	wantPub      bool        // the demand as last published
	release      int         // containers to tell to go (FetchRelease) on their next fetch
	releasedAt   []time.Time // when the containers told to go lately were told (releaseGrace)
	released     int64       // containers given back, in all
}

type ending struct {
	why End
	err error
}

// recents is a bounded set of activation ids: the oldest is forgotten when
// a new one comes and it is full.
type recents struct {
	ids  map[whisk.ActivationID]struct{}
	ring []whisk.ActivationID
	next int
	size int
}

func (r *recents) has(id whisk.ActivationID) bool {
	_, ok := r.ids[id]
	return ok
}

func (r *recents) add(id whisk.ActivationID) {
	if r.has(id) {
		return
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, id)
	} else {
		delete(r.ids, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % r.size
	}
	r.ids[id] = struct{}{}
}

type countResult struct {
	rev          int64
	gen          int
	at           time.Time // when the count was started
	counts       bool      // the counts were read (else only the share: startShareRead)
	containers   int
	nsContainers int
	nsCreations  int
	err          error
	// The namespace share, when read (shared), and the demand published.
	shared   bool
	partial  bool // a give-back-only read that found no demand: no counts
	held     map[string]int
	wanting  map[string]bool
	shareErr error
	wantSet  bool // Want was called with want
	want     bool
	wantErr  error
}

type inbound struct {
	off int64
	msg whisk.ActivationMessage
	err error
	dup bool // the activation already has a record (Deps.Recorded)
}

type entry struct {
	msg     whisk.ActivationMessage
	off     int64
	tracked bool // off counts in the commit watermark
	enq     time.Time
}

type fetch struct {
	req    rpc.FetchRequest
	reply  chan *rpc.FetchResponse
	at     time.Time
	handed *entry
}

type failure struct {
	e   *entry
	rec whisk.Activation
}

type failBatch struct {
	ok  []*entry
	bad []failure
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
	fqn := cfg.Action.FQN()
	q := &Queue{
		cfg: cfg, d: deps, fqn: fqn,
		log:         deps.Log.With("action", fqn.String()),
		msgs:        make(chan []inbound, 1),
		fetches:     make(chan *fetch),
		cancels:     make(chan *fetch),
		results:     make(chan *CreationResult),
		failed:      make(chan failBatch),
		countc:      make(chan *countResult, 1),
		endc:        make(chan ending, 1),
		stopc:       make(chan struct{}, 1),
		final:       make(chan struct{}),
		done:        make(chan struct{}),
		ctx:         context.Background(),
		countCtx:    context.Background(),
		meta:        cfg.Action,
		provisional: cfg.Provisional,
		nsLimit:     cfg.NamespaceLimit,
		inflight:    map[string]int64{},
		offs:        offsets{mark: -1, done: map[int64]bool{}},
		recent:      recents{ids: map[whisk.ActivationID]struct{}{}, size: cfg.DedupWindow},
		work:        map[ctrID]*ctrWork{},
		gonec:       make(chan ctrID, 16),
		lostc:       make(chan *lostCheck),
	}
	q.commitTo.Store(-1)
	q.published = -1
	now := deps.Now()
	q.started, q.lastFetch, q.lastMsg = now, now, now
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
func (q *Queue) Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	f := &fetch{req: *req, reply: make(chan *rpc.FetchResponse, 1)}
	select {
	case q.fetches <- f:
	case <-q.done:
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-f.reply:
		if ctx.Err() != nil && r.Status == rpc.FetchOK {
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
			return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
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
		f.reply <- &rpc.FetchResponse{Status: rpc.FetchUnavailable}
	}
	q.parked = nil
	for q.checks > 0 { // a lost check that finds activations to fail starts a fail batch
		q.handleCheck(q.d.Now(), <-q.lostc)
	}
	for q.failing > 0 {
		q.handleFailed(<-q.failed)
	}
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

// read owns the consumer: it polls, forwards records to the owner, and
// commits the watermark the owner publishes. With a consumer that can call
// back (notifier) the reader keeps no goroutine while nothing is there to
// read or commit: see reader.park.
func (q *Queue) read(ctx context.Context, done chan<- struct{}) {
	r := q.subscribe(ctx)
	if r == nil {
		close(done)
		return
	}
	r.done = done
	r.run(ctx)
}

// notifier is a consumer that calls back instead of blocking in Poll (the
// in-memory bus). Notify calls f once when a Poll would not block and
// returns false, or returns true, keeping no f, when a Poll would not
// block now; f must return at once.
type notifier interface {
	Notify(f func()) (ready bool)
}

// run consumes until the reader stops or parks; once stopped it commits the
// last watermark, closes the consumer and closes done.
func (r *reader) run(ctx context.Context) {
	if r.consume(ctx) {
		return // parked: a new goroutine runs on when woken
	}
	r.close(ctx)
	close(r.done)
}

// subscribe opens the consumer; nil when ctx ended or the topic is gone.
// A Subscribe of a group whose previous consumer (a dead leader's) is
// still in it waits, bounded by ctx, until the bus gives this one the
// topic; a bus that refuses at once (kind Conflict) is asked again.
func (q *Queue) subscribe(ctx context.Context) *reader {
	var c bus.Consumer
	began := q.d.Now()
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		var err error
		if c, err = q.d.Subscribe(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if whisk.IsKind(err, whisk.NotFound) {
			q.end(EndTopicGone, err)
			return nil
		}
		q.log.Warn("queue: subscribe failed; retrying", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return nil
		}
	}
	subscribed := q.d.Now()
	if w := subscribed.Sub(began); w > time.Second {
		q.log.Info("queue: consuming the action's topic after waiting for the previous consumer", "waited", w)
	}
	return &reader{q: q, c: c, checkBefore: subscribed.Add(q.cfg.DedupSkew).UnixMilli(), committed: -1}
}

// reader is the state of the reader goroutine once subscribed.
type reader struct {
	q *Queue
	c bus.Consumer
	// Records published before this consumer got the topic may have been
	// handed out by a predecessor without a commit: those are checked.
	checkBefore int64 // epoch ms
	committed   int64 // the last offset committed
	lost        bool  // the bus gave the topic to another consumer
	done        chan<- struct{}
	// A parked reader (park) has no goroutine; pmu orders park's set-up
	// before the goroutine that a wake starts (unpark).
	pmu       sync.Mutex
	parked    bool
	stopAfter func() bool // stops the ctx callback of the park
}

// consume polls, forwards records to the owner and commits the watermark;
// true when it parked instead (the goroutine must then return at once).
// Its frame is what an idle queue's reader keeps on its stack (with a
// consumer that cannot park): the work on records and errors is in methods
// of their own.
func (r *reader) consume(ctx context.Context) (parked bool) {
	r.unpark()
	q := r.q
	n, _ := r.c.(notifier)
	for ctx.Err() == nil {
		r.commit(ctx)
		if r.lost {
			return false
		}
		if n != nil && r.park(ctx, n) {
			return true
		}
		// The Poll waits for records with no deadline; once the owner
		// moves the watermark (or it is ahead of the commit already: a
		// commit failed or raced), the Poll ends within pollWait so that
		// the reader commits it.
		pctx, cancel := context.WithCancel(ctx)
		q.poll.begin(cancel)
		if q.commitTo.Load() > r.committed {
			q.poll.moved()
		}
		recs, err := r.c.Poll(pctx, pollBatch)
		q.poll.end()
		cancel()
		if err != nil {
			if !r.pollFailed(ctx, pctx, err) {
				return false
			}
			continue
		}
		if !r.forward(ctx, recs) {
			return false
		}
	}
	return false
}

// park leaves the reader with no goroutine until a Poll would not block,
// ctx ends, or pollWait after the owner moved the watermark: the first of
// them starts a goroutine that runs on (run). False, with nothing
// registered, when a Poll would not block now.
func (r *reader) park(ctx context.Context, n notifier) bool {
	var woken atomic.Bool
	wake := func() {
		if woken.CompareAndSwap(false, true) {
			go r.run(ctx)
		}
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.q.poll.begin(wake)
	if n.Notify(wake) {
		r.q.poll.end()
		return false
	}
	r.parked = true
	r.stopAfter = context.AfterFunc(ctx, wake)
	if r.q.commitTo.Load() > r.committed {
		r.q.poll.moved()
	}
	return true
}

// unpark undoes what park registered, in the goroutine a wake started.
func (r *reader) unpark() {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if !r.parked {
		return
	}
	r.parked = false
	r.q.poll.end()
	r.stopAfter()
	r.stopAfter = nil
}

// commit commits the watermark the owner published, if it moved.
func (r *reader) commit(ctx context.Context) {
	t := r.q.commitTo.Load()
	if t <= r.committed || r.lost {
		return
	}
	if err := r.c.Commit(ctx, t); err != nil {
		if whisk.IsKind(err, whisk.Conflict) {
			r.lost = true
			r.q.end(EndLost, err)
			return
		}
		r.q.log.Warn("queue: commit failed", "offset", t, "err", err)
		return
	}
	r.committed = t
}

// close commits the owner's last watermark and closes the consumer.
func (r *reader) close(ctx context.Context) {
	<-r.q.final
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	r.commit(cctx)
	cancel()
	if err := r.c.Close(); err != nil {
		r.q.log.Warn("queue: closing the consumer", "err", err)
	}
}

// pollFailed takes a Poll's error; false when the reader must stop.
func (r *reader) pollFailed(ctx, pctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	// A deleted topic (NotFound) or a closed consumer (Invalid)
	// never comes back: polling it again is useless. A topic the
	// bus gave to another consumer (Conflict) has a new leader.
	switch {
	case whisk.IsKind(err, whisk.NotFound), whisk.IsKind(err, whisk.Invalid):
		r.q.end(EndTopicGone, err)
		return false
	case whisk.IsKind(err, whisk.Conflict):
		r.q.end(EndLost, err)
		return false
	}
	if pctx.Err() == nil {
		r.q.log.Warn("queue: poll failed", "err", err)
		return sleep(ctx, time.Second)
	}
	return true // the Poll was ended to commit
}

// forward decodes recs and hands them to the owner in one send; false
// when ctx ended first.
func (r *reader) forward(ctx context.Context, recs []bus.Record) bool {
	ins := make([]inbound, len(recs))
	for i, rec := range recs {
		ins[i].off = rec.Offset
		if err := whisk.DecodeActivationMessage(rec.Value, &ins[i].msg); err != nil {
			ins[i].err = err
		}
	}
	r.q.markRecorded(ctx, ins, r.checkBefore)
	select {
	case r.q.msgs <- ins:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollWaker ends the reader's Poll pollWait after the owner moved the
// commit watermark, so that a queue with nothing to commit polls without a
// timer and one that handed something out commits it soon. The timer is
// armed at most once per Poll.
type pollWaker struct {
	mu     sync.Mutex
	cancel func() // ends the Poll in progress or wakes the parked reader; nil between polls
	gen    uint64 // counts Polls, so a late fire spares the next one
	armed  bool
	armGen uint64      // the Poll the timer was armed for
	timer  *time.Timer // calls fire; made on first use
}

// begin registers the cancel of a Poll about to start (reader).
func (p *pollWaker) begin(cancel func()) {
	p.mu.Lock()
	p.cancel = cancel
	p.gen++
	p.mu.Unlock()
}

// end forgets the Poll that returned (reader).
func (p *pollWaker) end() {
	p.mu.Lock()
	p.cancel = nil
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
	p.mu.Unlock()
}

// moved says the watermark moved: the Poll in progress ends within pollWait.
func (p *pollWaker) moved() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel == nil || p.armed {
		return
	}
	p.armed, p.armGen = true, p.gen
	if p.timer == nil {
		p.timer = time.AfterFunc(pollWait, p.fire)
		return
	}
	p.timer.Reset(pollWait)
}

func (p *pollWaker) fire() {
	p.mu.Lock()
	cancel := p.cancel
	if !p.armed || p.armGen != p.gen {
		cancel = nil // the Poll it was armed for has returned
	}
	p.armed = false
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// publishMark hands the watermark to the reader when it moved (owner).
func (q *Queue) publishMark() {
	if m := q.offs.mark; m != q.published {
		q.published = m
		q.commitTo.Store(m)
		q.poll.moved()
	}
}

// markRecorded asks Deps.Recorded about the records published before
// checkBefore (epoch ms) and marks those with a record as duplicates.
func (q *Queue) markRecorded(ctx context.Context, ins []inbound, checkBefore int64) {
	if q.d.Recorded == nil {
		return
	}
	var ask []whisk.ActivationMessage
	for _, in := range ins {
		if in.err == nil && in.msg.Published < checkBefore {
			ask = append(ask, in.msg)
		}
	}
	if len(ask) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, q.cfg.CountTimeout+time.Duration(len(ask))*10*time.Millisecond)
	done, err := q.d.Recorded(rctx, ask)
	cancel()
	if err != nil {
		q.log.Warn("queue: checking for records of activations a predecessor may have handed out", "n", len(ask), "err", err)
	}
	for i := range ins {
		if ins[i].err == nil && done[ins[i].msg.ActivationID] {
			ins[i].dup = true
		}
	}
}

// end asks the owner to end the queue (the reader found the topic gone, or
// taken by another consumer).
func (q *Queue) end(why End, err error) {
	select {
	case q.endc <- ending{why, err}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// handleMessage takes one consumed record.
func (q *Queue) handleMessage(now time.Time, in *inbound) {
	q.offs.add(in.off)
	if in.err != nil {
		q.log.Error("queue: undecodable activation message skipped", "offset", in.off, "err", in.err)
		q.offs.finish(in.off)
		return
	}
	if id := in.msg.ActivationID; in.dup || id != "" && q.recent.has(id) {
		// Handed out before (by this queue, or by a predecessor whose
		// commit did not happen): never run twice.
		q.dups.Add(1)
		q.log.Info("queue: duplicate activation skipped", "activation", id, "offset", in.off, "recorded", in.dup)
		q.offs.finish(in.off)
		return
	}
	q.recent.add(in.msg.ActivationID)
	e := &entry{msg: in.msg, off: in.off, tracked: true, enq: enqueued(in.msg, now)}
	q.lastMsg = now
	if in.msg.NamespaceLimit > 0 {
		q.nsLimit = in.msg.NamespaceLimit
	}
	if in.msg.Action.Rev > q.meta.Rev || q.provisional && in.msg.Action.Rev == q.meta.Rev {
		q.adopt(in.msg.Action)
	}
	if q.st == Flushing && q.flushDev {
		q.startFail([]failure{{e, q.record(e, now, whisk.StatusDeveloperError, q.flushMsg)}})
		return
	}
	wasIdle := q.st == Idle
	if wasIdle {
		q.setState(Running)
	}
	if f := q.nextParked(); f != nil {
		q.hand(f, e)
		return
	}
	q.buf = append(q.buf, e)
	// BRIEF §3 goal 7: no container known and none coming → ask now, not
	// at the next tick.
	if q.st == Running && (wasIdle || q.lastCount == 0) && q.inFlight() == 0 {
		q.decide(now)
	}
}

// enqueued is when an activation entered the system: when the controller
// published it (so retention and the queued time survive a fail-over and
// agree with the invoker's records), or now when that is unknown or ahead
// of our clock.
func enqueued(m whisk.ActivationMessage, now time.Time) time.Time {
	if m.Published <= 0 {
		return now
	}
	if p := time.UnixMilli(m.Published); p.Before(now) {
		return p
	}
	return now
}

// adopt makes meta the queue's revision: older containers get mismatch,
// and a failing creation of the old revision no longer holds it back
// (handleResult forgets results of older revisions' creations).
func (q *Queue) adopt(meta whisk.ActionMeta) {
	changed := meta.Rev != q.meta.Rev
	q.meta = meta
	q.provisional = false
	if !changed {
		return
	}
	q.log.Info("queue: new action revision", "to", meta.Rev)
	q.lastCount = 0
	q.counted = false // the counts were of the older revision
	q.parked = slices.DeleteFunc(q.parked, func(f *fetch) bool {
		if f.req.Rev < meta.Rev {
			f.reply <- &rpc.FetchResponse{Status: rpc.FetchMismatch}
			return true
		}
		return false
	})
	if q.st == Flushing {
		q.flushDev, q.flushMsg = false, ""
		q.setState(Running)
	}
}

func (q *Queue) handleFetch(now time.Time, f *fetch) {
	f.at = now
	r := &f.req
	if r.LastDurationMs > 0 {
		q.addDuration(r.LastDurationMs)
	}
	switch {
	case q.st == Removing || q.st == Removed:
		f.reply <- &rpc.FetchResponse{Status: rpc.FetchUnavailable}
		return
	case r.Rev < q.meta.Rev:
		f.reply <- &rpc.FetchResponse{Status: rpc.FetchMismatch}
		return
	case !r.Alive:
		q.lastCount = max(q.lastCount-1, 0)
		f.reply <- &rpc.FetchResponse{Status: rpc.FetchEmpty}
		return
	}
	q.lastFetch = now
	q.fetchedBy(r.InvokerID, r.ContainerID)
	if q.release > 0 && q.shareIsFresh(now, shareFresh) {
		q.releaseTo(now, f)
		return
	}
	if q.lastCount < 1 {
		q.lastCount = 1
		q.countGen++
	}
	if q.st == Idle || q.st == Flushing { // a live container is here
		q.flushDev, q.flushMsg = false, ""
		q.setState(Running)
	}
	if len(q.buf) > 0 {
		e := q.buf[0]
		q.buf[0] = nil
		q.buf = q.buf[1:]
		q.hand(f, e)
		return
	}
	q.parked = append(q.parked, f)
}

// nextParked removes and returns the parked fetch to serve next: warm
// containers first, then the longest waiting.
func (q *Queue) nextParked() *fetch {
	if len(q.parked) == 0 {
		return nil
	}
	i := slices.IndexFunc(q.parked, func(f *fetch) bool { return f.req.Warm })
	if i < 0 {
		i = 0
	}
	f := q.parked[i]
	q.parked = slices.Delete(q.parked, i, i+1)
	return f
}

// hand gives e to f; its offset is done.
func (q *Queue) hand(f *fetch, e *entry) {
	msg := e.msg
	if msg.Action.Rev < q.meta.Rev && !q.provisional {
		msg.Action = q.meta // older revisions run on the current code
	}
	f.handed = e
	f.reply <- &rpc.FetchResponse{Status: rpc.FetchOK, Activation: &msg}
	q.handedTo(f, e, &msg)
	if e.tracked {
		q.offs.finish(e.off)
	}
}

// handleCancel forgets a fetch whose caller went away and takes back an
// activation it had been given but not received.
func (q *Queue) handleCancel(f *fetch) {
	q.parked = slices.DeleteFunc(q.parked, func(p *fetch) bool { return p == f })
	select {
	case r := <-f.reply:
		if r.Status != rpc.FetchOK || f.handed == nil {
			return
		}
		e := f.handed
		q.takenBack(f, e)
		if e.tracked && !q.offs.reopen(e.off) {
			e.tracked = false // already committed past; kept in memory only
		}
		q.buf = append([]*entry{e}, q.buf...)
		for len(q.buf) > 0 && len(q.parked) > 0 {
			g := q.nextParked()
			h := q.buf[0]
			q.buf = q.buf[1:]
			q.hand(g, h)
		}
	default:
	}
}

func (q *Queue) handleResult(now time.Time, r *CreationResult) {
	rev, ok := q.inflight[r.ID]
	if !ok {
		return
	}
	delete(q.inflight, r.ID)
	if r.Refused {
		q.log.Debug("queue: creation refused at a limit", "creation", r.ID, "why", r.Error)
		return
	}
	if r.Action.Rev > q.meta.Rev && r.Action.FQN() == q.fqn {
		q.adopt(r.Action) // the invoker found the action changed
	}
	if rev < q.meta.Rev {
		// A creation of an older revision: its container (if any) gets
		// mismatch, and its failure says nothing about the current code.
		q.log.Debug("queue: outcome of an older revision's creation ignored",
			"creation", r.ID, "rev", rev, "current", q.meta.Rev, "ok", r.OK, "err", r.Error)
		q.askIfNone(now)
		return
	}
	if r.OK {
		q.lastCount++
		q.countGen++
		if q.st == Flushing {
			q.flushDev, q.flushMsg = false, ""
			q.setState(Running)
		}
		return
	}
	q.log.Warn("queue: container creation failed", "creation", r.ID, "developer", r.Developer, "err", r.Error)
	if q.lastCount > 0 || (q.st != Running && q.st != Flushing) {
		return // containers exist and drain the queue
	}
	msg := r.Error
	if msg == "" {
		msg = whisk.MsgNoContainer
	}
	q.flushDev, q.flushMsg = r.Developer, msg
	q.setState(Flushing)
	if r.Developer {
		q.failAll(now, whisk.StatusDeveloperError, msg)
	}
}

// askIfNone decides at once when activations wait and no container of the
// current revision is known or coming (BRIEF §3 goal 7).
func (q *Queue) askIfNone(now time.Time) {
	if q.st == Running && len(q.buf) > 0 && q.lastCount == 0 && q.inFlight() == 0 {
		q.decide(now)
	}
}

// inFlight is the number of creations in flight for the current revision.
func (q *Queue) inFlight() int {
	n := 0
	for _, rev := range q.inflight {
		if rev >= q.meta.Rev {
			n++
		}
	}
	return n
}

func (q *Queue) failAll(now time.Time, status int, text string) {
	if len(q.buf) == 0 {
		return
	}
	fs := make([]failure, 0, len(q.buf))
	for _, e := range q.buf {
		fs = append(fs, failure{e, q.record(e, now, status, text)})
	}
	q.buf = nil
	q.startFail(fs)
}

// ConcurrentRetryAfter is the Retry-After of the concurrent-containers
// limit: containers free up as activations finish, so a short constant.
const ConcurrentRetryAfter = time.Second

// failThrottled fails the buffer at the namespace's concurrent-containers
// limit: OpenWhisk's message, and the throttle marker (whisk.AnnThrottled)
// from which the controller answers 429 with Retry-After and the limit.
func (q *Queue) failThrottled(now time.Time, count, allowed int) {
	if len(q.buf) == 0 {
		return
	}
	t := &whisk.Throttle{Limit: whisk.LimitConcurrentContainers, Count: count, Allowed: allowed, RetryAfter: ConcurrentRetryAfter}
	fs := make([]failure, 0, len(q.buf))
	for _, e := range q.buf {
		rec := q.record(e, now, whisk.StatusWhiskError, t.Message())
		rec.MarkThrottled(t)
		fs = append(fs, failure{e, rec})
	}
	q.buf = nil
	q.startFail(fs)
}

// tick is the periodic work: expiry, retries of failed records, the
// scaling decision and the idle transitions.
func (q *Queue) tick(now time.Time) {
	q.parked = slices.DeleteFunc(q.parked, func(f *fetch) bool {
		if now.Sub(f.at) >= q.cfg.Park {
			f.reply <- &rpc.FetchResponse{Status: rpc.FetchEmpty}
			return true
		}
		return false
	})
	q.expire(now)
	q.checkLost(now)
	if len(q.refail) > 0 && q.failing == 0 {
		fs := q.refail
		q.refail = nil
		q.startFail(fs)
	}
	if !q.shareIsFresh(now, shareFresh) {
		q.release = 0 // acting on an old read could give back too much
	}
	if len(q.buf) == 0 {
		q.wanting = false
	}
	if q.d.NamespaceShare != nil && len(q.buf) == 0 &&
		(q.wanting != q.wantPub || (q.st == Running && q.lastCount > 0 && now.Sub(q.shareAt) >= ShareEvery)) {
		q.startShareRead(now) // withdraw the demand; give idle containers back
	}
	switch q.st {
	case Running, Flushing:
		if len(q.buf) > 0 {
			q.decide(now)
			return
		}
		if len(q.inflight) > 0 || len(q.parked) > 0 {
			return
		}
		quiet := now.Sub(q.lastFetch) >= 2*q.cfg.Park && now.Sub(q.lastMsg) >= 2*q.cfg.Park
		if q.st == Flushing {
			quiet = now.Sub(q.lastMsg) >= q.cfg.FlushGrace
		}
		if quiet {
			q.flushDev, q.flushMsg = false, ""
			q.idleSince = now
			q.setState(Idle)
		}
	case Idle:
		if now.Sub(q.idleSince) >= q.cfg.IdleTimeout {
			q.startCount(now) // handleCount removes the queue when none is left
		}
	}
}

// arm sets the wake-up timer for the queue's next duty (nextWake), unless
// it is armed for that time or earlier already: an early wake-up costs one
// tick that finds little to do and arms the timer again.
func (q *Queue) arm(t *time.Timer, now time.Time) {
	w := q.nextWake(now)
	if w.IsZero() || !q.wakeAt.IsZero() && !q.wakeAt.After(w) {
		return
	}
	q.wakeAt = w
	t.Reset(w.Sub(now))
}

// nextWake is when tick next has something to do; zero for never. It is
// never less than one Config.Tick away, so a duty that stays due (a count
// in flight holds it up) cannot spin the owner; while activations wait,
// the queue ticks every Config.Tick as before.
func (q *Queue) nextWake(now time.Time) time.Time {
	soon := now.Add(q.cfg.Tick)
	if len(q.buf) > 0 || len(q.refail) > 0 && q.failing == 0 || q.wanting || q.wantPub {
		return soon // decisions, expiry, record retries, the share demand
	}
	var w time.Time
	at := func(t time.Time) {
		if w.IsZero() || t.Before(w) {
			w = t
		}
	}
	if len(q.parked) > 0 {
		at(q.parked[0].at.Add(q.cfg.Park)) // parked in arrival order: the first expires first
	}
	if !q.lostWake.IsZero() {
		at(q.lostWake)
	}
	if !q.counting {
		if q.d.NamespaceShare != nil && q.st == Running && q.lastCount > 0 {
			at(q.shareAt.Add(ShareEvery)) // give idle containers back
		}
		if q.st == Idle {
			at(q.idleSince.Add(q.cfg.IdleTimeout))
		}
	}
	if len(q.inflight) == 0 && len(q.parked) == 0 {
		switch q.st {
		case Running:
			last := q.lastFetch
			if q.lastMsg.After(last) {
				last = q.lastMsg
			}
			at(last.Add(2 * q.cfg.Park))
		case Flushing:
			at(q.lastMsg.Add(q.cfg.FlushGrace))
		}
	}
	if !w.IsZero() && w.Before(soon) {
		w = soon
	}
	return w
}

// expire fails activations queued longer than the retention.
func (q *Queue) expire(now time.Time) {
	var fs []failure
	for len(q.buf) > 0 && now.Sub(q.buf[0].enq) >= q.cfg.Retention {
		e := q.buf[0]
		q.buf[0] = nil
		q.buf = q.buf[1:]
		fs = append(fs, failure{e, q.record(e, now, whisk.StatusWhiskError, whisk.MsgNotInitiated(now.Sub(e.enq).Milliseconds()))})
	}
	if len(fs) > 0 {
		q.log.Warn("queue: activations expired", "count", len(fs), "retention", q.cfg.Retention)
		q.startFail(fs)
	}
}

// startCount refreshes the counts on a helper goroutine, bounded by the
// count timeout; handleCount takes the result. At most one count is in
// flight, so an etcd outage costs one blocked goroutine, never the owner.
func (q *Queue) startCount(now time.Time) { q.startRead(now, true) }

// startShareRead reads the namespace share and publishes or withdraws the
// demand, like startCount but without the counts: a queue with no backlog
// that looks for idle containers to give back (every ShareEvery while it
// holds containers) decides nothing, and its decisions count afresh. With
// nobody wanting a share that is one count-only read of the demand keys.
func (q *Queue) startShareRead(now time.Time) { q.startRead(now, false) }

func (q *Queue) startRead(now time.Time, counts bool) {
	if q.counting {
		return
	}
	q.counting = true
	ctx, rev, gen := q.countCtx, q.meta.Rev, q.countGen
	count, countNs, timeout := q.d.CountContainers, q.d.CountNamespace, q.cfg.CountTimeout
	share := q.d.NamespaceShare
	giveBackOnly := !q.throttled && !q.wanting && !q.wantPub
	if share != nil && q.lastCount <= 0 && giveBackOnly {
		share = nil // nothing to give back or to ask for
	}
	var want func(context.Context, bool) error
	wantTo := q.wanting
	if q.d.Want != nil && q.wanting != q.wantPub {
		want = q.d.Want
	}
	go func() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r := countResult{rev: rev, gen: gen, at: now, counts: counts}
		if want != nil {
			r.wantSet, r.want, r.wantErr = true, wantTo, want(cctx, wantTo)
		}
		if counts {
			r.containers, r.err = count(cctx, rev)
			if r.err == nil {
				r.nsContainers, r.nsCreations, r.err = countNs(cctx)
			}
		}
		if share != nil {
			r.held, r.wanting, r.shareErr = share(cctx, giveBackOnly)
			r.shared = r.shareErr == nil
			r.partial = giveBackOnly && r.held == nil
		}
		q.countc <- &r // buffered: one count in flight at most
	}()
}

// handleCount takes a count's result: the counts decisions use, the idle
// queue's removal, and a decision that waited for counts.
func (q *Queue) handleCount(now time.Time, r *countResult) {
	q.counting = false
	want := q.wantDecide
	q.wantDecide = false
	idleDue := q.st == Idle && r.at.Sub(q.idleSince) >= q.cfg.IdleTimeout
	q.takeShare(now, r)
	if !r.counts {
		// A share read only: what waits for counts counts now.
		if want || q.st == Idle && now.Sub(q.idleSince) >= q.cfg.IdleTimeout {
			q.wantDecide = want
			q.startCount(now)
		}
		return
	}
	if r.err != nil {
		q.log.Warn("queue: counting containers", "err", r.err)
		if idleDue {
			q.idleSince = now
		}
		return
	}
	if r.rev != q.meta.Rev {
		return // counted an older revision
	}
	n := r.containers
	if r.gen != q.countGen {
		n = max(n, q.lastCount) // a container showed up after the count began
	}
	q.lastCount, q.nsCount, q.nsCreating, q.counted = n, r.nsContainers, r.nsCreations, true
	q.countAt = now
	switch {
	case idleDue && n > 0:
		q.idleSince = now
	case idleDue:
		q.why = EndIdle
		q.setState(Removed)
	case q.st == Idle && now.Sub(q.idleSince) >= q.cfg.IdleTimeout:
		q.startCount(now) // this count began before the idle timeout: count again
	case want && len(q.buf) > 0 && (q.st == Running || q.st == Flushing):
		q.decideNow(now)
	}
}

// takeShare takes a count's share read and demand publication: the
// give-back is recomputed from each read, less the containers told to go
// in the last releaseGrace (the read may still count them: a container
// deregisters once removed), and idle (parked) containers go first.
func (q *Queue) takeShare(now time.Time, r *countResult) {
	if r.wantSet {
		if r.wantErr != nil {
			q.log.Warn("queue: publishing the namespace share demand", "want", r.want, "err", r.wantErr)
		} else {
			q.wantPub = r.want
		}
	}
	if r.shareErr != nil {
		q.log.Warn("queue: reading the namespace share", "err", r.shareErr)
	}
	if !r.shared {
		return
	}
	q.share = Share{Limit: q.nsLimit, Held: r.held, Wanting: r.wanting}
	q.shareAt = now
	// A give-back-only read that found nobody wanting carries no counts:
	// nothing to give back, and nothing to decide on (shareIsFresh).
	q.sharePartial = r.partial
	q.releasedAt = slices.DeleteFunc(q.releasedAt, func(at time.Time) bool { return now.Sub(at) >= releaseGrace })
	n := max(0, q.share.GiveBack(q.fqn.Name)-len(q.releasedAt))
	if n != q.release && n > 0 {
		q.log.Info("queue: giving containers back to the namespace", "n", n,
			"fairShare", q.share.Fair(), "held", q.share.Held[q.fqn.Name], "limit", q.share.Limit)
	}
	q.release = n
	for q.release > 0 && len(q.parked) > 0 {
		f := q.parked[len(q.parked)-1] // the newest parked: the others may get work
		q.parked = q.parked[:len(q.parked)-1]
		q.releaseTo(now, f)
	}
}

// releaseTo tells a fetching container to go: the namespace needs it for
// another action. It deregisters and says so with a last fetch (Alive
// false), which lowers the count.
func (q *Queue) releaseTo(now time.Time, f *fetch) {
	q.release--
	q.released++
	q.releasedAt = append(q.releasedAt, now)
	f.reply <- &rpc.FetchResponse{Status: rpc.FetchRelease}
}

// shareFresh reports whether the last share read may be acted on.
func (q *Queue) shareIsFresh(now time.Time, within time.Duration) bool {
	return q.d.NamespaceShare != nil && !q.shareAt.IsZero() && !q.sharePartial && now.Sub(q.shareAt) <= within
}

// decide runs Decide on the last known counts and starts a refresh for the
// next decision; with no counts of the current revision yet, the decision
// waits for them.
func (q *Queue) decide(now time.Time) {
	q.startCount(now)
	if !q.counted || q.provisional {
		q.wantDecide = true
		return
	}
	q.decideNow(now)
}

// decideNow builds the Snapshot from the last known counts and asks for
// containers.
func (q *Queue) decideNow(now time.Time) {
	if q.provisional {
		return // no metadata to create a container with
	}
	existing := q.lastCount
	s := q.snapshot(now, existing, q.nsCount, q.nsCreating)
	fresh := q.shareIsFresh(now, shareFresh)
	if fresh {
		s.ShareCap = q.share.Cap(q.fqn.Name)
	}
	d := Decide(s)
	if d.Throttle != q.throttled {
		q.throttled = d.Throttle
		q.log.Info("queue: namespace throttling", "on", d.Throttle, "reason", d.Reason)
	}
	if fresh {
		// The action wants more than the limits give it and holds less
		// than its fair share: ask the namespace's busiest actions.
		// Not when its own instances limit is what holds it back.
		total := s.Existing + s.InFlight + d.Create
		inst := q.meta.Limits.Instances
		q.wanting = d.Want > d.Create && total < q.share.FairFor(q.fqn.Name) && (inst <= 0 || total < inst)
	}
	if d.Throttle && d.Create <= 0 && existing == 0 && s.InFlight == 0 {
		// The namespace limit holds the action back and it has no
		// container to run anything: fail now instead of holding the
		// activations for the whole retention. OpenWhisk answers these
		// with a 429 and this message; a record made here carries the
		// "whisk internal error" status, the nearest record status.
		// Only on fresh counts: stale ones wait for the refresh.
		if now.Sub(q.countAt) > 2*q.cfg.Tick {
			q.wantDecide = true
			return
		}
		if q.d.NamespaceShare != nil {
			// Other actions of the namespace over their fair share give
			// containers back: wait for one (within the retention).
			if !q.shareIsFresh(now, 2*q.cfg.Tick) {
				q.wantDecide = true
				return
			}
			if q.share.Releasable(q.fqn.Name) > 0 {
				q.wanting = true
				return
			}
		}
		q.failThrottled(now, s.NsExisting+s.NsInFlight, s.NsLimit)
		return
	}
	if d.Create <= 0 {
		return
	}
	if q.st == Flushing && !q.lastAsk.IsZero() && now.Sub(q.lastAsk) < q.cfg.FlushRetry {
		return
	}
	q.log.Debug("queue: asking for containers", "n", d.Create, "reason", d.Reason,
		"queued", s.Queued, "stale", s.Stale, "existing", s.Existing, "inFlight", s.InFlight, "avg", s.AvgDuration)
	for range d.Create {
		id := newID()
		q.inflight[id] = q.meta.Rev
		q.lastAsk = now
		q.d.Create(CreateRequest{ID: id, Action: q.meta, NamespaceLimit: q.nsLimit, Done: q.CreationDone})
	}
}

func (q *Queue) snapshot(now time.Time, existing, nsContainers, nsCreations int) Snapshot {
	avg := q.avg()
	threshold := StaleThreshold(avg)
	stale := 0
	for _, e := range q.buf { // oldest first: stop at the first fresh one
		if now.Sub(e.enq) < threshold {
			break
		}
		stale++
	}
	return Snapshot{
		State: q.st, Queued: len(q.buf), Stale: stale,
		Existing: existing, InFlight: q.inFlight(),
		NsExisting: max(nsContainers, existing), NsInFlight: max(nsCreations, len(q.inflight)),
		NsLimit: q.nsLimit, ActionLimit: q.meta.Limits.Instances,
		AvgDuration: avg, Concurrency: q.meta.Limits.Concurrency,
	}
}

func (q *Queue) addDuration(ms int64) {
	if len(q.durs) < DurationWindow {
		q.durs = append(q.durs, ms)
		return
	}
	q.durs[q.durNext] = ms
	q.durNext = (q.durNext + 1) % DurationWindow
}

// avg is the mean of the last DurationWindow run times; 0 when none.
func (q *Queue) avg() time.Duration {
	if len(q.durs) == 0 {
		return 0
	}
	var sum int64
	for _, d := range q.durs {
		sum += d
	}
	return time.Duration(sum) * time.Millisecond / time.Duration(len(q.durs))
}

// record builds the activation record of an activation the queue fails.
func (q *Queue) record(e *entry, now time.Time, status int, text string) whisk.Activation {
	m := e.msg
	meta := m.Action
	if meta.Rev < q.meta.Rev && !q.provisional {
		meta = q.meta
	}
	a := whisk.RecordOf(&m, meta)
	a.Start, a.End = now.UnixMilli(), now.UnixMilli()
	a.StatusCode, a.Response = status, whisk.ErrorResponse(status, text)
	a.Logs = []string{}
	a.Annotate(meta, whisk.Timings{Queued: now.Sub(e.enq).Milliseconds()}, false)
	return a
}

// startFail writes records in a goroutine; handleFailed marks their
// offsets done once stored and completed.
func (q *Queue) startFail(fs []failure) {
	q.failing++
	ctx := q.ctx
	go func() {
		var b failBatch
		for _, f := range fs {
			if err := q.d.Fail(ctx, f.e.msg, f.rec); err != nil {
				q.log.Error("queue: storing a failed activation", "activation", f.e.msg.ActivationID, "err", err)
				b.bad = append(b.bad, f)
				continue
			}
			b.ok = append(b.ok, f.e)
		}
		q.failed <- b
	}()
}

func (q *Queue) handleFailed(b failBatch) {
	q.failing--
	for _, e := range b.ok {
		if e.tracked {
			q.offs.finish(e.off)
		}
	}
	q.refail = append(q.refail, b.bad...)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// offsets tracks the consumed offsets not yet committed past. mark is the
// highest offset up to which every consumed record is done; -1 for none.
type offsets struct {
	order []int64 // consumed, ascending, above mark
	done  map[int64]bool
	mark  int64
}

func (o *offsets) add(off int64) { o.order = append(o.order, off) }

func (o *offsets) finish(off int64) {
	if off <= o.mark {
		return
	}
	o.done[off] = true
	for len(o.order) > 0 && o.done[o.order[0]] {
		o.mark = o.order[0]
		delete(o.done, o.order[0])
		o.order = o.order[1:]
	}
}

// reopen makes a finished offset outstanding again; false when the mark
// has passed it already.
func (o *offsets) reopen(off int64) bool {
	if off <= o.mark {
		return false
	}
	delete(o.done, off)
	return true
}

// Outstanding is the number of consumed records not yet done (for tests and status).
func (o *offsets) outstanding() int { return len(o.order) - len(o.done) }
