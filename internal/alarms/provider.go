package alarms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Stored is an alarm document as stored, with its revision.
type Stored struct {
	Alarm Alarm
	Rev   int64
}

// Docs is where the alarm documents live: the store's entities of kind
// alarm (StoreDocs adapts a store). Put with expectRev 0 creates; otherwise
// it is a compare-and-swap on the revision (whisk.Conflict when it moved).
type Docs interface {
	Get(ctx context.Context, trigger whisk.FQN) (Stored, error)
	Put(ctx context.Context, a Alarm, expectRev int64) (int64, error)
	Delete(ctx context.Context, trigger whisk.FQN) error
	List(ctx context.Context) ([]Stored, error)
}

// Identities finds the identity of a stored key (store.Store has it).
type Identities interface {
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
}

// Records lists activation records (store.Store has it): the trigger
// record of a fire tells a provider that a tick left pending by another
// one was fired.
type Records interface {
	ListActivations(ctx context.Context, namespace string, f store.ActivationFilter) ([]whisk.Activation, error)
}

// Firer fires a trigger through the normal fire path (the trigger's rules,
// their actions through the queues) as caller (*events.Firer has it). It
// answers an error whose whisk kind gives the fire's HTTP status
// (NotFound for a missing trigger, Throttled, ...), and the trigger
// activation's id ("" when no rule is active: 204). id is the trigger
// activation's id: a fire whose id has a record already is a no-op, and
// the rule activations' ids derive from it, so a tick fired twice runs
// each rule's action once (docs/alarms.md).
type Firer interface {
	Fire(ctx context.Context, caller whisk.Identity, namespace, trigger string, payload json.RawMessage, headers map[string]string, id whisk.ActivationID) (whisk.ActivationID, error)
}

// TickID is the trigger activation id of one tick of alarm a: the same
// for every provider that fires it, and different for another tick, or
// another alarm of the same name (Created differs).
func TickID(a *Alarm, tick int64) whisk.ActivationID {
	return whisk.DerivedActivationID(time.UnixMilli(tick),
		fmt.Sprintf("alarm %s/%s created %d tick %d", a.Namespace, a.Name, a.Created, tick))
}

// TriggerDeleter deletes a fired once alarm's trigger, and its rules, for
// deleteAfterFire (StoreDocs has it).
type TriggerDeleter interface {
	DeleteTrigger(ctx context.Context, as whisk.Identity, trigger whisk.FQN, withRules bool) error
}

// Shards is shard ownership (internal/cluster's Session has it): a shard
// is owned by holding its key under the owner's lease.
type Shards interface {
	// ClaimAlarmShard takes shard for owner if no one holds it (or this
	// process held it under a former lease) and reports whether owner
	// holds it now.
	ClaimAlarmShard(ctx context.Context, shard int, owner string) (bool, error)
	// AlarmShardOwners returns the owner of every held shard.
	AlarmShardOwners(ctx context.Context) (map[int]string, error)
	// ReleaseAlarmShard gives a shard up (if this process holds it).
	ReleaseAlarmShard(ctx context.Context, shard int) error
}

// Config tunes a Provider; zero values take the defaults.
type Config struct {
	ID         string        // this provider (the scheduler's id); required
	Shards     int           // alarms are split into this many shards (16); every provider must agree
	Poll       time.Duration // ownership and alarm list refresh (500 ms)
	CatchUp    time.Duration // ticks missed longer ago are skipped, not fired late (1 min)
	Retries    int           // fire retries on 429/5xx (10, as the alarms package)
	RetryDelay time.Duration // least pause between retries (1 s, as the alarms package)
	// PendingGrace is how long a tick claimed by another provider may stay
	// pending before this one, owning the shard now, fires it (2 s).
	PendingGrace time.Duration
	Now          func() time.Time
}

