package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Sequences and compositions run here, in the controller, as in OpenWhisk
// (docs/internals.md): the controller that took the request drives the
// chain, and every component is an ordinary activation through the normal
// path (publish → leader queue → container pull → completion), with the
// chain's id as its cause. A step waits for its component's completion
// exactly as a blocking invocation does (a waiter resolved from the
// completion topic), so handing a result on costs no polling, and a
// component that never completes costs one store read at the end of its
// wait. The chain itself needs no container and holds no queue.

// Records stores the records of sequences and compositions (store.Store
// has it); their components' records are written by whoever ran them.
type Records interface {
	PutActivation(ctx context.Context, a whisk.Activation) error
}

// MaxSequenceLength is OpenWhisk's limits.actions.sequence.maxLength: the
// most components of a sequence and atomic actions of one run (nested
// sequences inlined), and the most components of a composition (whose
// conductor may run 2n+1 times).
const MaxSequenceLength = 50

// recordWriteTimeout bounds the write of a chain's record, which is made
// with a context of its own: the chain may end because the controller is
// closing.
const recordWriteTimeout = 10 * time.Second

// stepGrace is what a chain step waits beyond its component's time limit
// for the component's completion (OpenWhisk: 1 minute).
const stepGrace = time.Minute

// chain is one top-level invocation of a sequence or a composition, shared
// by every step and nested chain it runs.
type chain struct {
	caller   whisk.Identity
	tid      string
	received time.Time // when the controller took the request (waitTime)
}

// resolved is a component's action or the error resolving it.
type resolved struct {
	q      whisk.EntityName
	action whisk.Action
	bind   string // "ns/binding" when reached through a binding
	err    error
}

// invokeSequence is Invoke for a sequence: the components the caller may
// not read are a 403 at once (OpenWhisk's entitlement check at activate);
// otherwise the chain runs in the background and a blocking caller waits
// up to wait for its record, else gets the sequence's id (202) while the
// chain goes on.
func (c *Controller) invokeSequence(ctx context.Context, req Request, wait time.Duration) (Result, error) {
	const op = "controller.invokeSequence"
	ch := &chain{caller: req.Identity, tid: req.TransactionID, received: c.now()}
	comps := c.resolveComponents(ctx, ch.caller, req.Action)
	var denied []string
	for _, r := range comps {
		if whisk.IsKind(r.err, whisk.Forbidden) {
			denied = append(denied, r.q.Path())
		}
	}
	if len(denied) > 0 {
		return Result{}, whisk.E(op, whisk.Forbidden, whisk.MsgNotAuthorized(joinSorted(denied)), nil)
	}
	id := req.activationID()
	return c.runTopmost(ctx, req, id, wait, func(bg context.Context) whisk.Activation {
		rec, _ := c.runSequence(bg, ch, req.Action, req.Binding, id, req.Params, "", 0, comps)
		return rec
	})
}

