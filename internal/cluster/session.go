package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eddy-faas/eddy/internal/retry"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// DefaultTTL is the lease TTL when NewSession is given none.
const DefaultTTL = 10 * time.Second

// refillBatch bounds the operations of one re-put (or pending-delete)
// transaction (etcd's default limit is 128 operations per transaction).
const refillBatch = 64

// minHookTimeout is the least time the OnRegrant hooks of one re-grant get
// (they get 3 TTLs when that is longer); then their context ends and the
// former leases are revoked anyway.
const minHookTimeout = 10 * time.Second

// ErrSessionClosed is returned by writes on a closed Session.
var ErrSessionClosed = errors.New("cluster: session closed")

// Session is a process's one etcd lease and every key the process owns.
//
// The session remembers each key written through Register*, PutCreation
// (key → value) until the matching Deregister/Delete. Run keeps the lease
// alive; when the lease is lost anyway (expired during a partition, or
// revoked), Run grants a new lease, re-writes every remembered key under
// it, and then calls the OnRegrant hooks on a goroutine of their own (the
// keep-alive loop never waits for them), with a deadline. Leader keys are
// not remembered: the scheduler re-elects in its hook, taking over a leader
// key still held by a former lease of the session (ElectLeader); the former
// leases are revoked only once the hooks have finished or timed out, so a
// leader key that survived the loss never has a gap. Every write, and the
// re-write after a re-grant, happens under one mutex, so a key deregistered
// while the lease was lost never comes back; the keep-alive never takes that
// mutex, so a write stuck while etcd elects a leader does not cost the lease.
// A key whose delete failed is forgotten at once (never re-put) and its
// delete is retried by Run until it succeeds, so it cannot stay behind under
// a live lease.
type Session struct {
	c   *Client
	log *slog.Logger
	ttl time.Duration // as granted by etcd

	mu sync.Mutex // serialises every write, the lease swap and the re-put
	// leaseID is the current lease: swapped under mu (with the re-put), read
	// without it by the keep-alive, which must never wait for a slow write.
	leaseID atomic.Int64
	former  map[clientv3.LeaseID]bool // earlier leases of this session that may still hold keys
	owned   map[string]string         // key → value, re-put under a new lease
	doomed  map[string]bool           // keys whose delete failed: Run retries it; never re-put
	hooks   []func(context.Context)
	closed  bool

	regranted chan struct{} // capacity 1: the hooks must run (again)
	lost      chan struct{} // a write saw "lease not found": Run checks at once
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// NewSession grants the process's lease (ttl 0: DefaultTTL; etcd rounds up
// to whole seconds and enforces its own minimum). Nothing keeps the lease
// alive until Run is called.
func NewSession(ctx context.Context, c *Client, ttl time.Duration, log *slog.Logger) (*Session, error) {
	if c == nil {
		return nil, errors.New("cluster: new session: nil client")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := c.etcd.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("cluster: grant lease (ttl %ds): %w", secs, err)
	}
	s := &Session{
		c:         c,
		log:       orDiscard(log),
		ttl:       time.Duration(resp.TTL) * time.Second,
		former:    map[clientv3.LeaseID]bool{},
		owned:     map[string]string{},
		doomed:    map[string]bool{},
		regranted: make(chan struct{}, 1),
		lost:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.leaseID.Store(int64(resp.ID))
	s.log.Debug("lease granted", "lease", fmt.Sprintf("%x", int64(resp.ID)), "ttl", s.ttl)
	return s, nil
}

// lease returns the current lease.
func (s *Session) lease() clientv3.LeaseID { return clientv3.LeaseID(s.leaseID.Load()) }

// Client returns the client the session writes through.
func (s *Session) Client() *Client { return s.c }

// OnRegrant registers fn to be called after every re-grant of the lease
// once the remembered keys are back. The hooks run one after the other on
// a goroutine of Run's (not the keep-alive loop), with a context that ends
// after 3 TTLs (at least 10 s) or when Run returns; re-grants while they
// run make them run once more afterwards. The session's former leases, and
// the leader keys they may hold, live until the hooks have returned.
func (s *Session) OnRegrant(fn func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Run is the session's one keep-alive loop: it renews the lease every third
// of its TTL and recovers from its loss (see Session). It returns nil when
// ctx ends or the session is closed; it does not revoke the lease.
func (s *Session) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	hooksDone := make(chan struct{})
	defer func() {
		cancel() // ends the hooks' context ...
		<-hooksDone
	}()
	go func() { defer close(hooksDone); s.runHooks(ctx) }()

	interval := max(s.ttl/3, 100*time.Millisecond)
	// The retry delay doubles up to interval while etcd keeps failing.
	backoff := retry.New(min(interval, 250*time.Millisecond), interval)
	lastOK := time.Now()
	lost := false
	timer := time.NewTimer(interval)
	defer timer.Stop()
	again := func() time.Duration {
		d := backoff.Next()
		timer.Reset(d)
		return d
	}
	ok := func() {
		backoff.Reset()
		timer.Reset(interval)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-s.lost: // a write saw the lease gone: check at once
		case <-timer.C:
		}
		if s.stopped(ctx) {
			return nil
		}
		if !lost {
			err := s.keepAlive(ctx, interval)
			switch {
			case err == nil:
				lastOK = time.Now()
				ok()
				s.retryDeletes(ctx, interval)
				continue
			case s.stopped(ctx):
				return nil
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				s.log.Warn("etcd lease lost; re-granting", "err", err)
			case time.Since(lastOK) < s.ttl:
				s.log.Debug("lease keep-alive failed; retrying", "err", err)
				again()
				continue
			default:
				s.log.Warn("etcd lease presumed expired (no keep-alive for a TTL); re-granting",
					"ttl", s.ttl, "err", err)
			}
			lost = true
		}
		if err := s.recover(ctx); err != nil {
			if s.stopped(ctx) {
				return nil
			}
			d := again()
			s.log.Warn("lease recovery failed; retrying", "err", err, "in", d)
			continue
		}
		lost = false
		lastOK = time.Now()
		ok()
		s.retryDeletes(ctx, interval)
	}
}

// runHooks calls the OnRegrant hooks after each re-grant, until ctx ends,
// then revokes the leases that were former when the round began: the hooks
// have re-elected (taking leader keys over from them) or given up.
func (s *Session) runHooks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.regranted:
		}
		s.mu.Lock()
		hooks := slices.Clone(s.hooks)
		formers := slices.Collect(maps.Keys(s.former))
		s.mu.Unlock()

		hctx, cancel := context.WithTimeout(ctx, max(3*s.ttl, minHookTimeout))
		finished := make(chan struct{})
		go func() { // a hook that ignores its context is left behind, not waited for
			defer close(finished)
			for _, h := range hooks {
				if hctx.Err() != nil {
					return
				}
				h(hctx)
			}
		}()
		select {
		case <-finished:
		case <-hctx.Done():
			if ctx.Err() == nil {
				s.log.Warn("lease re-grant hooks did not finish in time; revoking the former leases anyway")
			}
		}
		cancel()
		if ctx.Err() != nil {
			return // Run is returning: Close revokes them, or they expire
		}
		for _, id := range formers {
			if s.revoke(id) {
				s.mu.Lock()
				delete(s.former, id)
				s.mu.Unlock()
			}
		}
	}
}