// Deps are a Provider's collaborators.
type Deps struct {
	Docs       Docs
	Identities Identities
	Records    Records // optional: without it a pending tick of another provider is fired again
	Firer      Firer
	Deleter    TriggerDeleter
	Shards     Shards
	// Changed (optional) tells the provider that an alarm was written
	// (FeedDeps.Changed of a feed in the same process sends on it), so it
	// reads the alarms at once rather than at its next poll.
	Changed chan struct{}
	Log     *slog.Logger
}

// NewSignal makes a Deps.Changed channel and the function a Feed calls
// (FeedDeps.Changed) to send on it.
func NewSignal() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	return ch, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Provider fires the alarms of the shards it owns. Run is its one loop;
// each due alarm is fired by a worker goroutine of its own (one at a time
// per alarm), which Run waits for before it returns.
type Provider struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	owned   atomic.Pointer[map[int]bool]
	changed chan struct{}
	fires   atomic.Int64
}

// New checks the configuration and builds a provider.
func New(cfg Config, deps Deps) (*Provider, error) {
	if cfg.ID == "" {
		return nil, errors.New("alarms: provider id required")
	}
	if deps.Docs == nil || deps.Identities == nil || deps.Firer == nil || deps.Deleter == nil || deps.Shards == nil {
		return nil, errors.New("alarms: Docs, Identities, Firer, Deleter and Shards are required")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 16
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = time.Minute
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 10
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.PendingGrace <= 0 {
		cfg.PendingGrace = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	changed := deps.Changed
	if changed == nil {
		changed = make(chan struct{}, 1)
	}
	p := &Provider{cfg: cfg, deps: deps, log: log.With("component", "alarms"), changed: changed}
	p.owned.Store(&map[int]bool{})
	return p, nil
}

// Changed tells the provider that an alarm was created, updated or
// deleted, so that it re-reads the alarms now rather than at the next poll.
func (p *Provider) Changed() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Fired counts the fires this provider made (for tests and status).
func (p *Provider) Fired() int64 { return p.fires.Load() }

// ShardOf is the shard of a trigger's alarm.
func ShardOf(trigger whisk.FQN, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(trigger.Namespace))
	h.Write([]byte{0})
	h.Write([]byte(trigger.Name))
	return int(h.Sum32() % uint32(shards))
}

// Run claims free shards and fires the due alarms of the owned ones until
// ctx ends; then it waits for its workers and releases its shards.
func (p *Provider) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	done := make(chan string, 64)
	busy := map[string]bool{}
	var alarms []Stored
	defer func() {
		wg.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		for s := range *p.owned.Load() {
			if err := p.deps.Shards.ReleaseAlarmShard(rctx, s); err != nil {
				p.log.Debug("releasing alarm shard", "shard", s, "err", err)
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastPoll time.Time // of the shard owners and the alarms
	stale := false         // the list must be read again before the next poll
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-done:
			delete(busy, k)
			stale = true // its document changed
		case <-p.changed:
			stale = true
		case <-timer.C:
		}
		now := p.cfg.Now()
		poll := now.Sub(lastPoll) >= p.cfg.Poll
		if poll {
			lastPoll = now
			p.refreshShards(ctx)
		}
		if poll || stale {
			stale = false
			if list, err := p.deps.Docs.List(ctx); err != nil {
				p.log.Warn("listing alarms", "err", err)
			} else {
				alarms = list
			}
		}
		owned := *p.owned.Load()
		wake := now.Add(p.cfg.Poll)
		for i := range alarms {
			a := &alarms[i].Alarm
			k := a.Trigger().String()
			if !a.Status.Active || busy[k] || !owned[ShardOf(a.Trigger(), p.cfg.Shards)] {
				continue
			}
			due, ok := a.Pending, a.Pending != 0
			if !ok {
				due, ok = a.Next(a.LastTick)
			}
			if !ok && a.Feed != FeedOnce && a.StopMs == 0 {
				continue
			}
			if ok && due > now.UnixMilli() {
				if t := time.UnixMilli(due); t.Before(wake) {
					wake = t
				}
				continue
			}
			// Due (or at its end: the worker disables it).
			busy[k] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.work(ctx, a.Trigger())
				done <- k
			}()
		}
		timer.Reset(max(wake.Sub(p.cfg.Now()), time.Millisecond))
	}
}

