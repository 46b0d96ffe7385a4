package queue

import (
	"fmt"
	"math"
	"time"
)

// The throughput rule (Knative's container-concurrency target, for actions
// faster than MinStaleThreshold): while every container slot has at least
// TargetBacklog activations waiting for it and the invokers' CPU is below
// CPUBrakePct, ask for one more container (one per decision, none while a
// creation is in flight).
const (
	TargetBacklog = 2
	CPUBrakePct   = 90
)

// MinStaleThreshold is the shortest staleness threshold: OpenWhisk's fixed
// 100 ms. Eddy stretches it to the action's average duration (StaleThreshold).
const MinStaleThreshold = 100 * time.Millisecond

// StaleThreshold is how long an activation may wait in the queue before it
// counts as stale for scaling: max(100 ms, avg). A message that has waited
// less than one average run is not evidence of missing containers — a busy
// container will get to it within one run — so slow actions are not given a
// container per queued message (OpenWhisk issue 5256).
func StaleThreshold(avg time.Duration) time.Duration {
	return max(MinStaleThreshold, avg)
}

// Snapshot is what Decide sees of a queue at one tick. Counts of containers
// are of the action's current revision; namespace counts include the
// action's own.
type Snapshot struct {
	State       State
	Queued      int           // activations in the buffer
	Stale       int           // of those, queued longer than StaleThreshold(AvgDuration)
	Existing    int           // containers of the action
	InFlight    int           // creations asked for and not yet answered
	NsExisting  int           // containers of the namespace
	NsInFlight  int           // creations in flight in the namespace
	NsLimit     int           // the namespace's concurrent-container limit
	ActionLimit int           // the action's instances limit; 0 means the namespace limit
	AvgDuration time.Duration // average run time; 0 when unknown
	Concurrency int           // activations one container runs at once; ≤0 means 1
	// ShareCap, when > 0, caps the action's containers at its fair share of
	// the namespace while other actions of the namespace want theirs
	// (Share.Cap); 0 means no cap.
	ShareCap int

	// What the policies after the container count need (see Decide).
	CountsRecent bool // the counts are at most two ticks old
	Sharing      bool // the namespace's containers are shared (Deps.NamespaceShare)
	ShareFresh   bool // the last share read may be acted on (shareFresh old, with counts)
	ShareRecent  bool // the last share read is at most two ticks old (with counts)
	FairShare    int  // the action's fair share, itself counted busy (Share.FairFor); with ShareFresh
	Releasable   int  // containers the action could get if it wanted a share (Share.Releasable); with ShareRecent
	FlushHold    bool // Flushing and a container was asked for less than Config.FlushRetry ago
	// CreateHold: creations failed for want of room (no invoker could
	// host one) and the back-off since the last failure has not passed.
	CreateHold bool
	// CPUBusyPct is the invokers' CPU load in % (their mean); 0 when
	// unknown, which turns the throughput rule off.
	CPUBusyPct int
	// ArrivalRate is the activations per second entering the queue over
	// the last ArrivalWindow (since the flow began, when later); 0 when
	// none arrived in it, which leaves rules e and f uncapped (rateCap).
	ArrivalRate float64
}

// Demand is what a decision does to the action's demand for a share of
// the namespace (Queue.wanting, published through Deps.Want).
type Demand int

// Demands.
const (
	DemandKeep Demand = iota // leave it as it is (no fresh share read)
	DemandWant               // want a share
	DemandNone               // want none
)

// Decision is Decide's answer: how many containers to ask for now, whether
// the namespace's limit is what holds the action back (namespace
// throttling), and why, for logs.
type Decision struct {
	Create   int
	Want     int // what the rules asked for before the limits cut it
	Throttle bool
	Reason   string
	// Demand publishes or withdraws the action's demand for a share.
	Demand Demand
	// FailThrottled: the namespace limit holds the action back and it has
	// no container: fail the buffered activations now (429) instead of
	// holding them for the whole retention.
	FailThrottled bool
	// Recount: act on nothing now; decide again when fresh counts (and
	// share read) come back.
	Recount bool
}

