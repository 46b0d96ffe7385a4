// Package events is OpenWhisk's event model in Eddy: triggers, the rules
// that connect them to actions, and firing a trigger (docs/events.md).
//
// A Firer fires triggers: it applies the namespace's triggers-per-minute
// limit, reads the trigger, invokes the action of every active rule as the
// caller (non-blocking, through the controller's normal invoke path, so the
// action's queue, limits and zero-loss guarantees apply) and writes the
// trigger's own activation record, whose logs hold one JSON string per rule.
//
// Unlike OpenWhisk, which answers 202 first and posts the rule activations
// afterwards, Fire returns only once every active rule's activation has been
// published to the bus and the trigger record is written: a fire answered
// 202 is never lost with the controller that accepted it.
//
// The Service keeps triggers and rules in the entity store (rule status
// lives in the trigger's rules map, as in OpenWhisk); rule and trigger
// writes go together in one ApplyEntities transaction.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TriggerReader reads one trigger (NotFound when absent).
type TriggerReader interface {
	GetTrigger(ctx context.Context, namespace, name string) (whisk.Trigger, error)
}

// Records stores and reads activation records (store.Store has it).
type Records interface {
	PutActivation(ctx context.Context, a whisk.Activation) error
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
}

// ActionResolver finds the action a rule names, as the caller would invoke
// it: through packages and bindings, with entitlement (a private action of
// another namespace is Forbidden) and the package's parameters merged in.
type ActionResolver interface {
	ResolveAction(ctx context.Context, caller whisk.Identity, ref whisk.EntityPath) (whisk.ResolvedAction, error)
}

// Invoker runs invocations (*controller.Controller has it).
type Invoker interface {
	Invoke(ctx context.Context, req controller.Request) (controller.Result, error)
}

// FirerDeps are a Firer's collaborators; all but Log and Now are required.
type FirerDeps struct {
	Log      *slog.Logger // nil: discard
	Triggers TriggerReader
	Records  Records
	Actions  ActionResolver
	Invoker  Invoker
	Now      func() time.Time // nil: time.Now
}

// Firer fires triggers (see the package comment).
type Firer struct {
	limits whisk.SystemLimits
	d      FirerDeps
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	rates map[string]*window // namespace → this minute's fires
}

// window counts one namespace's fires in one wall-clock minute.
type window struct {
	minute int64
	count  int
}

// NewFirer builds a Firer; limits give the payload limit and the default
// fires per minute (zero: whisk.DefaultSystemLimits()).
func NewFirer(limits whisk.SystemLimits, d FirerDeps) *Firer {
	if d.Triggers == nil || d.Records == nil || d.Actions == nil || d.Invoker == nil {
		panic("events.NewFirer: Triggers, Records, Actions and Invoker are required")
	}
	if limits == (whisk.SystemLimits{}) {
		limits = whisk.DefaultSystemLimits()
	}
	f := &Firer{limits: limits, d: d, log: d.Log, now: d.Now, rates: map[string]*window{}}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if f.now == nil {
		f.now = time.Now
	}
	return f
}

// annHeaders is the argument that carries the fire request's headers.
const annHeaders = "__ow_headers"