// refreshShards reads the shard owners and claims free shards while this
// provider owns fewer than its fair share (of the providers seen holding
// shards, itself included).
func (p *Provider) refreshShards(ctx context.Context) {
	owners, err := p.deps.Shards.AlarmShardOwners(ctx)
	if err != nil {
		p.log.Warn("reading alarm shard owners", "err", err)
		return // keep what we believed: the store fence stops double fires
	}
	owned := map[int]bool{}
	providers := map[string]bool{p.cfg.ID: true}
	for s, o := range owners {
		providers[o] = true
		if o == p.cfg.ID {
			owned[s] = true
		}
	}
	fair := (p.cfg.Shards + len(providers) - 1) / len(providers)
	for s := range p.cfg.Shards {
		if _, held := owners[s]; held || len(owned) >= fair {
			continue
		}
		ok, err := p.deps.Shards.ClaimAlarmShard(ctx, s, p.cfg.ID)
		if err != nil {
			p.log.Warn("claiming alarm shard", "shard", s, "err", err)
			continue
		}
		if ok {
			p.log.Info("alarm shard taken", "shard", s)
			owned[s] = true
		}
	}
	// Shards this process held under a former lease: take them back.
	if len(owned) < fair {
		for s, o := range owners {
			if o == p.cfg.ID && !owned[s] {
				if ok, _ := p.deps.Shards.ClaimAlarmShard(ctx, s, p.cfg.ID); ok {
					owned[s] = true
				}
			}
		}
	}
	if !maps.Equal(owned, *p.owned.Load()) {
		p.log.Debug("alarm shards owned", "shards", len(owned))
	}
	p.owned.Store(&owned)
}

func (p *Provider) owns(t whisk.FQN) bool {
	return (*p.owned.Load())[ShardOf(t, p.cfg.Shards)]
}

// work fires the due ticks of one alarm, each fenced in the store: claim
// (pending = tick, CAS), fire, complete (lastTick = tick, CAS).
func (p *Provider) work(ctx context.Context, t whisk.FQN) {
	log := p.log.With("trigger", t.String())
	for ctx.Err() == nil && p.owns(t) {
		st, err := p.deps.Docs.Get(ctx, t)
		if err != nil {
			if whisk.KindOf(err) != whisk.NotFound {
				log.Warn("reading alarm", "err", err)
			}
			return
		}
		a := st.Alarm
		if !a.Status.Active {
			return
		}
		now := p.cfg.Now()
		tick := a.Pending
		if tick != 0 && a.PendingBy != p.cfg.ID {
			// Claimed by a provider that no longer owns the shard: it
			// may be firing it still (a stale owner), so wait for the
			// grace, then finish it with the same activation id.
			if a.PendingAt+p.cfg.PendingGrace.Milliseconds() > now.UnixMilli() {
				return // the run loop comes back
			}
			if p.recorded(ctx, &a) {
				p.complete(ctx, t, tick, true, nil)
				continue
			}
		}
		if tick == 0 {
			next, ok := a.Next(a.LastTick)
			if !ok {
				p.finish(ctx, t, &a)
				return
			}
			if next > now.UnixMilli() {
				return
			}
			if oldest := now.Add(-p.cfg.CatchUp).UnixMilli(); next < oldest {
				// Missed longer ago than the catch-up window: skip to the
				// first tick inside it.
				skipped := int64(0)
				for next < oldest && skipped < 1_000_000 {
					n, ok := a.Next(next)
					skipped++
					if !ok {
						next = 0
						break
					}
					next = n
				}
				log.Warn("alarm ticks missed beyond the catch-up window were skipped", "ticks", skipped, "catchUp", p.cfg.CatchUp)
				a.Skipped += skipped
				if next == 0 || next > now.UnixMilli() {
					a.LastTick = max(a.LastTick, oldest)
					if _, err := p.deps.Docs.Put(ctx, a, st.Rev); err != nil && whisk.KindOf(err) != whisk.Conflict {
						log.Warn("recording skipped ticks", "err", err)
					}
					continue
				}
			}
			a.Pending, a.PendingBy, a.PendingAt = next, p.cfg.ID, now.UnixMilli()
			if _, err := p.deps.Docs.Put(ctx, a, st.Rev); err != nil {
				if whisk.KindOf(err) == whisk.Conflict {
					continue // someone wrote first: look again
				}
				log.Warn("claiming alarm tick", "err", err)
				return
			}
			tick = next
		}
		ok, disable := p.fire(ctx, &a, tick, log)
		if ctx.Err() != nil {
			return // still pending: whoever owns the shard next finishes it
		}
		p.complete(ctx, t, tick, ok, disable)
	}
}