// runTopmost runs a top-level chain on a tracked background goroutine (it
// outlives the request) and answers as a primitive invocation does.
func (c *Controller) runTopmost(ctx context.Context, req Request, id whisk.ActivationID, wait time.Duration,
	run func(bg context.Context) whisk.Activation) (Result, error) {
	done := make(chan whisk.Activation, 1)
	if !c.goBackground(func() { done <- run(c.bg) }) {
		return Result{}, whisk.E("controller.runTopmost", whisk.Unavailable, "", errors.New("controller closed"))
	}
	if !req.Blocking {
		return Result{ActivationID: id}, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case a := <-done:
		return Result{ActivationID: id, Activation: &a}, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	return Result{ActivationID: id}, nil
}

// resolveComponents resolves every component of a sequence up front, as
// OpenWhisk does (to overlap the reads with the first steps); a component
// deleted later still runs as it was read.
func (c *Controller) resolveComponents(ctx context.Context, caller whisk.Identity, seq whisk.Action) []resolved {
	out := make([]resolved, len(seq.Exec.Components))
	for i, name := range seq.Exec.Components {
		q, err := whisk.ParseFullName(name)
		if err != nil {
			out[i].err = err
			continue
		}
		out[i].q = q.Resolve(caller.Namespace)
		var ra whisk.ResolvedAction
		ra, out[i].err = c.deps.Components.Action(ctx, caller.Namespace, out[i].q)
		out[i].action, out[i].bind = ra.Action, ra.Binding
	}
	return out
}

// seqAccount is the running account of one sequence: OpenWhisk's
// SequenceAccounting.
type seqAccount struct {
	atomic   int            // atomic actions run so far in the topmost sequence
	resp     whisk.Response // the last response: the sequence's when it ends
	logs     []string       // direct component ids, in order
	duration int64          // sum of the component durations
	maxMem   int64          // the largest component memory limit seen (0: none)
}

// done accounts for a component's record; it reports whether the sequence
// goes on.
func (a *seqAccount) done(rec *whisk.Activation) bool {
	a.logs = append(a.logs, string(rec.ActivationID))
	a.duration += rec.Duration
	a.maxMem = max(a.maxMem, recordMemory(rec))
	a.resp = rec.Response
	if a.atomic > MaxSequenceLength {
		a.resp = whisk.ErrorResponse(whisk.StatusApplicationError, whisk.MsgSequenceTooLong)
		return false
	}
	return !hasErrorField(rec.Response.Result)
}

// fail ends the sequence with resp; id, if any, is the component that had
// no record in time.
func (a *seqAccount) fail(resp whisk.Response, id whisk.ActivationID) {
	if id != "" {
		a.logs = append(a.logs, string(id))
	}
	a.resp = resp
}

// runSequence runs the sequence seq (reached through binding, if any) as
// activation id on input and stores its record, which it returns with the
// atomic count reached. cause is the
// enclosing chain ("" when topmost); atomic the count before it; comps
// the resolved components (nil: resolved here).
func (c *Controller) runSequence(ctx context.Context, ch *chain, seq whisk.Action, binding string, id whisk.ActivationID,
	input json.RawMessage, cause whisk.ActivationID, atomic int, comps []resolved) (whisk.Activation, int) {
	start := c.now()
	if comps == nil {
		comps = c.resolveComponents(ctx, ch.caller, seq)
	}
	acc := seqAccount{atomic: atomic, resp: whisk.NewResponse(whisk.StatusSuccess, input)}
steps:
	for _, r := range comps {
		if acc.atomic >= MaxSequenceLength {
			acc.fail(whisk.ErrorResponse(whisk.StatusApplicationError, whisk.MsgSequenceTooLong), "")
			break
		}
		if r.err != nil {
			if whisk.IsKind(r.err, whisk.NotFound) {
				acc.fail(whisk.ErrorResponse(whisk.StatusApplicationError, whisk.MsgSequenceComponentGone), "")
			} else {
				c.log.Warn("sequence component unresolved", "sequence", string(id), "component", r.q.String(), "err", r.err)
				acc.fail(whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgSequenceFailed), "")
			}
			break
		}
		comp := r.action
		var rec whisk.Activation
		switch {
		case comp.IsSequence():
			rec, acc.atomic = c.runSequence(ctx, ch, comp, r.bind, whisk.NewActivationID(), input, id, acc.atomic, nil)
		case truthy(comp.Annotations, annConductor, false):
			rec = c.runComposition(ctx, ch, comp, r.bind, whisk.NewActivationID(), input, id, &compAccount{})
			acc.atomic++
		default:
			got, stepID, err := c.primitiveStep(ctx, ch, comp, r.bind, input, id)
			if err != nil || ctx.Err() != nil {
				c.log.Warn("sequence component failed", "sequence", string(id), "component", r.q.String(), "err", err)
				acc.fail(whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgSequenceFailed), stepID)
			} else if got == nil {
				acc.fail(whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgSequenceTimeout(stepID)), stepID)
			}
			if got == nil {
				break steps
			}
			rec = *got
			acc.atomic++
		}
		if !acc.done(&rec) {
			break
		}
		input = nextInput(rec.Response.Result)
	}
	var limits *whisk.Limits
	if acc.maxMem > 0 {
		limits = &whisk.Limits{Timeout: seq.Limits.Timeout, Memory: acc.maxMem, Logs: seq.Limits.Logs, Concurrency: 1}
	}
	rec := c.chainRecord(ch, seq, binding, id, cause, start, acc.resp, acc.logs, acc.duration, limits, false)
	c.storeRecord(rec)
	return rec, acc.atomic
}

// primitiveStep runs one component in a container, as a blocking
// invocation caused by the chain, waiting up to the component's time limit
// + 1 minute (OpenWhisk's wait). A nil record with no error is a timeout:
// id names the activation that did not complete.
func (c *Controller) primitiveStep(ctx context.Context, ch *chain, comp whisk.Action, binding string, input json.RawMessage,
	cause whisk.ActivationID) (*whisk.Activation, whisk.ActivationID, error) {
	res, err := c.invokePrimitive(ctx, Request{
		TransactionID: ch.tid, Identity: ch.caller, Action: comp, Binding: binding, Params: input, Blocking: true,
	}, cause, comp.Limits.TimeoutDuration()+c.stepGrace)
	if err != nil {
		return nil, "", err
	}
	return res.Activation, res.ActivationID, nil
}