// Decide is OpenWhisk's SchedulingDecisionMaker (its FPC scheduler), as a pure
// function, with one change: a container's throughput is measured per
// StaleThreshold(avg) instead of per fixed 100 ms. For actions faster than
// 100 ms nothing changes; for slower ones a container handles Concurrency
// activations per window, and only activations that waited a whole average
// run count as stale.
//
// The rules, in order:
//  1. a zero limit creates nothing and throttles;
//  2. capacity = min(namespace room, action room);
//  3. Running (or Idle), nothing queued → nothing; no container and none
//     in flight → 1 (the first container);
//  4. Flushing (creations failing) → 1 while there is none, else nothing;
//  5. Running with containers: stale activations and the predicted backlog
//     (OpenWhisk's rules e and f, scale below) size the request, capped
//     by the arrival rate (rateCap); while the duration is unknown, at
//     most doubling (blind);
//  6. Removing: only stale activations count (rule g);
//     and Running, when rules e and f ask for nothing: the throughput
//     target (rule h, throughputTarget) for actions faster than 100 ms;
//  7. the request is cut to capacity; when the namespace binds, Throttle.
//
// The action's limit is its instances limit, the namespace limit, and, while
// other actions of the namespace want a share, its fair share (ShareCap).
//
// Throttle is also true whenever the namespace has no room left.
//
// Then the policies on that count (policy): the share demand, failing
// throttled activations that have no container, and holding creations
// back while Flushing.
func Decide(s Snapshot) Decision {
	d := containers(s)
	policy(s, &d)
	return d
}

// policy completes the decision d on the container count:
//   - with a fresh share read, the action wants a share when it wants
//     more than the limits give it and holds less than its fair share,
//     unless its own instances limit is what holds it back;
//   - when the namespace limit holds the action back and it has no
//     container and none coming, its activations fail now (OpenWhisk
//     answers these with a 429), but only on counts at most two ticks
//     old, and, when the namespace is shared, on a share read as recent
//     that finds no container another action would give back (then the
//     action wants a share and waits, within the retention);
//   - while Flushing, at most one creation per Config.FlushRetry;
//   - after creations failed for want of room, none until the back-off
//     (100 ms doubling to Config.CreateBackoff, with jitter) has passed.
func policy(s Snapshot, d *Decision) {
	if s.ShareFresh {
		total := s.Existing + s.InFlight + d.Create
		if d.Want > d.Create && total < s.FairShare && (s.ActionLimit <= 0 || total < s.ActionLimit) {
			d.Demand = DemandWant
		} else {
			d.Demand = DemandNone
		}
	}
	if d.Throttle && d.Create <= 0 && s.Existing == 0 && s.InFlight == 0 {
		switch {
		case !s.CountsRecent:
			d.Recount = true
		case s.Sharing && !s.ShareRecent:
			d.Recount = true
		case s.Sharing && s.Releasable > 0:
			d.Demand = DemandWant
		default:
			d.FailThrottled = true
		}
		return
	}
	if d.Create > 0 && s.FlushHold {
		d.Create = 0
		d.Reason += "; flushing: a creation was asked for lately"
	}
	if d.Create > 0 && s.CreateHold {
		d.Create = 0
		d.Reason += "; backing off: creations failed for want of room"
	}
}

