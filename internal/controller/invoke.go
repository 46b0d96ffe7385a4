package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Annotation keys the invoke path reads.
const (
	annFinal         = "final"
	annProvideAPIKey = "provide-api-key"
	annConductor     = whisk.AnnConductor
)

// Invoke runs one invocation: rate check, message, queue, publish, and for
// blocking requests the wait for the completion. A blocking invocation that
// does not finish within its wait checks the store once and otherwise
// answers with the activation id only (Result.Activation nil).
//
// Errors carry whisk kinds: Throttled (rate), Invalid (parameters),
// Unavailable (no scheduler, bus failure).
func (c *Controller) Invoke(ctx context.Context, req Request) (Result, error) {
	res, err := c.invoke(ctx, req)
	if t := whisk.ThrottleOf(err); t != nil {
		c.deps.Observer.Throttled(req.Identity.Namespace, t.Limit)
	}
	return res, err
}

func (c *Controller) invoke(ctx context.Context, req Request) (Result, error) {
	if err := c.admit(req.Identity); err != nil {
		return Result{}, err
	}
	wait := req.Wait
	if wait <= 0 || wait > c.cfg.BlockingWait {
		wait = c.cfg.BlockingWait
	}
	switch {
	case req.Action.IsSequence():
		return c.invokeSequence(ctx, req, wait)
	case truthy(req.Action.Annotations, annConductor, false):
		return c.invokeComposition(ctx, req, wait)
	}
	return c.invokePrimitive(ctx, req, "", wait)
}

// invokePrimitive runs one activation of an action that runs in a
// container: message, queue, publish and, when req.Blocking, the wait for
// its completion (up to wait). cause is the enclosing sequence or
// composition ("" for none).
func (c *Controller) invokePrimitive(ctx context.Context, req Request, cause whisk.ActivationID, wait time.Duration) (Result, error) {
	const op = "controller.Invoke"
	var params json.RawMessage
	var err error
	if t := bytes.TrimSpace(req.Params); cause != "" && len(t) > 0 && t[0] == '[' {
		// A step's input may be the array its predecessor returned:
		// OpenWhisk passes it as is, without the action's defaults.
		params = t
	} else if params, err = mergeParams(req.Action, req.Params); err != nil {
		return Result{}, err
	}
	meta := req.Action.Meta()
	var id whisk.ActivationID
	if cause == "" {
		id = req.activationID()
	} else {
		id = whisk.NewActivationID() // a step: its chain has the caller's id
	}
	msg := whisk.ActivationMessage{
		ActivationID:   id,
		TransactionID:  req.TransactionID,
		Action:         meta,
		Subject:        req.Identity.Subject,
		Params:         params,
		Blocking:       req.Blocking,
		ControllerID:   c.cfg.ID,
		NamespaceLimit: req.Identity.Limits.Effective(c.cfg.Limits).ConcurrentContainers,
		Cause:          cause,
		Binding:        req.Binding,
		Repeat:         cause == "" && req.ActivationID != "",
		ResultOnly:     req.Blocking && req.ResultOnly && cause == "",
		TraceParent:    req.TraceParent,
	}
	if req.Identity.Namespace != meta.Namespace {
		msg.CallerNamespace = req.Identity.Namespace
	}
	if truthy(req.Action.Annotations, annProvideAPIKey, true) {
		msg.APIKey = req.Identity.AuthKey()
	}

	ctx, endSpan := c.traceInvoke(ctx, &msg)
	defer endSpan()
	fqn := req.Action.FQN()
	topic := whisk.ActionTopic(fqn)
	if err := c.ensureTopic(ctx, topic); err != nil {
		return Result{}, whisk.E(op, whisk.Unavailable, "", err)
	}

	// The flight is recorded in the same critical section as the leader
	// cache check: a leader deletion processed after the check finds the
	// flight and recreates the queue, so the message is never stranded.
	var done chan whisk.Activation
	c.mu.Lock()
	if req.Blocking {
		done = make(chan whisk.Activation, 1)
		c.waiters[id] = done
	}
	c.takeOff(id, meta)
	cr := c.claimCreationLocked(fqn)
	c.mu.Unlock()
	if req.Blocking {
		defer c.dropWaiter(id)
	}
	if cr != nil {
		if err := c.startCreation(ctx, meta, cr); err != nil {
			c.mu.Lock()
			c.land(id)
			c.mu.Unlock()
			return Result{}, err
		}
	}

	msg.Published = c.now().UnixMilli()
	b, err := msg.AppendJSON(make([]byte, 0, 512+len(msg.Params)))
	if err == nil {
		began := time.Now()
		err = c.deps.Bus.Publish(ctx, topic, b)
		c.deps.Observer.Published(time.Since(began), err)
	}
	if err != nil {
		c.mu.Lock()
		c.land(id)
		c.mu.Unlock()
		return Result{}, whisk.E(op, whisk.Unavailable, "", err)
	}
	if !req.Blocking {
		return Result{ActivationID: id}, nil
	}

	began := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case a := <-done:
		c.deps.Observer.Waited(time.Since(began), WaitCompleted)
		return blockingResult(id, a)
	case <-ctx.Done():
		c.deps.Observer.Waited(time.Since(began), WaitCancelled)
		return Result{ActivationID: id}, nil
	case <-timer.C:
	}
	c.deps.Observer.Waited(time.Since(began), WaitTimedOut)
	// Timed out: forget the waiter at once (a later completion is dropped;
	// the flight stays until it lands or expires), but take a completion
	// that raced the timer (complete sends under c.mu).
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
	select {
	case a := <-done:
		return blockingResult(id, a)
	default:
	}
	// The completion may have been lost (or sent to a controller that went
	// away and came back); the record is the truth.
	if a, err := c.deps.Activations.GetActivation(ctx, req.Identity.Namespace, id); err == nil {
		return blockingResult(id, a)
	} else if !whisk.IsKind(err, whisk.NotFound) {
		c.log.Warn("blocking fallback read failed", "activation", string(id), "err", err)
	}
	return Result{ActivationID: id}, nil
}