// Fire fires namespace/trigger as caller with payload (a JSON object, or
// empty) and the fire request's headers (lower-cased names; nil for
// in-process callers). It returns the trigger activation's id, or "" when
// the trigger has no active rule (HTTP 204: no record is written).
//
// id, if set, is the trigger activation's id (else a new one): a caller
// that may fire the same occurrence again (an alarm tick whose owner died
// mid-fire) passes the same id each time. A fire whose id already has a
// record is a no-op answering id; each rule activation's id is id.Child of
// the rule's name, marked Repeat, so a queue that consumes one id twice
// runs it once (docs/alarms.md has the bound).
//
// Errors: Forbidden (another namespace), Invalid (payload not an object),
// TooLarge (payload over the limit), Throttled (fires per minute),
// NotFound (no such trigger), Unavailable/Internal (store).
func (f *Firer) Fire(ctx context.Context, caller whisk.Identity, namespace, trigger string, payload json.RawMessage, headers map[string]string, id whisk.ActivationID) (whisk.ActivationID, error) {
	const op = "events.Fire"
	if namespace == "" || namespace == whisk.DefaultNamespace {
		namespace = caller.Namespace
	}
	if namespace != caller.Namespace {
		return "", whisk.E(op, whisk.Forbidden, whisk.MsgForbidden, nil)
	}
	if n := int64(len(payload)); n > f.limits.MaxPayload {
		return "", whisk.E(op, whisk.TooLarge, whisk.MsgRequestTooLarge(n, f.limits.MaxPayload), nil)
	}
	body, err := payloadObject(payload)
	if err != nil {
		return "", err
	}
	if id != "" {
		switch _, err := f.d.Records.GetActivation(ctx, caller.Namespace, id); {
		case err == nil:
			f.log.Debug("trigger fire repeated; already recorded", "trigger", namespace+"/"+trigger, "activation", string(id))
			return id, nil
		case !whisk.IsKind(err, whisk.NotFound):
			return "", err
		}
	}
	if err := f.admit(caller); err != nil {
		return "", err
	}
	t, err := f.d.Triggers.GetTrigger(ctx, namespace, trigger)
	if err != nil {
		return "", err
	}
	if !hasActive(t) {
		f.log.Debug("trigger fired without an active rule; no record", "trigger", namespace+"/"+trigger)
		return "", nil
	}

	// From here on the fire is accepted: it runs to the end even if the
	// caller goes away, so no rule is half-fired and the record is written.
	ctx = context.WithoutCancel(ctx)
	repeatable := id != ""
	if !repeatable {
		id = whisk.NewActivationID()
	}
	start := f.now()
	args, err := fireArgs(t.Parameters, headers, body)
	if err != nil {
		return "", err
	}
	tid := whisk.NewTransactionID()
	keys := make([]string, 0, len(t.Rules))
	for k := range t.Rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	logs := make([]string, 0, len(keys))
	for _, k := range keys {
		var rid whisk.ActivationID
		if repeatable {
			rid = id.Child(k)
		}
		res := f.fireRule(ctx, tid, caller, k, t.Rules[k], args, rid)
		b, _ := json.Marshal(res)
		logs = append(logs, string(b))
	}

	result := json.RawMessage("{}")
	if len(body) > 0 {
		result = body
	}
	rec := whisk.Activation{
		Namespace:    caller.Namespace,
		Name:         t.Name,
		Version:      t.Version,
		Subject:      caller.Subject,
		ActivationID: id,
		Start:        start.UnixMilli(),
		Response:     whisk.NewResponse(whisk.StatusSuccess, result),
		Logs:         logs,
		Annotations:  whisk.Params{},
	}
	if err := f.d.Records.PutActivation(ctx, rec); err != nil {
		// The rule activations are published: answering an error would
		// invite the caller to fire again and run them twice.
		f.log.Error("trigger activation record not written", "trigger", namespace+"/"+trigger,
			"activation", string(id), "err", err)
	}
	return id, nil
}

// ruleResult is one log line of a trigger record (OpenWhisk's
// RuleActivationResult).
type ruleResult struct {
	StatusCode   int                `json:"statusCode"`
	Success      bool               `json:"success"`
	ActivationID whisk.ActivationID `json:"activationId,omitempty"`
	Error        string             `json:"error,omitempty"`
	Rule         string             `json:"rule"`
	Action       string             `json:"action"`
}