// containers is the number of containers to ask for (rules 1 to 7).
func containers(s Snapshot) Decision {
	conc := max(1, s.Concurrency)
	nsLimit := s.NsLimit
	actionLimit := nsLimit
	if s.ActionLimit > 0 && s.ActionLimit < nsLimit {
		actionLimit = s.ActionLimit
	}
	shareCapped := s.ShareCap > 0 && s.ShareCap < actionLimit
	if shareCapped {
		actionLimit = s.ShareCap
	}
	if min(nsLimit, actionLimit) <= 0 {
		return Decision{Throttle: true, Reason: fmt.Sprintf("limit is zero (namespace %d, action %d)", nsLimit, actionLimit)}
	}
	total := s.Existing + s.InFlight
	nsCap := nsLimit - s.NsExisting - s.NsInFlight
	actionCap := actionLimit - total
	capacity := min(nsCap, actionCap)

	want, reason := wanted(s, conc, total)
	d := Decision{Throttle: nsCap <= 0, Want: want, Reason: reason}
	if want <= 0 {
		return d
	}
	if want > capacity {
		c := max(capacity, 0)
		if nsCap <= actionCap {
			d.Throttle = true
			d.Reason = fmt.Sprintf("%s: want %d, namespace limit %d leaves %d", reason, want, nsLimit, c)
		} else if shareCapped {
			d.Reason = fmt.Sprintf("%s: want %d, fair share %d leaves %d", reason, want, actionLimit, c)
		} else {
			d.Reason = fmt.Sprintf("%s: want %d, action limit %d leaves %d", reason, want, actionLimit, c)
		}
		d.Create = c
		return d
	}
	d.Create = want
	return d
}

// wanted is the number of containers the rules ask for, before limits.
func wanted(s Snapshot, conc, total int) (int, string) {
	switch s.State {
	case Running, Idle:
		if s.Queued <= 0 {
			return 0, "nothing queued"
		}
		if total == 0 {
			return 1, "first container"
		}
		if n, r := scale(s, conc, total); n > 0 {
			return n, r
		}
		return throughputTarget(s, conc, total)
	case Flushing:
		if total == 0 && s.Queued > 0 {
			return 1, "retry while flushing"
		}
		return 0, "flushing with a creation in flight"
	case Removing:
		if s.Stale > 0 {
			n, r := staleOnly(s, conc)
			return n, "removing: " + r
		}
		return 0, "removing"
	default:
		return 0, "state " + s.State.String()
	}
}

// throughput is what one container runs per staleness window:
// Concurrency × window / avg, and Concurrency when avg is unknown.
func throughput(avg time.Duration, conc int) float64 {
	if avg <= 0 {
		return float64(conc)
	}
	return float64(conc) * float64(StaleThreshold(avg)) / float64(avg)
}

func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

// staleProvision is rule f's container count for stale activations: one
// container per T stale activations, at most one per activation, minus the
// creations already in flight (it may be negative).
func staleProvision(s Snapshot, conc int) int {
	if s.Stale <= 0 {
		return 0
	}
	t := throughput(s.AvgDuration, conc)
	return min(ceil(float64(s.Stale)/t), s.Stale) - s.InFlight
}

func staleOnly(s Snapshot, conc int) (int, string) {
	if s.AvgDuration <= 0 {
		n := min(ceil(float64(s.Stale)/float64(conc))-s.InFlight, s.Queued)
		return n, fmt.Sprintf("%d stale, duration unknown", s.Stale)
	}
	return staleProvision(s, conc), fmt.Sprintf("%d stale", s.Stale)
}

// blind is rule f while the action's duration is unknown (the queue knows
// it once its containers have reported a few runs): the stale activations
// are the cold start's backlog, not a measure of the action, so containers
// are not sized on them (one per stale activation asked for 96 containers
// of a 10 ms action stepped to 500 calls/s, where 6 were needed). While the
// first container is created, nothing more; then the count at most doubles
// per round (as many as exist, none while a creation is in flight) until
// the duration is known.
func blind(s Snapshot, conc int) (int, string) {
	switch {
	case s.Existing == 0:
		return 0, fmt.Sprintf("%d stale, duration unknown: waiting for the first container", s.Stale)
	case s.InFlight > 0:
		return 0, fmt.Sprintf("%d stale, duration unknown: a creation is in flight", s.Stale)
	}
	n := min(ceil(float64(s.Stale)/float64(conc)), s.Existing, s.Queued)
	return n, fmt.Sprintf("%d stale, duration unknown: at most doubling", s.Stale)
}

