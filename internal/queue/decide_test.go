package queue

import (
	"testing"
	"time"
)

func TestStaleThreshold(t *testing.T) {
	for _, c := range []struct{ avg, want time.Duration }{
		{0, 100 * time.Millisecond},
		{10 * time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{5 * time.Second, 5 * time.Second},
	} {
		if got := StaleThreshold(c.avg); got != c.want {
			t.Errorf("StaleThreshold(%v) = %v, want %v", c.avg, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	ms := time.Millisecond
	base := Snapshot{State: Running, NsLimit: 100, Concurrency: 1}
	with := func(f func(*Snapshot)) Snapshot { s := base; f(&s); return s }
	cases := []struct {
		name     string
		s        Snapshot
		create   int
		throttle bool
	}{
		{"nothing queued", with(func(s *Snapshot) {}), 0, false},
		{"first message with 0 containers", with(func(s *Snapshot) { s.Queued = 1 }), 1, false},
		{"first container only, whatever the backlog", with(func(s *Snapshot) { s.Queued = 45; s.Stale = 45 }), 1, false},
		{"idle queue with a message behaves as running", with(func(s *Snapshot) { s.State = Idle; s.Queued = 1 }), 1, false},
		{"first container already in flight", with(func(s *Snapshot) { s.Queued = 3; s.InFlight = 1; s.NsInFlight = 1 }), 0, false},
		{"reference worked example: d=10ms, 3 containers, 45 queued → 2",
			with(func(s *Snapshot) { s.Queued = 45; s.Existing = 3; s.NsExisting = 3; s.AvgDuration = 10 * ms }), 2, false},
		{"worked example with concurrency 2 keeps up",
			with(func(s *Snapshot) {
				s.Queued = 45
				s.Existing = 3
				s.NsExisting = 3
				s.AvgDuration = 10 * ms
				s.Concurrency = 2
			}), 0, false},
		{"backlog capped by the non-stale count",
			with(func(s *Snapshot) { s.Queued = 4; s.Existing = 1; s.NsExisting = 1; s.AvgDuration = 200 * ms }), 3, false},
		{"stale, duration unknown, first container in flight: wait for it",
			with(func(s *Snapshot) { s.Queued = 45; s.Stale = 40; s.InFlight = 1; s.NsInFlight = 1 }), 0, false},
		{"stale, duration unknown, a creation in flight: none",
			with(func(s *Snapshot) {
				s.Queued = 6
				s.Stale = 5
				s.Existing = 1
				s.InFlight = 2
				s.NsExisting = 1
				s.NsInFlight = 2
			}), 0, false},
		{"stale, duration unknown: doubles",
			with(func(s *Snapshot) { s.Queued = 45; s.Stale = 40; s.Existing = 4; s.NsExisting = 4 }), 4, false},
		{"stale, duration unknown, concurrency 2: doubles, not one per 2 stale",
			with(func(s *Snapshot) { s.Queued = 6; s.Stale = 5; s.Existing = 1; s.NsExisting = 1; s.Concurrency = 2 }), 1, false},
		{"stale, duration unknown: no more than the stale need",
			with(func(s *Snapshot) { s.Queued = 3; s.Stale = 2; s.Existing = 4; s.NsExisting = 4 }), 2, false},
		{"no stale, duration unknown: existing containers suffice",
			with(func(s *Snapshot) { s.Queued = 6; s.Existing = 1; s.NsExisting = 1 }), 0, false},
		{"fast action, stale only: ceil(stale/T) − in flight",
			with(func(s *Snapshot) {
				s.Queued = 10
				s.Stale = 10
				s.Existing = 2
				s.InFlight = 1
				s.NsExisting = 2
				s.NsInFlight = 1
				s.AvgDuration = 50 * ms
			}), 4, false},
		{"slow action (5s, 20 queued fresh, 1 container): one window of need, not more",
			with(func(s *Snapshot) { s.Queued = 20; s.Existing = 1; s.NsExisting = 1; s.AvgDuration = 5 * time.Second }), 19, false},
		{"slow action next tick: 19 in flight cover it",
			with(func(s *Snapshot) {
				s.Queued = 20
				s.Existing = 1
				s.InFlight = 19
				s.NsExisting = 1
				s.NsInFlight = 19
				s.AvgDuration = 5 * time.Second
			}), 0, false},
		{"slow action, containers up and busy, waited less than a run: nothing",
			with(func(s *Snapshot) { s.Queued = 19; s.Existing = 20; s.NsExisting = 20; s.AvgDuration = 5 * time.Second }), 0, false},
		{"slow action, waited a whole run: stale drives it",
			with(func(s *Snapshot) {
				s.Queued = 19
				s.Stale = 19
				s.Existing = 20
				s.NsExisting = 20
				s.AvgDuration = 5 * time.Second
			}), 19, false},
		{"action limit binds without throttling",
			with(func(s *Snapshot) {
				s.Queued = 45
				s.Existing = 3
				s.NsExisting = 3
				s.AvgDuration = 10 * ms
				s.ActionLimit = 4
			}), 1, false},
		{"action limit reached",
			with(func(s *Snapshot) { s.Queued = 45; s.Stale = 45; s.Existing = 4; s.NsExisting = 4; s.ActionLimit = 4 }), 0, false},
		{"namespace limit binds: create the room and throttle",
			with(func(s *Snapshot) {
				s.NsLimit = 5
				s.Queued = 45
				s.Existing = 3
				s.NsExisting = 4
				s.AvgDuration = 10 * ms
			}), 1, true},
		{"namespace full: nothing, throttle",
			with(func(s *Snapshot) { s.NsLimit = 5; s.Queued = 3; s.NsExisting = 5 }), 0, true},
		{"namespace full, nothing wanted: still throttled",
			with(func(s *Snapshot) { s.NsLimit = 5; s.NsExisting = 5 }), 0, true},
		{"zero namespace limit", with(func(s *Snapshot) { s.NsLimit = 0; s.Queued = 1 }), 0, true},
		{"action limit larger than namespace limit is capped",
			with(func(s *Snapshot) {
				s.NsLimit = 2
				s.ActionLimit = 10
				s.Queued = 45
				s.Stale = 45
				s.Existing = 1
				s.NsExisting = 1
				s.AvgDuration = 10 * ms
			}), 1, true},
		{"flushing, no container: retry one", with(func(s *Snapshot) { s.State = Flushing; s.Queued = 5 }), 1, false},
		{"flushing, one in flight: wait", with(func(s *Snapshot) { s.State = Flushing; s.Queued = 5; s.InFlight = 1; s.NsInFlight = 1 }), 0, false},
		{"flushing, empty", with(func(s *Snapshot) { s.State = Flushing }), 0, false},
		{"removing with stale backlog", with(func(s *Snapshot) { s.State = Removing; s.Queued = 5; s.Stale = 3; s.Existing = 1; s.NsExisting = 1 }), 3, false},
		{"removing, nothing stale", with(func(s *Snapshot) { s.State = Removing; s.Queued = 5; s.Existing = 1; s.NsExisting = 1 }), 0, false},
		{"removed", with(func(s *Snapshot) { s.State = Removed; s.Queued = 5 }), 0, false},
		{"fair share caps a flooded action while another wants",
			with(func(s *Snapshot) {
				s.NsLimit = 10
				s.Queued = 100
				s.Stale = 100
				s.Existing = 5
				s.NsExisting = 8
				s.ShareCap = 5
			}), 0, false},
		{"fair share leaves room up to the share",
			with(func(s *Snapshot) {
				s.NsLimit = 10
				s.Queued = 100
				s.Stale = 100
				s.Existing = 3
				s.NsExisting = 6
				s.ShareCap = 5
			}), 2, false},
		{"a share cap above the action limit changes nothing",
			with(func(s *Snapshot) {
				s.Queued = 45
				s.Stale = 45
				s.Existing = 4
				s.NsExisting = 4
				s.ActionLimit = 4
				s.ShareCap = 50
			}), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.s)
			if d.Create != c.create || d.Throttle != c.throttle {
				t.Errorf("Decide(%+v) = %+v, want create %d throttle %v", c.s, d, c.create, c.throttle)
			}
			if d.Reason == "" {
				t.Errorf("no reason")
			}
		})
	}
}

// TestDecideNeverExceedsLimits sweeps small snapshots: the containers asked
// for never take the action or the namespace over its limit.
func TestDecideNeverExceedsLimits(t *testing.T) {
	avgs := []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, 3 * time.Second}
	for _, st := range []State{Running, Idle, Flushing, Removing} {
		for nsLimit := 0; nsLimit <= 6; nsLimit++ {
			for actionLimit := 0; actionLimit <= 4; actionLimit++ {
				for existing := 0; existing <= 6; existing++ {
					for inFlight := 0; inFlight <= 3; inFlight++ {
						for others := 0; others <= 3; others++ {
							for _, queued := range []int{0, 1, 7, 50} {
								for _, avg := range avgs {
									for _, conc := range []int{1, 3} {
										s := Snapshot{
											State: st, Queued: queued, Stale: queued / 2,
											Existing: existing, InFlight: inFlight,
											NsExisting: existing + others, NsInFlight: inFlight,
											NsLimit: nsLimit, ActionLimit: actionLimit,
											AvgDuration: avg, Concurrency: conc,
										}
										d := Decide(s)
										if d.Create < 0 {
											t.Fatalf("%+v: negative %d", s, d.Create)
										}
										if d.Create == 0 {
											continue
										}
										limit := nsLimit
										if actionLimit > 0 {
											limit = min(limit, actionLimit)
										}
										if existing+inFlight+d.Create > limit {
											t.Fatalf("%+v: create %d exceeds the action limit %d", s, d.Create, limit)
										}
										if s.NsExisting+s.NsInFlight+d.Create > nsLimit {
											t.Fatalf("%+v: create %d exceeds the namespace limit %d", s, d.Create, nsLimit)
										}
										if d.Create > queued {
											t.Fatalf("%+v: create %d for %d queued", s, d.Create, queued)
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestSlowActionBounded simulates a queue of a 5 s action whose containers
// take 1 s to create: a burst of 20 activations, then a steady 2 per
// second for 30 s (which 10 busy containers serve). The decisions ask for
// no more containers than the load needs: at most one per activation for
// the burst, and close to 10 for the stream.
func TestSlowActionBounded(t *testing.T) {
	const avg = 5 * time.Second
	const tick = 100 * time.Millisecond
	for _, c := range []struct {
		name     string
		arrivals func(now time.Duration) int
		maxTotal int
	}{
		{"burst of 20", func(now time.Duration) int {
			if now == 0 {
				return 20
			}
			return 0
		}, 20},
		{"2 per second", func(now time.Duration) int {
			if now < 30*time.Second && now%(500*time.Millisecond) == 0 {
				return 1
			}
			return 0
		}, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			var queue []time.Duration  // enqueue times
			busy := []time.Duration{0} // one container, free at 0
			var creating []time.Duration
			created := 0
			for now := time.Duration(0); now <= 60*time.Second; now += tick {
				for range c.arrivals(now) {
					queue = append(queue, now)
				}
				var still []time.Duration
				for _, r := range creating {
					if r <= now {
						busy = append(busy, now)
					} else {
						still = append(still, r)
					}
				}
				creating = still
				for i := range busy {
					if busy[i] <= now && len(queue) > 0 {
						queue = queue[1:]
						busy[i] = now + avg
					}
				}
				stale := 0
				for _, e := range queue {
					if now-e >= StaleThreshold(avg) {
						stale++
					}
				}
				d := Decide(Snapshot{
					State: Running, Queued: len(queue), Stale: stale,
					Existing: len(busy), InFlight: len(creating),
					NsExisting: len(busy), NsInFlight: len(creating), NsLimit: 1000,
					AvgDuration: avg, Concurrency: 1,
				})
				for range d.Create {
					creating = append(creating, now+time.Second)
					created++
				}
			}
			if len(queue) != 0 {
				t.Fatalf("%d activations never started", len(queue))
			}
			if 1+created > c.maxTotal {
				t.Fatalf("%d containers, want at most %d", 1+created, c.maxTotal)
			}
			t.Logf("%s: %d containers", c.name, 1+created)
		})
	}
}

// TestShare is the table of the namespace sharing rules (OpenWhisk 5257):
// the fair share, who gives back how many, the cap of the others while an
// action wants its share, and whether a starved action may wait for one.
func TestShare(t *testing.T) {
	cases := []struct {
		name       string
		s          Share
		self       string
		fair       int
		giveBack   int
		cap        int
		releasable int
	}{
		{"alone at the limit: nothing to share",
			Share{Limit: 10, Held: map[string]int{"a": 10}}, "a", 10, 0, 0, 0},
		{"b starves: a gives half back",
			Share{Limit: 10, Held: map[string]int{"a": 10}, Wanting: map[string]bool{"b": true}}, "a", 5, 5, 5, 0},
		{"b starves, seen from b: it may wait for a give-back",
			Share{Limit: 10, Held: map[string]int{"a": 10}}, "b", 10, 0, 0, 5},
		{"b got part of its share: a gives the rest",
			Share{Limit: 10, Held: map[string]int{"a": 7, "b": 3}, Wanting: map[string]bool{"b": true}}, "a", 5, 2, 5, 0},
		{"b at its share: nothing more",
			Share{Limit: 10, Held: map[string]int{"a": 5, "b": 5}, Wanting: map[string]bool{"b": true}}, "a", 5, 0, 0, 0},
		{"the busiest gives first: a (7) and c (3), b wants 3",
			Share{Limit: 10, Held: map[string]int{"a": 7, "c": 3}, Wanting: map[string]bool{"b": true}}, "a", 3, 3, 3, 0},
		{"… and c, at its share, gives nothing",
			Share{Limit: 10, Held: map[string]int{"a": 7, "c": 3}, Wanting: map[string]bool{"b": true}}, "c", 3, 0, 3, 0},
		{"two over the share split the deficit from the top: a",
			Share{Limit: 12, Held: map[string]int{"a": 6, "c": 6}, Wanting: map[string]bool{"b": true}}, "a", 4, 2, 4, 0},
		{"two over the share split the deficit from the top: c",
			Share{Limit: 12, Held: map[string]int{"a": 6, "c": 6}, Wanting: map[string]bool{"b": true}}, "c", 4, 2, 4, 0},
		{"ties break by name: a gives the odd one",
			Share{Limit: 3, Held: map[string]int{"a": 2, "c": 1}, Wanting: map[string]bool{"b": true}}, "a", 1, 1, 1, 0},
		{"over-subscribed (more busy actions than the limit): a starved action cannot expect one",
			Share{Limit: 2, Held: map[string]int{"a": 1, "c": 1}}, "b", 1, 0, 0, 0},
		{"limit 1 held by another: throttled, no give-back",
			Share{Limit: 1, Held: map[string]int{"a": 1}}, "b", 1, 0, 0, 0},
		{"a wanting action is not asked to give back",
			Share{Limit: 4, Held: map[string]int{"a": 3, "b": 1}, Wanting: map[string]bool{"a": true, "c": true}}, "a", 1, 0, 1, 0},
		{"room in the read (the counts were behind): a starved action may wait",
			Share{Limit: 2, Held: map[string]int{"hog": 1}, Wanting: map[string]bool{"meek": true}}, "meek", 1, 0, 0, 1},
		{"creations count as held",
			Share{Limit: 4, Held: map[string]int{"a": 4, "b": 2}, Wanting: map[string]bool{"b": true}}, "a", 2, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.Fair(); got != c.fair {
				t.Errorf("Fair = %d, want %d", got, c.fair)
			}
			if got := c.s.GiveBack(c.self); got != c.giveBack {
				t.Errorf("GiveBack(%s) = %d, want %d", c.self, got, c.giveBack)
			}
			if got := c.s.Cap(c.self); got != c.cap {
				t.Errorf("Cap(%s) = %d, want %d", c.self, got, c.cap)
			}
			if got := c.s.Releasable(c.self); got != c.releasable {
				t.Errorf("Releasable(%s) = %d, want %d", c.self, got, c.releasable)
			}
		})
	}
	// Every queue computes the same split: the give-backs add up to the
	// deficit exactly.
	s := Share{Limit: 30, Held: map[string]int{"a": 13, "c": 9, "d": 8}, Wanting: map[string]bool{"b": true, "e": true}}
	sum := 0
	for _, a := range []string{"a", "c", "d"} {
		sum += s.GiveBack(a)
	}
	if fair := s.Fair(); sum != 2*fair {
		t.Errorf("give-backs add up to %d, want the deficit %d", sum, 2*fair)
	}
}

// TestDecidePolicies: the policies Decide applies on its container count —
// the share demand, failing throttled activations that have no container,
// and one creation per FlushRetry while Flushing.
func TestDecidePolicies(t *testing.T) {
	// A namespace of 2 containers, both held by other actions: this action
	// is throttled with no container.
	full := Snapshot{State: Running, Queued: 3, NsLimit: 2, NsExisting: 2, Concurrency: 1, CountsRecent: true}
	with := func(base Snapshot, f func(*Snapshot)) Snapshot { f(&base); return base }
	room := Snapshot{State: Running, Queued: 3, NsLimit: 10, Concurrency: 1, CountsRecent: true}
	cases := []struct {
		name    string
		s       Snapshot
		create  int
		fail    bool
		recount bool
		demand  Demand
	}{
		{"throttled, no container, recent counts: fail", full, 0, true, false, DemandKeep},
		{"throttled on old counts: count again", with(full, func(s *Snapshot) { s.CountsRecent = false }), 0, false, true, DemandKeep},
		{"throttled with a container: wait for it", with(full, func(s *Snapshot) { s.Existing = 1; s.NsExisting = 2 }), 0, false, false, DemandKeep},
		{"throttled with a creation in flight: wait for it", with(full, func(s *Snapshot) { s.InFlight = 1; s.NsInFlight = 1 }), 0, false, false, DemandKeep},
		{"shared namespace, no recent share read: read again", with(full, func(s *Snapshot) { s.Sharing = true }), 0, false, true, DemandKeep},
		{"shared namespace, another action would give one back: want a share",
			with(full, func(s *Snapshot) { s.Sharing, s.ShareRecent, s.Releasable = true, true, 1 }), 0, false, false, DemandWant},
		{"shared namespace, nothing to give back: fail",
			with(full, func(s *Snapshot) { s.Sharing, s.ShareRecent = true, true }), 0, true, false, DemandKeep},
		{"fresh share, limits cut the request below the fair share: want",
			with(full, func(s *Snapshot) {
				s.Sharing, s.ShareFresh, s.ShareRecent, s.FairShare, s.Releasable = true, true, true, 1, 1
			}), 0, false, false, DemandWant},
		{"fresh share, room for what the rules want: want none",
			with(room, func(s *Snapshot) { s.Sharing, s.ShareFresh, s.FairShare = true, true, 5 }), 1, false, false, DemandNone},
		{"fresh share, at the fair share already: want none",
			with(room, func(s *Snapshot) {
				s.Existing, s.NsExisting, s.NsLimit, s.Stale, s.AvgDuration = 1, 2, 2, 3, 10*time.Millisecond
				s.Sharing, s.ShareFresh, s.FairShare = true, true, 1
			}), 0, false, false, DemandNone},
		{"fresh share, the instances limit holds it back: want none",
			with(room, func(s *Snapshot) {
				s.Existing, s.NsExisting, s.ActionLimit, s.Stale, s.AvgDuration = 1, 1, 1, 3, 10*time.Millisecond
				s.Sharing, s.ShareFresh, s.FairShare = true, true, 5
			}), 0, false, false, DemandNone},
		{"flushing, asked lately: hold", with(room, func(s *Snapshot) { s.State, s.FlushHold = Flushing, true }), 0, false, false, DemandKeep},
		{"flushing, retry due: one", with(room, func(s *Snapshot) { s.State = Flushing }), 1, false, false, DemandKeep},
		{"creations failed for want of room, backing off: hold", with(room, func(s *Snapshot) { s.CreateHold = true }), 0, false, false, DemandKeep},
		{"backing off, with containers and stale work: hold",
			with(room, func(s *Snapshot) {
				s.Existing, s.NsExisting, s.Stale, s.AvgDuration, s.CreateHold = 1, 1, 3, 10*time.Millisecond, true
			}), 0, false, false, DemandKeep},
		{"room, no share: create", room, 1, false, false, DemandKeep},
	}
	for _, c := range cases {
		d := Decide(c.s)
		if d.Create != c.create || d.FailThrottled != c.fail || d.Recount != c.recount || d.Demand != c.demand {
			t.Errorf("%s: create %d fail %v recount %v demand %v, want %d %v %v %v (%s)",
				c.name, d.Create, d.FailThrottled, d.Recount, d.Demand, c.create, c.fail, c.recount, c.demand, d.Reason)
		}
	}
}

// TestThroughputTarget: rule h (Knative's concurrency target) for actions
// faster than 100 ms: one more container per decision while every
// container slot has TargetBacklog activations waiting and the invokers'
// CPU is under the brake; nothing when the CPU is saturated or unknown,
// when a creation is in flight, for slow actions (rules e and f size
// those), or under the limits.
func TestThroughputTarget(t *testing.T) {
	ms := time.Millisecond
	// Concurrency 64 on a sub-millisecond action: 2 containers, ~60 waiting.
	c64 := Snapshot{State: Running, NsLimit: 100, Concurrency: 1, Queued: 60, Existing: 2, NsExisting: 2,
		AvgDuration: ms / 2, CPUBusyPct: 80, CountsRecent: true}
	with := func(f func(*Snapshot)) Snapshot { s := c64; f(&s); return s }
	for _, c := range []struct {
		name   string
		s      Snapshot
		create int
	}{
		{"closed-loop backlog, CPU idle: one more", c64, 1},
		{"CPU at the brake: none", with(func(s *Snapshot) { s.CPUBusyPct = CPUBrakePct }), 0},
		{"CPU just under the brake: one", with(func(s *Snapshot) { s.CPUBusyPct = CPUBrakePct - 5 }), 1},
		{"CPU unknown: none", with(func(s *Snapshot) { s.CPUBusyPct = 0 }), 0},
		{"a creation in flight: wait for it", with(func(s *Snapshot) { s.InFlight, s.NsInFlight = 1, 1 }), 0},
		{"backlog under TargetBacklog per slot: none", with(func(s *Snapshot) { s.Queued = TargetBacklog*2 - 1 }), 0},
		{"backlog at TargetBacklog per slot: one", with(func(s *Snapshot) { s.Queued = TargetBacklog * 2 }), 1},
		{"concurrency 4 per container counts 4 slots each", with(func(s *Snapshot) { s.Concurrency, s.Queued = 4, 15 }), 0},
		{"slow action (200 ms): rules e and f, not h", with(func(s *Snapshot) { s.AvgDuration, s.Queued = 200*ms, 2 }), 0},
		{"duration unknown: none", with(func(s *Snapshot) { s.AvgDuration = 0 }), 0},
		{"the namespace limit binds: none", with(func(s *Snapshot) { s.NsLimit, s.NsExisting = 2, 2 }), 0},
		{"the action's instances limit binds: none", with(func(s *Snapshot) { s.ActionLimit = 2 }), 0},
		{"backing off after failures: none", with(func(s *Snapshot) { s.CreateHold = true }), 0},
		// A step load of a 10 ms action at 500/s: 5 containers keep up, a
		// backlog of a few at a tick asks for nothing (G7 over-provisioning).
		{"10 ms action at 500/s on 5 containers: none",
			with(func(s *Snapshot) { s.AvgDuration, s.Existing, s.NsExisting, s.Queued = 10*ms, 5, 5, 6 }), 0},
	} {
		d := Decide(c.s)
		if d.Create != c.create {
			t.Errorf("%s: create %d, want %d (%s)", c.name, d.Create, c.create, d.Reason)
		}
	}
	// Repeated decisions grow the pool one container at a time until the
	// backlog per slot falls under the target or the CPU brakes; a closed
	// loop of 64 clients sends no more than 64, so the pool stays under
	// 64 / TargetBacklog containers.
	s := c64
	for range 100 {
		d := Decide(s)
		s.Existing += d.Create
		s.NsExisting += d.Create
		s.Queued = 64 - s.Existing // the rest of the 64 wait in the queue
	}
	if s.Existing < 10 || s.Existing > 64/TargetBacklog {
		t.Errorf("64 closed-loop clients: %d containers after 100 decisions, want 10..%d", s.Existing, 64/TargetBacklog)
	}
}

// TestRateCap: rules e and f provision at most OverProvision × what the
// arrival rate needs, or what drains the backlog within DrainHorizon when
// that is more; with no arrival in the window they are not capped.
func TestRateCap(t *testing.T) {
	ms := time.Millisecond
	// A 10 ms action stepped to 500/s: the first container is up and ran
	// once; the cold start left 150 activations, 100 of them stale.
	step := Snapshot{State: Running, NsLimit: 100, Concurrency: 1, Queued: 150, Stale: 100, Existing: 1, NsExisting: 1,
		AvgDuration: 10 * ms, ArrivalRate: 500, CountsRecent: true}
	with := func(f func(*Snapshot)) Snapshot { s := step; f(&s); return s }
	for _, c := range []struct {
		name   string
		s      Snapshot
		create int
	}{
		// OpenWhisk's rules ask 14 more (10 for the stale, 4 for the
		// rest); the rate needs 5, 1.25 × 5 → 6 in all (rounded down).
		{"step: capped at 1.25 × rate × duration", step, 5},
		{"no arrival in the window: OpenWhisk's rules alone", with(func(s *Snapshot) { s.ArrivalRate = 0 }), 14},
		{"at the cap: nothing more", with(func(s *Snapshot) { s.Existing, s.NsExisting = 6, 6 }), 0},
		{"creations in flight: the next round waits for them", with(func(s *Snapshot) { s.InFlight, s.NsInFlight = 4, 4 }), 0},
		{"a round counts the containers of the rounds before",
			with(func(s *Snapshot) { s.Existing, s.NsExisting = 5, 5 }), 1},
		{"concurrency 2 halves the need: 2.5 → 3 in all (the need rounds up)",
			with(func(s *Snapshot) { s.Concurrency = 2 }), 2},
		// 1,000 activations of a 100 ms action at once, 5 s ago: the rate
		// over the window is low, the backlog drains within 2 s with 50.
		{"burst backlog: drained within the horizon",
			with(func(s *Snapshot) {
				s.Queued, s.Stale, s.AvgDuration, s.ArrivalRate, s.Existing, s.NsExisting = 1000, 1000, 100*ms, 1, 10, 10
			}), 40},
		{"the cap never asks for more than the rules",
			with(func(s *Snapshot) { s.ArrivalRate = 100000 }), 14},
	} {
		d := Decide(c.s)
		if d.Create != c.create {
			t.Errorf("%s: create %d, want %d (%s)", c.name, d.Create, c.create, d.Reason)
		}
	}
}

// TestArrivals: the rate is measured over the window, or since the flow
// began when that is later; buckets older than the window drop out.
func TestArrivals(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var a arrivals
	if r := a.perSecond(t0); r != 0 {
		t.Fatalf("no arrival: rate %v, want 0", r)
	}
	// 500/s for 400 ms, from idle: the rate is 500/s, not 100/s over 2 s.
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 2 * time.Millisecond)
		a.add(at, at)
	}
	if r := a.perSecond(t0.Add(400 * time.Millisecond)); r < 450 || r > 550 {
		t.Errorf("400 ms into a 500/s step: rate %v", r)
	}
	// 4 s of 500/s: the window holds the last 2 s.
	for i := 200; i < 2000; i++ {
		at := t0.Add(time.Duration(i) * 2 * time.Millisecond)
		a.add(at, at)
	}
	if r := a.perSecond(t0.Add(4 * time.Second)); r < 450 || r > 550 {
		t.Errorf("steady 500/s: rate %v", r)
	}
	// Stopped for 1 s: half the window is empty.
	if r := a.perSecond(t0.Add(5 * time.Second)); r < 200 || r > 300 {
		t.Errorf("1 s after the flow stopped: rate %v, want about 250", r)
	}
	// Stopped for longer than the window: nothing.
	if r := a.perSecond(t0.Add(7 * time.Second)); r != 0 {
		t.Errorf("a window after the flow stopped: rate %v, want 0", r)
	}
	// Published before they arrive (read late, together): counted at
	// their publication, the span starting at the first.
	var late arrivals
	for i := range 100 {
		late.add(t0.Add(time.Duration(i)*2*time.Millisecond), t0.Add(200*time.Millisecond))
	}
	if r := late.perSecond(t0.Add(200 * time.Millisecond)); r < 450 || r > 550 {
		t.Errorf("100 published over 200 ms, read at once: rate %v, want about 500", r)
	}
	// A new flow after the gap starts its own span.
	for i := range 50 {
		at := t0.Add(10*time.Second + time.Duration(i)*10*time.Millisecond)
		a.add(at, at)
	}
	if r := a.perSecond(t0.Add(10*time.Second + 500*time.Millisecond)); r < 80 || r > 120 {
		t.Errorf("a 100/s flow 500 ms after a gap: rate %v", r)
	}
}