// fireRule invokes one rule's action, or explains why not.
// id is the rule activation's id ("": a new one).
func (f *Firer) fireRule(ctx context.Context, tid string, caller whisk.Identity, key string, r whisk.TriggerRule, args json.RawMessage, id whisk.ActivationID) ruleResult {
	res := ruleResult{Rule: key, Action: r.Action.String()}
	if r.Status != whisk.RuleActive {
		res.StatusCode = whisk.StatusApplicationError
		res.Error = whisk.MsgRuleInactive(key, res.Action)
		return res
	}
	a, err := f.d.Actions.ResolveAction(ctx, caller, r.Action)
	var out controller.Result
	if err == nil {
		out, err = f.d.Invoker.Invoke(ctx, controller.Request{
			TransactionID: tid, Identity: caller, Action: a.Action, Binding: a.Binding, Params: args,
			ActivationID: id,
		})
	}
	if err != nil {
		status := whisk.KindOf(err).HTTPStatus()
		res.StatusCode = whisk.StatusApplicationError
		res.Error = whisk.UserMessage(err)
		if status >= 500 {
			res.StatusCode = whisk.StatusWhiskError
			f.log.Error("trigger-fired action failed to invoke", "rule", key, "action", res.Action, "err", err)
		} else {
			f.log.Debug("trigger-fired action refused", "rule", key, "action", res.Action, "err", err)
		}
		if res.Error == "" {
			res.Error = whisk.MsgTriggerFireInternal
		}
		return res
	}
	res.Success = true
	res.ActivationID = out.ActivationID
	return res
}

// hasActive reports whether t has an active rule.
func hasActive(t whisk.Trigger) bool {
	for _, r := range t.Rules {
		if r.Status == whisk.RuleActive {
			return true
		}
	}
	return false
}

// payloadObject validates a fire body: empty, or a JSON object. It
// returns the body trimmed (nil when empty).
func payloadObject(payload json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(payload)
	if len(t) == 0 {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(t, &obj); err != nil || obj == nil {
		detail := "Object expected in field 'payload'"
		if err != nil {
			detail = err.Error()
		}
		return nil, whisk.E("events.payload", whisk.Invalid, whisk.MsgMalformed+detail, err)
	}
	return t, nil
}

// fireArgs is the rule actions' argument: the trigger's parameters, then
// {"__ow_headers": headers}, then the fire body, later ones winning
// (OpenWhisk's trigger.parameters.merge(headers ++ payload)).
func fireArgs(params whisk.Params, headers map[string]string, body json.RawMessage) (json.RawMessage, error) {
	if headers == nil {
		headers = map[string]string{}
	}
	hb, err := json.Marshal(headers)
	if err != nil {
		return nil, whisk.E("events.fireArgs", whisk.Internal, "", err)
	}
	extra := whisk.Params{{Key: annHeaders, Value: hb}}
	if len(body) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, whisk.E("events.fireArgs", whisk.Invalid, whisk.MsgMalformed+err.Error(), err)
		}
		extra = append(extra, whisk.ObjectParams(obj)...)
	}
	merged := params.Merge(extra)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, kv := range merged {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(whisk.AppendJSONString(nil, kv.Key))
		buf.WriteByte(':')
		if len(bytes.TrimSpace(kv.Value)) == 0 {
			buf.WriteString("null")
		} else {
			buf.Write(kv.Value)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// admit applies the namespace's fires-per-minute limit: a fixed window on
// the wall-clock minute, in this process's memory, like OpenWhisk's
// RateThrottler (and like the controller's invocation rate). Refused fires
// count too, so the message reports every attempt.
func (f *Firer) admit(caller whisk.Identity) error {
	allowed := caller.Limits.Effective(f.limits).FiresPerMinute
	if allowed <= 0 {
		return nil
	}
	now := f.now()
	minute := now.Unix() / 60
	f.mu.Lock()
	w := f.rates[caller.Namespace]
	if w == nil {
		w = &window{}
		f.rates[caller.Namespace] = w
	}
	if w.minute != minute {
		w.minute, w.count = minute, 0
	}
	w.count++
	count := w.count
	f.mu.Unlock()
	if count > allowed {
		return whisk.ThrottledError("events.admit", &whisk.Throttle{
			Limit: whisk.LimitFiresPerMinute, RetryAfter: time.Unix((minute+1)*60, 0).Sub(now),
			Count: count, Allowed: allowed,
		})
	}
	return nil
}