// retryDeletes deletes the keys whose delete failed earlier (bounded by
// timeout); the ones deleted are forgotten.
func (s *Session) retryDeletes(ctx context.Context, timeout time.Duration) {
	// A write in progress holds mu, for long if etcd is electing a leader:
	// the deletes wait for a later round, not the keep-alive loop for it.
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if s.closed || len(s.doomed) == 0 {
		return
	}
	keys := slices.Sorted(maps.Keys(s.doomed))
	for chunk := range slices.Chunk(keys, refillBatch) {
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, k := range chunk {
			ops = append(ops, clientv3.OpDelete(k))
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := s.c.etcd.Txn(dctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			s.log.Debug("retrying deletes failed; trying again later", "keys", len(s.doomed), "err", err)
			return
		}
		for _, k := range chunk {
			delete(s.doomed, k)
		}
		s.log.Debug("deleted keys whose delete had failed", "keys", len(chunk))
	}
}

func (s *Session) stopped(ctx context.Context) bool {
	select {
	case <-s.done:
		return true
	default:
		return ctx.Err() != nil
	}
}

func (s *Session) keepAlive(ctx context.Context, timeout time.Duration) error {
	lease := s.lease() // not under mu: a write hanging on etcd must not cost the lease
	kctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.c.etcd.KeepAliveOnce(kctx, lease)
	return err
}

// recover grants a new lease, re-puts every remembered key under it and
// has runHooks call the OnRegrant hooks, then revoke the earlier leases
// (their leader keys that were not taken over go with them).
func (s *Session) recover(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, max(s.ttl, time.Second))
	resp, err := s.c.etcd.Grant(gctx, int64(s.ttl/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("cluster: re-grant lease: %w", err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.revoke(resp.ID)
		return ErrSessionClosed
	}
	old := s.lease()
	s.former[old] = true
	s.leaseID.Store(int64(resp.ID))
	n := len(s.owned)
	err = s.refillLocked(ctx)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Warn("etcd lease re-granted; keys restored",
		"old", fmt.Sprintf("%x", int64(old)), "new", fmt.Sprintf("%x", int64(resp.ID)), "keys", n)
	select {
	case s.regranted <- struct{}{}:
	default: // a round is already due; it will see this lease's formers
	}
	return nil
}

// refillLocked re-puts every remembered key under the current lease, in
// transactions of refillBatch puts. s.mu is held.
func (s *Session) refillLocked(ctx context.Context) error {
	keys := slices.Sorted(maps.Keys(s.owned))
	for chunk := range slices.Chunk(keys, refillBatch) {
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, k := range chunk {
			ops = append(ops, clientv3.OpPut(k, s.owned[k], clientv3.WithLease(s.lease())))
		}
		pctx, cancel := context.WithTimeout(ctx, max(s.ttl, time.Second))
		_, err := s.c.etcd.Txn(pctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: re-put %d keys under the new lease: %w", len(keys), err)
		}
	}
	return nil
}

// revoke revokes lease id (best effort, bounded); it reports whether the
// lease is now certainly gone.
func (s *Session) revoke(id clientv3.LeaseID) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := s.c.etcd.Revoke(ctx, id)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Debug("revoke old lease failed; it will expire", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
		return false
	}
	return true
}

// Close revokes the lease: every key of the process vanishes at once. Run
// returns. Writes after Close fail with ErrSessionClosed.
func (s *Session) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		lease := s.lease()
		formers := slices.Collect(maps.Keys(s.former))
		s.owned = map[string]string{}
		s.doomed = map[string]bool{} // the revoke takes them
		s.mu.Unlock()
		close(s.done)
		if _, rerr := s.c.etcd.Revoke(ctx, lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = fmt.Errorf("cluster: revoke lease %x: %w", int64(lease), rerr)
		}
		for _, id := range formers {
			s.revoke(id)
		}
	})
	return err
}

