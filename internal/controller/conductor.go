package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Conductor actions (OpenWhisk's PrimitiveActions; docs/internals.md): an
// action with a truthy "conductor" annotation runs as a composition. The
// controller runs the conductor; a result with an "action" names the next
// component, which runs on the result's "params"; the conductor then runs
// again on the component's result overlaid by the "state" it returned, and
// so on until a result has no "action". Every run is an ordinary
// activation caused by the composition, whose own record is synthetic.

// Fields of a conductor's result.
const (
	conductorAction = "action"
	conductorParams = "params"
	conductorState  = "state"
)

// compAccount counts the component and conductor runs of a composition
// and of the compositions nested in it (they share one account):
// MaxSequenceLength components and 2n+1 conductor runs at most.
type compAccount struct {
	components, conductors int
}

// invokeComposition is Invoke for a conductor action.
func (c *Controller) invokeComposition(ctx context.Context, req Request, wait time.Duration) (Result, error) {
	ch := &chain{caller: req.Identity, tid: req.TransactionID, received: c.now()}
	id := req.activationID()
	return c.runTopmost(ctx, req, id, wait, func(bg context.Context) whisk.Activation {
		return c.runComposition(bg, ch, req.Action, req.Binding, id, req.Params, "", &compAccount{})
	})
}

// session is one composition's running state: OpenWhisk's Session.
type session struct {
	id       whisk.ActivationID
	duration int64
	maxMem   int64
	state    json.RawMessage // an object, or nil
	logs     []string
}

// account adds a finished run (or one that had no record: rec nil, id
// set) to the session.
func (s *session) account(rec *whisk.Activation, id whisk.ActivationID) {
	if rec == nil {
		s.logs = append(s.logs, string(id))
		return
	}
	s.logs = append(s.logs, string(rec.ActivationID))
	s.duration += rec.Duration
	s.maxMem = max(s.maxMem, recordMemory(rec))
}

// runComposition runs the conductor action conductor (reached through
// binding, if any) as composition id on input, stores its record and
// returns it; cause is the enclosing chain ("" when topmost).
func (c *Controller) runComposition(ctx context.Context, ch *chain, conductor whisk.Action, binding string, id whisk.ActivationID,
	input json.RawMessage, cause whisk.ActivationID, acct *compAccount) whisk.Activation {
	start := c.now()
	s := &session{id: id, maxMem: conductor.Limits.Memory}
	resp := c.conduct(ctx, ch, whisk.ResolvedAction{Action: conductor, Binding: binding}, s, input, acct)
	limits := &whisk.Limits{Timeout: conductor.Limits.Timeout, Memory: s.maxMem, Logs: conductor.Limits.Logs, Concurrency: 1}
	rec := c.chainRecord(ch, conductor, binding, id, cause, start, resp, s.logs, s.duration, limits, true)
	c.storeRecord(rec)
	return rec
}

// conduct is the conductor loop; it returns the composition's response.
func (c *Controller) conduct(ctx context.Context, ch *chain, conductor whisk.ResolvedAction, s *session,
	payload json.RawMessage, acct *compAccount) whisk.Response {
	for {
		if acct.conductors > 2*MaxSequenceLength {
			return whisk.ErrorResponse(whisk.StatusApplicationError, whisk.MsgCompositionTooLong)
		}
		acct.conductors++
		rec, resp, ok := c.compositionStep(ctx, ch, s, conductor, withState(payload, s.state), acct, true)
		if !ok {
			return resp
		}
		result := asObject(rec.Response.Result)
		params, hasParams := result[conductorParams]
		if hasParams {
			params = boxed(params, "value")
		}
		s.state = nil
		if st, ok := result[conductorState]; ok {
			s.state = boxed(st, conductorState)
		}
		next, hasNext := result[conductorAction]
		if !hasNext {
			out := rec.Response.Result
			if hasParams {
				out = params
			}
			return whisk.NewResponse(rec.Response.StatusCode, out)
		}
		var name string
		q, ok := whisk.EntityName{}, json.Unmarshal(next, &name) == nil
		if ok {
			q, ok = whisk.ResolveName(name, ch.caller.Namespace)
		}
		if !ok {
			payload = errorPayload(whisk.MsgCompositionBadName(compactJSON(next)))
			continue
		}
		if acct.components >= MaxSequenceLength {
			payload = errorPayload(whisk.MsgCompositionTooLong)
			continue
		}
		comp, err := c.deps.Components.Action(ctx, ch.caller.Namespace, q)
		switch {
		case whisk.IsKind(err, whisk.Forbidden):
			payload = errorPayload(whisk.MsgCompositionForbidden(q.Path()))
			continue
		case err != nil:
			payload = errorPayload(whisk.MsgCompositionNotFound(q.Path()))
			continue
		}
		if !hasParams {
			params = json.RawMessage("{}")
		}
		rec, resp, ok = c.compositionStep(ctx, ch, s, comp, params, acct, false)
		if !ok {
			return resp
		}
		payload = rec.Response.Result
	}
}

// compositionStep runs one conductor run (conductorRun, counted by the
// caller) or one component of session s: a nested composition shares
// acct, a sequence or a primitive action counts as one component. ok
// false ends the composition with resp.
func (c *Controller) compositionStep(ctx context.Context, ch *chain, s *session, ra whisk.ResolvedAction,
	input json.RawMessage, acct *compAccount, conductorRun bool) (whisk.Activation, whisk.Response, bool) {
	a := ra.Action
	var rec whisk.Activation
	switch {
	case !conductorRun && a.IsSequence():
		acct.components++
		rec, _ = c.runSequence(ctx, ch, a, ra.Binding, whisk.NewActivationID(), input, s.id, 0, nil)
	case !conductorRun && truthy(a.Annotations, annConductor, false):
		rec = c.runComposition(ctx, ch, a, ra.Binding, whisk.NewActivationID(), input, s.id, acct)
	default:
		if !conductorRun {
			acct.components++
		}
		got, id, err := c.primitiveStep(ctx, ch, a, ra.Binding, input, s.id)
		if err != nil || (got == nil && ctx.Err() != nil) {
			c.log.Warn("composition step failed", "composition", string(s.id), "action", a.Name, "err", err)
			return rec, whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgCompositionFailed), false
		}
		if got == nil {
			s.account(nil, id)
			return rec, whisk.ErrorResponse(whisk.StatusWhiskError, whisk.MsgCompositionTimeout(id)), false
		}
		rec = *got
	}
	s.account(&rec, "")
	return rec, whisk.Response{}, true
}

// withState is the conductor's input: payload with the state's fields
// over it, when payload is an object; nothing otherwise.
func withState(payload, state json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return nil
	}
	if state == nil {
		return payload
	}
	obj := asObject(payload)
	for k, v := range asObject(state) {
		obj[k] = v
	}
	return jsonValue(obj)
}

// asObject decodes an object; anything else is an empty one.
func asObject(v json.RawMessage) map[string]json.RawMessage {
	obj := map[string]json.RawMessage{}
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
		_ = json.Unmarshal(t, &obj)
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	return obj
}

// boxed is v if it is an object, else {key: v}.
func boxed(v json.RawMessage, key string) json.RawMessage {
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
		return t
	}
	return jsonValue(map[string]json.RawMessage{key: v})
}

// errorPayload is {"error": msg}, what a recoverable failure feeds back
// to the conductor.
func errorPayload(msg string) json.RawMessage {
	return jsonValue(map[string]string{"error": msg})
}

// compactJSON renders a JSON value compactly, as spray's JsValue.toString.
func compactJSON(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}