// recorded reports whether a's trigger has an activation record that
// started at or after the pending tick was claimed: the claiming provider
// fired it (the fire path writes the record before it returns).
func (p *Provider) recorded(ctx context.Context, a *Alarm) bool {
	if p.deps.Records == nil {
		return false
	}
	recs, err := p.deps.Records.ListActivations(ctx, a.Namespace, store.ActivationFilter{Name: a.Name, Since: a.PendingAt, Limit: 1})
	return err == nil && len(recs) > 0
}

// fire fires one tick as the alarm's owner, retrying 429 and 5xx answers
// with back-off as the alarms package does. It returns whether the fire
// was accepted and, when the trigger must be disabled, why.
func (p *Provider) fire(ctx context.Context, a *Alarm, tick int64, log *slog.Logger) (bool, *Reason) {
	uuid, key, _ := strings.Cut(a.APIKey, ":")
	id, err := p.deps.Identities.IdentityByUUID(ctx, uuid)
	if err != nil || !id.Authenticate(key) {
		if err == nil || whisk.KindOf(err) == whisk.NotFound {
			return false, autoReason(http.StatusUnauthorized)
		}
		log.Warn("reading the trigger owner's identity", "err", err)
		return false, nil
	}
	throttled := 0
	tid := TickID(a, tick)
	for attempt := 0; ; attempt++ {
		aid, err := p.deps.Firer.Fire(ctx, id, a.Namespace, a.Name, a.Payload, nil, tid)
		if err == nil {
			p.fires.Add(1)
			log.Debug("alarm fired", "tick", time.UnixMilli(tick).UTC(), "activationId", aid)
			return true, nil
		}
		if ctx.Err() != nil {
			return false, nil
		}
		code := whisk.KindOf(err).HTTPStatus()
		log.Warn("firing alarm trigger", "status", code, "err", err, "attempt", attempt+1)
		if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusConflict && code != http.StatusTooManyRequests {
			return false, autoReason(code)
		}
		if code == http.StatusTooManyRequests {
			throttled++
		}
		if attempt >= p.cfg.Retries {
			if throttled >= p.cfg.Retries { // every retry followed a 429
				return false, &Reason{Kind: "AUTO", StatusCode: http.StatusTooManyRequests,
					Message: "Automatically disabled after continuously receiving a 429 status code when firing the trigger"}
			}
			return false, nil
		}
		delay := max(p.cfg.RetryDelay, time.Duration(throttled*throttled)*time.Second)
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(delay):
		}
	}
}

func autoReason(code int) *Reason {
	return &Reason{Kind: "AUTO", StatusCode: code,
		Message: fmt.Sprintf("Trigger automatically disabled: Received a %d status code when firing the trigger", code)}
}