// chainRecord builds the record of a sequence or a composition (reference
// §2.3, §3): the caller's namespace, the chain's own (bare) name, the
// components' summed duration, and OpenWhisk's annotations in OpenWhisk's
// order (binding when the chain was reached through a binding).
func (c *Controller) chainRecord(ch *chain, a whisk.Action, binding string, id, cause whisk.ActivationID, start time.Time,
	resp whisk.Response, logs []string, duration int64, limits *whisk.Limits, conductor bool) whisk.Activation {
	end := c.now()
	if logs == nil {
		logs = []string{}
	}
	topmost := cause == ""
	anns := whisk.Params{
		{Key: whisk.AnnTopmost, Value: jsonValue(topmost)},
		{Key: whisk.AnnPath, Value: jsonValue(a.Namespace + "/" + a.Name)},
		{Key: whisk.AnnKind, Value: jsonValue(whisk.KindSequence)},
	}
	if conductor {
		anns = append(anns, whisk.KeyValue{Key: whisk.AnnConductor, Value: jsonValue(true)})
	}
	if !topmost {
		anns = append(anns, whisk.KeyValue{Key: whisk.AnnCausedBy, Value: jsonValue(whisk.CausedBySequence)})
	}
	anns = append(anns, whisk.KeyValue{Key: whisk.AnnWaitTime, Value: jsonValue(max(start.Sub(ch.received).Milliseconds(), 0))})
	if binding != "" {
		anns = append(anns, whisk.KeyValue{Key: whisk.AnnBinding, Value: jsonValue(binding)})
	}
	if limits != nil {
		anns = append(anns, whisk.KeyValue{Key: whisk.AnnLimits, Value: jsonValue(limits)})
	}
	return whisk.Activation{
		Namespace: ch.caller.Namespace, Name: a.BareName(), Version: a.Version, Subject: ch.caller.Subject,
		ActivationID: id, Start: start.UnixMilli(), End: max(end.UnixMilli(), start.UnixMilli()), Cause: cause,
		Duration: duration, StatusCode: resp.StatusCode, Response: resp, Logs: logs, Annotations: anns,
	}
}

// storeRecord writes a chain's record off the chain's path, as invokers
// write theirs: the caller (or the enclosing chain) has it at once, and a
// read of the record right after may wait for it as for any record.
// Close waits for the write.
func (c *Controller) storeRecord(rec whisk.Activation) {
	if !c.goBackground(func() { c.putRecord(rec) }) {
		c.putRecord(rec)
	}
}

// putRecord writes a chain's record; a failure is logged (the caller may
// still have had the record in the answer).
func (c *Controller) putRecord(rec whisk.Activation) {
	ctx, cancel := context.WithTimeout(context.Background(), recordWriteTimeout)
	defer cancel()
	if err := c.deps.Records.PutActivation(ctx, rec); err != nil {
		c.log.Error("storing a sequence record", "activation", string(rec.ActivationID), "err", err)
	}
}

// nextInput is the input of the step after one that returned result: the
// result if it is an object or an array, else nothing.
func nextInput(result json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(result); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return t
	}
	return nil
}

// hasErrorField reports whether result is an object with a top-level
// "error" key: the step failed and the chain stops.
func hasErrorField(result json.RawMessage) bool {
	if t := bytes.TrimSpace(result); len(t) == 0 || t[0] != '{' {
		return false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(result, &obj) != nil {
		return false
	}
	_, ok := obj["error"]
	return ok
}

// recordMemory is the memory of a record's limits annotation (0: none).
func recordMemory(rec *whisk.Activation) int64 {
	v, ok := rec.Annotations.Get(whisk.AnnLimits)
	if !ok {
		return 0
	}
	var l struct {
		Memory int64 `json:"memory"`
	}
	if json.Unmarshal(v, &l) != nil {
		return 0
	}
	return l.Memory
}

func jsonValue(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// joinSorted is OpenWhisk's rendering of a set of resources in a message.
func joinSorted(names []string) string {
	sort.Strings(names)
	out := names[:0]
	for i, n := range names {
		if i == 0 || n != names[i-1] {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}