// RegisterScheduler writes (or updates) the scheduler's registration.
func (s *Session) RegisterScheduler(ctx context.Context, info whisk.SchedulerInfo) error {
	return s.put(ctx, schedulerKey(info.ID), info)
}

// RegisterInvoker writes (or updates) the invoker's registration.
func (s *Session) RegisterInvoker(ctx context.Context, info whisk.InvokerInfo) error {
	return s.put(ctx, invokerKey(info.ID), info)
}

// RegisterContainer registers a container able to take work.
func (s *Session) RegisterContainer(ctx context.Context, info whisk.ContainerInfo) error {
	return s.put(ctx, containerKey(info), info)
}

// DeregisterContainer removes a container's key; it is never re-put.
func (s *Session) DeregisterContainer(ctx context.Context, info whisk.ContainerInfo) error {
	return s.del(ctx, containerKey(info))
}

// PutCreation records an in-flight container creation.
//
// With countedAt > 0 it admits the creation only if no other creation of
// the namespace was admitted since revision countedAt (CountUsed's at):
// the key is written together with a bump of the namespace's admission
// key, in one transaction that compares that key's revision. Schedulers
// that counted the same free slot at once therefore cannot both take it;
// the one refused (admitted false, no error) counts again. countedAt 0
// writes unconditionally.
func (s *Session) PutCreation(ctx context.Context, info whisk.CreationInfo, countedAt int64) (admitted bool, err error) {
	if countedAt <= 0 {
		return true, s.put(ctx, creationKey(info), info)
	}
	key, ak := creationKey(info), admittedKey(info.Namespace)
	val, err := json.Marshal(info)
	if err != nil {
		return false, fmt.Errorf("cluster: encode %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("cluster: put %s: %w", key, ErrSessionClosed)
	}
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(ak), "<", countedAt+1)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(s.lease())), clientv3.OpPut(ak, "", clientv3.WithLease(s.lease()))).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.signalLost()
		}
		return false, fmt.Errorf("cluster: admit %s: %w", key, err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	s.owned[key] = string(val) // re-put after a re-grant, as put's keys
	delete(s.doomed, key)
	return true, nil
}