// scale is rules e and f: a queue with containers that keeps a backlog.
func scale(s Snapshot, conc, total int) (int, string) {
	if s.AvgDuration <= 0 {
		if s.Stale <= 0 {
			return 0, "no stale activations"
		}
		return blind(s, conc)
	}
	n, reason := backlog(s, conc, total)
	if n <= 0 || s.ArrivalRate <= 0 {
		return n, reason
	}
	if s.InFlight > 0 {
		// One round at a time while activations flow in: the containers
		// coming change the backlog and, on a busy host, the run times
		// the next round would be sized on.
		return 0, reason + "; creations in flight: the next round waits for them"
	}
	if c := rateCap(s, conc); total+n > c {
		return max(c-total, 0), fmt.Sprintf("%s; capped at %d by %.0f arrivals/s", reason, c, s.ArrivalRate)
	}
	return n, reason
}

// OverProvision is how far rules e and f may provision above what the
// arrival rate needs (rateCap): the over-provisioning bound of a step load.
const OverProvision = 1.25

// DrainHorizon is the time rateCap gives a backlog to drain.
const DrainHorizon = 2 * time.Second

// rateCap bounds the containers rules e and f may bring the action to
// while activations arrive: OverProvision × the containers the arrival
// rate needs (rate × duration ÷ concurrency, Little's law), or, when more,
// those that drain the whole backlog within DrainHorizon. OpenWhisk's rules
// size on the backlog per 100 ms window alone, so the backlog a cold start
// leaves behind a step load was given a container per 10 activations: 15
// containers of a 10 ms action stepped to 500 calls/s, which needs 6. The
// backlog of a burst (many activations at once) is what the second term
// is for.
func rateCap(s Snapshot, conc int) int {
	perContainer := float64(conc) / s.AvgDuration.Seconds() // activations per second
	need := s.ArrivalRate / perContainer
	// The headroom rounds down, the need up: 5.9 containers needed give
	// 7, not ceil(7.4) = 8.
	flow := max(ceil(need), int(OverProvision*need))
	drain := ceil(float64(s.Queued) / (perContainer * DrainHorizon.Seconds()))
	return max(flow, drain, 1)
}

// backlog is OpenWhisk's rules e and f with the duration known.
func backlog(s Snapshot, conc, total int) (int, string) {
	t := throughput(s.AvgDuration, conc)
	staleProv := staleProvision(s, conc)
	nonStale := s.Queued - s.Stale
	expected := t * float64(total)
	if float64(nonStale) >= expected && total < nonStale {
		n := ceil(float64(nonStale)/t - float64(total))
		if n+total > nonStale {
			n = nonStale - total
		}
		return n + staleProv, fmt.Sprintf("backlog %d over %.1f per container per %v, %d stale", nonStale, t, StaleThreshold(s.AvgDuration), s.Stale)
	}
	if staleProv > 0 {
		return staleProv, fmt.Sprintf("%d stale over %.1f per container per %v", s.Stale, t, StaleThreshold(s.AvgDuration))
	}
	return 0, "containers keep up"
}

// throughputTarget is rule h, Eddy's: a fast action (average below
// MinStaleThreshold) whose backlog keeps every container slot TargetBacklog
// deep gets one more container while the invokers' CPU has room. OpenWhisk's
// rules see no stale activation there (a fast action's backlog drains
// within 100 ms), so a closed-loop load of 64 clients kept 2 containers and
// left the CPU idle. One container per decision and none while a creation
// is in flight: each new container changes the backlog before the next.
func throughputTarget(s Snapshot, conc, total int) (int, string) {
	switch {
	case s.AvgDuration <= 0 || s.AvgDuration >= MinStaleThreshold:
		return 0, "containers keep up"
	case s.InFlight > 0:
		return 0, "containers keep up; a creation is in flight"
	case s.Queued < TargetBacklog*conc*total:
		return 0, "containers keep up"
	case s.CPUBusyPct <= 0:
		return 0, "backlog over the target, invokers' CPU unknown"
	case s.CPUBusyPct >= CPUBrakePct:
		return 0, fmt.Sprintf("backlog %d over the target, invokers' CPU %d%% (brake at %d%%)", s.Queued, s.CPUBusyPct, CPUBrakePct)
	}
	return 1, fmt.Sprintf("backlog %d over the target %d per container slot, invokers' CPU %d%%", s.Queued, TargetBacklog, s.CPUBusyPct)
}