// blockingResult is the answer of a blocking invocation that has its record.
// A record the queue failed at a limit carries the throttle marker
// (whisk.AnnThrottled: which limit, count, allowed, retry-after) and becomes
// a Throttled error (429 with OpenWhisk's message, like OpenWhisk's
// ActivationThrottler, a Retry-After header and the limit named); the
// record stays in the store under id.
func blockingResult(id whisk.ActivationID, a whisk.Activation) (Result, error) {
	if t := whisk.ThrottleOfRecord(a); t != nil && a.Response.StatusCode == whisk.StatusWhiskError {
		return Result{ActivationID: id}, whisk.ThrottledError("controller.Invoke", t)
	}
	return Result{ActivationID: id, Activation: &a}, nil
}

func (c *Controller) dropWaiter(id whisk.ActivationID) {
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
}

// ensureTopic makes sure topic exists, once per process per topic.
func (c *Controller) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := c.topics.Load(topic); ok {
		return nil
	}
	if err := c.deps.Bus.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	c.topics.Store(topic, struct{}{})
	return nil
}

// rateWindow counts one namespace's invocations in one wall-clock minute.
type rateWindow struct {
	minute int64
	count  int
}

// admit applies the per-namespace per-minute rate. It is a fixed window on
// the wall-clock minute, like OpenWhisk's RateThrottler, kept in this
// controller's memory (N controllers admit N× the limit, as in OpenWhisk).
// Rejected requests count too, so the message reports every attempt. The
// throttle clears by itself when the minute turns: a refusal's Retry-After is
// the time left in the current minute.
func (c *Controller) admit(id whisk.Identity) error {
	allowed := id.Limits.Effective(c.cfg.Limits).InvocationsPerMinute
	if allowed <= 0 {
		return nil
	}
	now := c.now()
	minute := now.Unix() / 60
	c.mu.Lock()
	w := c.rates[id.Namespace]
	if w == nil {
		w = &rateWindow{}
		c.rates[id.Namespace] = w
	}
	if w.minute != minute {
		w.minute, w.count = minute, 0
	}
	w.count++
	count := w.count
	c.mu.Unlock()
	if count > allowed {
		next := time.Unix((minute+1)*60, 0)
		return whisk.ThrottledError("controller.admit", &whisk.Throttle{
			Limit: whisk.LimitInvocationsPerMinute, RetryAfter: next.Sub(now),
			Count: count, Allowed: allowed,
		})
	}
	return nil
}

// mergeParams merges the invoke body over the action's parameters and
// renders the result as one JSON object (action parameters in their order,
// then new keys sorted). When the action is annotated final, its defined
// parameters may not be overridden.
func mergeParams(a whisk.Action, body json.RawMessage) (json.RawMessage, error) {
	var given map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &given); err != nil || given == nil {
			detail := "the parameters must be a JSON object"
			if err != nil {
				detail = err.Error()
			}
			return nil, whisk.E("controller.mergeParams", whisk.Invalid, whisk.MsgMalformed+detail, err)
		}
	}
	if truthy(a.Annotations, annFinal, false) {
		for _, kv := range a.Parameters {
			if _, over := given[kv.Key]; over && !isNull(kv.Value) {
				return nil, whisk.E("controller.mergeParams", whisk.Invalid, whisk.MsgReservedParams, nil)
			}
		}
	}
	extra := whisk.ObjectParams(given)
	merged := a.Parameters.Merge(extra)

	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, kv := range merged {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(kv.Key)
		buf.Write(k)
		buf.WriteByte(':')
		if isNull(kv.Value) {
			buf.WriteString("null")
		} else {
			buf.Write(kv.Value)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func isNull(v json.RawMessage) bool {
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}

// truthy is OpenWhisk's isTruthy: false, 0, "" and null are false, any
// other value true; a missing key gives ifMissing.
func truthy(p whisk.Params, key string, ifMissing bool) bool {
	v, ok := p.Get(key)
	if !ok {
		return ifMissing
	}
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return ifMissing
	}
	switch x := x.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	default:
		return true
	}
}