// DeleteCreation removes an in-flight creation's key; it is never re-put.
func (s *Session) DeleteCreation(ctx context.Context, info whisk.CreationInfo) error {
	return s.del(ctx, creationKey(info))
}

// put remembers key → v and writes it under the current lease. The key
// stays remembered even if the write fails (the error is returned; the key
// is re-written after the next re-grant): a caller that gives up on it must
// deregister it. A write refused because the lease is gone is not an error:
// Run re-grants at once and re-writes the key.
func (s *Session) put(ctx context.Context, key string, v any) error {
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cluster: encode %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("cluster: put %s: %w", key, ErrSessionClosed)
	}
	s.owned[key] = string(val)
	delete(s.doomed, key) // registered again: its pending delete would remove it
	if _, err := s.c.etcd.Put(ctx, key, string(val), clientv3.WithLease(s.lease())); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.signalLost()
			s.log.Debug("put found the lease gone; it is re-put after the re-grant", "key", key)
			return nil
		}
		return fmt.Errorf("cluster: put %s: %w", key, err)
	}
	return nil
}

// del forgets key and deletes it, in one critical section with every
// re-put, so the key cannot be resurrected. If the delete fails, the key is
// still forgotten (never re-put) and Run retries the delete until it
// succeeds (or a later put of the key cancels it); the error is returned
// for the caller's information, it need not retry.
func (s *Session) del(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owned, key)
	if s.closed {
		return nil // the lease is revoked: the key is gone
	}
	if _, err := s.c.etcd.Delete(ctx, key); err != nil {
		s.doomed[key] = true
		return fmt.Errorf("cluster: delete %s (retried in the background): %w", key, err)
	}
	delete(s.doomed, key)
	return nil
}

// signalLost tells Run that the lease is gone. s.mu may be held.
func (s *Session) signalLost() {
	select {
	case s.lost <- struct{}{}:
	default:
	}
}

// ElectLeader makes this scheduler the leader of f's queue if the action
// has none (put-if-absent under the session's lease). It returns won=true
// and info if it won or already held the key, else won=false and the
// current leader. A leader key left by one of this session's earlier
// leases is taken over.
func (s *Session) ElectLeader(ctx context.Context, f whisk.FQN, info whisk.LeaderInfo) (won bool, current whisk.LeaderInfo, err error) {
	key := leaderKey(f)
	val, err := json.Marshal(info)
	if err != nil {
		return false, current, fmt.Errorf("cluster: encode %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, current, fmt.Errorf("cluster: elect leader of %s: %w", f, ErrSessionClosed)
	}
	for attempt := 0; ; attempt++ {
		resp, err := s.c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(s.lease()))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				s.signalLost()
			}
			return false, current, fmt.Errorf("cluster: elect leader of %s: %w", f, err)
		}
		if resp.Succeeded {
			return true, info, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 { // cannot happen in one transaction
			if attempt > 0 {
				return false, current, fmt.Errorf("cluster: elect leader of %s: key neither absent nor present", f)
			}
			continue
		}
		kv := kvs[0]
		if err := json.Unmarshal(kv.Value, &current); err != nil {
			return false, current, fmt.Errorf("cluster: decode %s: %w", key, err)
		}
		holder := clientv3.LeaseID(kv.Lease)
		if holder == s.lease() {
			return true, current, nil
		}
		if !s.former[holder] || attempt > 0 {
			return false, current, nil
		}
		// Our own key under a lease we lost: move it to the current lease,
		// unless someone changed it meanwhile.
		tresp, err := s.c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(s.lease()))).
			Commit()
		if err != nil {
			return false, current, fmt.Errorf("cluster: take over leader key of %s: %w", f, err)
		}
		if tresp.Succeeded {
			return true, info, nil
		}
	}
}

// ResignLeader deletes f's leader key if, and only if, this session's lease
// (or one of its earlier leases) holds it.
func (s *Session) ResignLeader(ctx context.Context, f whisk.FQN) error {
	key := leaderKey(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // the lease is revoked: the key is gone
	}
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", s.lease())).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cluster: resign leader of %s: %w", f, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || !s.former[clientv3.LeaseID(kvs[0].Lease)] {
		return nil // no leader, or someone else's
	}
	if _, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).
		Commit(); err != nil {
		return fmt.Errorf("cluster: resign leader of %s: %w", f, err)
	}
	return nil
}