// Share is a namespace as its queues see it in etcd (one read): the
// containers and in-flight creations each action holds, and which actions
// want a share the limit refuses them (demand keys). It decides how the
// namespace's containers are shared between its busy actions, so that one
// hot action cannot starve the others (OpenWhisk issue 5257, reference
// §10.3).
type Share struct {
	Limit   int             // the namespace's concurrent-containers limit
	Held    map[string]int  // action name → containers + creations
	Wanting map[string]bool // actions that want a share (demand)
}

// busy is the number of actions that hold containers or want some.
func (s Share) busy() int {
	n := 0
	for a, h := range s.Held {
		if h > 0 || s.Wanting[a] {
			n++
		}
	}
	for a := range s.Wanting {
		if s.Held[a] <= 0 {
			n++
		}
	}
	return n
}

// Fair is the fair share of one busy action: Limit / busy actions, at
// least 1 (with more busy actions than the limit, some get none: the
// namespace is over-subscribed and they are throttled).
func (s Share) Fair() int {
	b := s.busy()
	if b <= 0 {
		return s.Limit
	}
	return max(1, s.Limit/b)
}

// deficit is how many containers the wanting actions lack to reach their
// fair share.
func (s Share) deficit(fair int) int {
	d := 0
	for a := range s.Wanting {
		d += max(0, fair-s.Held[a])
	}
	return d
}

// GiveBack is how many containers action self gives back now: the
// deficit of the wanting actions is taken from the busiest actions over
// their fair share, one container at a time from the one holding most
// (ties: the smaller name), never below the fair share. Every queue of the
// namespace computes the same split from the same read, so the actions
// give back exactly the deficit between them, wherever their queues live.
func (s Share) GiveBack(self string) int {
	fair := s.Fair()
	need := s.deficit(fair)
	if need <= 0 {
		return 0
	}
	over := map[string]int{}
	for a, h := range s.Held {
		if h > fair && !s.Wanting[a] {
			over[a] = h
		}
	}
	n := 0
	for ; need > 0; need-- {
		top, most := "", fair
		for a, h := range over {
			if h > most || (h == most && h > fair && a < top) {
				top, most = a, h
			}
		}
		if top == "" {
			break
		}
		over[top]--
		if top == self {
			n++
		}
	}
	return n
}

// with is s with self among the wanting actions.
func (s Share) with(self string) Share {
	w := make(map[string]bool, len(s.Wanting)+1)
	for a, v := range s.Wanting {
		w[a] = v
	}
	w[self] = true
	return Share{Limit: s.Limit, Held: s.Held, Wanting: w}
}

// FairFor is the fair share with self counted among the busy actions.
func (s Share) FairFor(self string) int { return s.with(self).Fair() }

// Releasable is how many containers self could get if it wanted a share:
// the namespace's free room as this read sees it (counts taken a moment
// apart may disagree) plus what the other actions would give back. 0 means
// self cannot expect one (the namespace is full and every other action is
// at or below its fair share), and its activations are throttled.
func (s Share) Releasable(self string) int {
	used := 0
	for _, h := range s.Held {
		used += h
	}
	t := s.with(self)
	fair := t.Fair()
	if s.Held[self] >= fair {
		return max(0, s.Limit-used)
	}
	n := max(0, s.Limit-used)
	for a, h := range s.Held {
		if a != self && !t.Wanting[a] {
			n += max(0, h-fair)
		}
	}
	return n
}

// Cap is self's ShareCap: its fair share while another action wants one
// and holds less than it; 0 (no cap) otherwise.
func (s Share) Cap(self string) int {
	fair := s.Fair()
	for a := range s.Wanting {
		if a != self && s.Held[a] < fair {
			return fair
		}
	}
	return 0
}