// complete records tick as done (if it is still the pending one), and
// applies what follows a fire: disable or delete a once alarm, disable an
// alarm at its stop date or its maxTriggers, or one that must be disabled.
func (p *Provider) complete(ctx context.Context, t whisk.FQN, tick int64, fired bool, disable *Reason) {
	for ctx.Err() == nil {
		st, err := p.deps.Docs.Get(ctx, t)
		if err != nil {
			return
		}
		a := st.Alarm
		if a.Pending != tick {
			return // updated or completed meanwhile
		}
		a.Pending, a.PendingBy, a.PendingAt = 0, "", 0
		a.LastTick = tick
		if a.FirstTick == 0 {
			a.FirstTick = tick
		}
		if fired {
			a.Fired++
		}
		now := p.cfg.Now().UnixMilli()
		deleteTrigger := false
		switch {
		case disable != nil:
			a.Status = Status{Active: false, DateChanged: now, Reason: disable}
		case a.Feed == FeedOnce && (a.DeleteAfterFire == "true" || a.DeleteAfterFire == "rules"):
			deleteTrigger = true
		case a.Feed == FeedOnce:
			a.Status = Status{Active: false, DateChanged: now, Reason: &Reason{Kind: "AUTO", Message: "Automatically disabled after firing once"}}
		case a.StopMs > 0:
			if _, more := a.Next(tick); !more {
				msg := "Automatically disabled after firing last scheduled cron trigger"
				if a.Feed == FeedInterval {
					msg = "Automatically disabled after firing last scheduled interval trigger"
				}
				a.Status = Status{Active: false, DateChanged: now, Reason: &Reason{Kind: "AUTO", Message: msg}}
			}
		case a.Feed == FeedAlarm && a.MaxTriggers > 0 && a.Fired >= int64(a.MaxTriggers):
			a.Status = Status{Active: false, DateChanged: now, Reason: &Reason{Kind: "AUTO", Message: "Automatically disabled after reaching max triggers"}}
		}
		if deleteTrigger {
			if err := p.deps.Docs.Delete(ctx, t); err != nil && whisk.KindOf(err) != whisk.NotFound {
				p.log.Warn("deleting fired once alarm", "trigger", t.String(), "err", err)
				return
			}
			p.deleteTrigger(ctx, &a)
			return
		}
		if _, err := p.deps.Docs.Put(ctx, a, st.Rev); err != nil {
			if whisk.KindOf(err) == whisk.Conflict {
				continue
			}
			p.log.Warn("recording fired tick", "trigger", t.String(), "err", err)
		}
		return
	}
}

// finish disables an alarm whose schedule has no tick left (a stop date
// passed while nobody owned it, a once date older than the catch-up window).
func (p *Provider) finish(ctx context.Context, t whisk.FQN, a *Alarm) {
	st, err := p.deps.Docs.Get(ctx, t)
	if err != nil || !st.Alarm.Status.Active || st.Alarm.Pending != 0 {
		return
	}
	b := st.Alarm
	b.Status = Status{Active: false, DateChanged: p.cfg.Now().UnixMilli(),
		Reason: &Reason{Kind: "AUTO", Message: "Automatically disabled: the schedule has no tick left"}}
	if _, err := p.deps.Docs.Put(ctx, b, st.Rev); err != nil && whisk.KindOf(err) != whisk.Conflict {
		p.log.Warn("disabling finished alarm", "trigger", t.String(), "err", err)
	}
}

func (p *Provider) deleteTrigger(ctx context.Context, a *Alarm) {
	uuid, key, _ := strings.Cut(a.APIKey, ":")
	id, err := p.deps.Identities.IdentityByUUID(ctx, uuid)
	if err != nil || !id.Authenticate(key) {
		p.log.Warn("deleteAfterFire: the trigger owner's key is gone", "trigger", a.Trigger().String())
		return
	}
	if err := p.deps.Deleter.DeleteTrigger(ctx, id, a.Trigger(), a.DeleteAfterFire == "rules"); err != nil {
		p.log.Warn("deleteAfterFire: deleting the trigger", "trigger", a.Trigger().String(), "err", err)
	}
}
