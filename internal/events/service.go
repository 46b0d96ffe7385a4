package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// EntityStore is what the Service needs of the store (store.Store has it).
type EntityStore interface {
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error)
	ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error)
	CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) (int, error)
	ApplyEntities(ctx context.Context, ops []store.EntityOp) ([]whisk.Entity, error)
}

// Service keeps triggers and rules (docs/events.md).
type Service struct {
	st      EntityStore
	actions ActionResolver
}

// NewService builds a Service over the entity store; actions resolves the
// action a rule names (existence and entitlement at create/update).
func NewService(st EntityStore, actions ActionResolver) *Service {
	if st == nil || actions == nil {
		panic("events.NewService: store and actions are required")
	}
	return &Service{st: st, actions: actions}
}

// casAttempts bounds the read-modify-write retries of one write that lost
// a race on a trigger's revision (concurrent rule writes on one trigger).
const casAttempts = 20

// TriggerPut is the body of PUT .../triggers/{t}; nil fields keep their
// values on update (name, rules and limits are ignored).
type TriggerPut struct {
	Parameters  *whisk.Params `json:"parameters"`
	Annotations *whisk.Params `json:"annotations"`
	Version     *string       `json:"version"`
	Publish     *bool         `json:"publish"`
}

// RulePut is the body of PUT .../rules/{r}: trigger and action as strings
// ("/ns/t", "ns/pkg/a", "_" = the caller) or {path, name} objects.
type RulePut struct {
	Trigger     json.RawMessage `json:"trigger"`
	Action      json.RawMessage `json:"action"`
	Version     *string         `json:"version"`
	Publish     *bool           `json:"publish"`
	Annotations *whisk.Params   `json:"annotations"`
}

// annFeed is the annotation naming a trigger's feed action.
const annFeed = "feed"

func decodeTrigger(e whisk.Entity) (whisk.Trigger, error) {
	var t whisk.Trigger
	if err := json.Unmarshal(e.Doc, &t); err != nil {
		return t, whisk.E("events.decodeTrigger", whisk.Internal, "", fmt.Errorf("trigger %s/%s: %w", e.Namespace, e.Name, err))
	}
	t.Namespace, t.Name, t.Rev, t.Updated = e.Namespace, e.Name, e.Rev, e.Updated
	if t.Parameters == nil {
		t.Parameters = whisk.Params{}
	}
	if t.Annotations == nil {
		t.Annotations = whisk.Params{}
	}
	return t, nil
}

func encodeTrigger(t whisk.Trigger) whisk.Entity {
	if len(t.Rules) == 0 {
		t.Rules = nil
	}
	b, _ := json.Marshal(t)
	return whisk.Entity{Kind: whisk.EntityTrigger, Namespace: t.Namespace, Name: t.Name, Doc: b}
}

func decodeRule(e whisk.Entity) (whisk.Rule, error) {
	var r whisk.Rule
	if err := json.Unmarshal(e.Doc, &r); err != nil {
		return r, whisk.E("events.decodeRule", whisk.Internal, "", fmt.Errorf("rule %s/%s: %w", e.Namespace, e.Name, err))
	}
	r.Namespace, r.Name, r.Rev, r.Updated, r.Status = e.Namespace, e.Name, e.Rev, e.Updated, ""
	if r.Annotations == nil {
		r.Annotations = whisk.Params{}
	}
	return r, nil
}

func encodeRule(r whisk.Rule) whisk.Entity {
	r.Status = ""
	b, _ := json.Marshal(r)
	return whisk.Entity{Kind: whisk.EntityRule, Namespace: r.Namespace, Name: r.Name, Doc: b}
}

// ---------------------------------------------------------------------------
// Triggers

// GetTrigger returns a trigger (NotFound; Conflict when another kind holds
// the name).
func (s *Service) GetTrigger(ctx context.Context, ns, name string) (whisk.Trigger, error) {
	e, err := s.st.GetEntity(ctx, whisk.EntityTrigger, ns, name)
	if err != nil {
		return whisk.Trigger{}, err
	}
	return decodeTrigger(e)
}

// PutTrigger creates a trigger, or with overwrite updates it: given
// parameters and annotations replace the old ones, the version's patch is
// bumped unless given, and the rules are kept.
func (s *Service) PutTrigger(ctx context.Context, ns, name string, put TriggerPut, overwrite bool) (whisk.Trigger, error) {
	const op = "events.PutTrigger"
	if put.Version != nil && !validSemver(*put.Version) {
		return whisk.Trigger{}, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"version must be major.minor.patch", nil)
	}
	if put.Annotations != nil {
		if err := validateFeed(*put.Annotations); err != nil {
			return whisk.Trigger{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		old, err := s.GetTrigger(ctx, ns, name)
		exists := err == nil
		if err != nil && !whisk.IsKind(err, whisk.NotFound) {
			return whisk.Trigger{}, err
		}
		if exists && !overwrite {
			return whisk.Trigger{}, whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
		}
		t := old
		if !exists {
			t = whisk.Trigger{Namespace: ns, Name: name, Version: "0.0.1", Parameters: whisk.Params{}, Annotations: whisk.Params{}}
		} else {
			t.Version = bumpPatch(old.Version)
		}
		if put.Version != nil {
			t.Version = *put.Version
		}
		if put.Parameters != nil {
			t.Parameters = *put.Parameters
		}
		if put.Annotations != nil {
			t.Annotations = *put.Annotations
		}
		if put.Publish != nil {
			t.Publish = *put.Publish
		}
		e, err := s.st.PutEntity(ctx, encodeTrigger(t), old.Rev)
		if retryPut(err, exists, overwrite, attempt) {
			continue
		}
		if err != nil {
			return whisk.Trigger{}, err
		}
		return decodeTrigger(e)
	}
}

// retryPut reports whether a trigger write that lost a race should be
// redone from a fresh read: a stale revision, an update of a trigger
// deleted meanwhile, or (with overwrite) a create that raced another.
func retryPut(err error, existed, overwrite bool, attempt int) bool {
	if err == nil || attempt >= casAttempts {
		return false
	}
	msg := whisk.UserMessage(err)
	switch {
	case whisk.IsKind(err, whisk.Conflict) && msg == whisk.MsgConcurrentUpdate:
		return true
	case existed && whisk.IsKind(err, whisk.NotFound):
		return true
	case !existed && overwrite && whisk.IsKind(err, whisk.Conflict) && msg == whisk.MsgExists:
		return true
	}
	return false
}

// validateFeed checks the feed annotation: a string that parses as a path.
func validateFeed(ann whisk.Params) error {
	v, ok := ann.Get(annFeed)
	if !ok {
		return nil
	}
	var f string
	if json.Unmarshal(v, &f) != nil || !validPath(f) {
		return whisk.E("events.validateFeed", whisk.Invalid, whisk.MsgFeedNotValid, nil)
	}
	return nil
}

// validPath is OpenWhisk's EntityPath.validate: non-empty segments that are
// all legal names, an optional leading slash.
func validPath(s string) bool {
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return false
	}
	for _, p := range strings.Split(s, "/") {
		if !whisk.ValidName(p) {
			return false
		}
	}
	return true
}

// DeleteTrigger deletes a trigger and returns it with its rules; the rules
// stay, orphaned (inactive).
func (s *Service) DeleteTrigger(ctx context.Context, ns, name string) (whisk.Trigger, error) {
	e, err := s.st.DeleteEntity(ctx, whisk.EntityTrigger, ns, name, 0)
	if err != nil {
		return whisk.Trigger{}, err
	}
	return decodeTrigger(e)
}

// ListTriggers lists a namespace's triggers, newest first.
func (s *Service) ListTriggers(ctx context.Context, ns string, skip, limit int) ([]whisk.Trigger, error) {
	es, err := s.st.ListEntities(ctx, whisk.EntityTrigger, ns, store.EntityFilter{Skip: skip, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]whisk.Trigger, 0, len(es))
	for _, e := range es {
		t, err := decodeTrigger(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// CountTriggers counts a namespace's triggers.
func (s *Service) CountTriggers(ctx context.Context, ns string) (int, error) {
	return s.st.CountEntities(ctx, whisk.EntityTrigger, ns, store.EntityFilter{})
}

// ---------------------------------------------------------------------------
// Rules

// ruleRef parses a rule's trigger or action reference (string or
// {path, name} object); absent or null is ok=false.
func ruleRef(raw json.RawMessage, caller string) (whisk.EntityPath, bool, error) {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return whisk.EntityPath{}, false, nil
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		p, err := whisk.ParseEntityPath(str, caller)
		return p, err == nil, err
	}
	var obj whisk.EntityPath
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Name == "" || obj.Path == "" {
		return whisk.EntityPath{}, false, whisk.E("events.ruleRef", whisk.Invalid, whisk.MsgMalformed+"fully qualified name malformed", err)
	}
	p, err := whisk.ParseEntityPath(obj.Path+"/"+obj.Name, caller)
	return p, err == nil, err
}

// status is the rule's status as its trigger holds it; a missing trigger
// or entry is inactive.
func status(t *whisk.Trigger, key string) string {
	if t == nil {
		return whisk.RuleInactive
	}
	if e, ok := t.Rules[key]; ok {
		return e.Status
	}
	return whisk.RuleInactive
}

// getTriggerOpt reads a trigger; a missing one (or a name held by another
// kind) is nil.
func (s *Service) getTriggerOpt(ctx context.Context, p whisk.EntityPath) (*whisk.Trigger, error) {
	t, err := s.GetTrigger(ctx, p.Path, p.Name)
	if whisk.IsKind(err, whisk.NotFound) || whisk.IsKind(err, whisk.Conflict) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// entitled checks that the caller owns the rule's trigger (triggers are
// owner-only; packaged actions of other namespaces are checked by the
// resolver).
func entitled(caller whisk.Identity, trig whisk.EntityPath) error {
	if trig.Path != caller.Namespace {
		return whisk.E("events.entitled", whisk.Forbidden, whisk.MsgNotAuthorized(trig.String()), nil)
	}
	return nil
}

// checkAction verifies the rule's action exists and the caller may invoke
// it: missing → 400 "action /x does not exist", private foreign → 403.
func (s *Service) checkAction(ctx context.Context, caller whisk.Identity, p whisk.EntityPath) error {
	_, err := s.actions.ResolveAction(ctx, caller, p)
	switch {
	case err == nil:
		return nil
	case whisk.IsKind(err, whisk.NotFound), whisk.IsKind(err, whisk.Conflict):
		return whisk.E("events.checkAction", whisk.Invalid, whisk.MsgActionMissing(p), err)
	default:
		return err
	}
}

// GetRule returns a rule with its status from its trigger.
func (s *Service) GetRule(ctx context.Context, ns, name string) (whisk.Rule, error) {
	e, err := s.st.GetEntity(ctx, whisk.EntityRule, ns, name)
	if err != nil {
		return whisk.Rule{}, err
	}
	r, err := decodeRule(e)
	if err != nil {
		return whisk.Rule{}, err
	}
	t, err := s.getTriggerOpt(ctx, r.Trigger)
	if err != nil {
		return whisk.Rule{}, err
	}
	r.Status = status(t, r.Key())
	return r, nil
}

// ListRules lists a namespace's rules (without status), newest first.
func (s *Service) ListRules(ctx context.Context, ns string, skip, limit int) ([]whisk.Rule, error) {
	es, err := s.st.ListEntities(ctx, whisk.EntityRule, ns, store.EntityFilter{Skip: skip, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]whisk.Rule, 0, len(es))
	for _, e := range es {
		r, err := decodeRule(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// CountRules counts a namespace's rules.
func (s *Service) CountRules(ctx context.Context, ns string) (int, error) {
	return s.st.CountEntities(ctx, whisk.EntityRule, ns, store.EntityFilter{})
}

// PutRule creates a rule (active: its entry is added to the trigger in the
// same transaction), or with overwrite updates it, keeping its status and
// moving its entry when the trigger changes.
func (s *Service) PutRule(ctx context.Context, caller whisk.Identity, name string, put RulePut, overwrite bool) (whisk.Rule, error) {
	const op = "events.PutRule"
	ns := caller.Namespace
	trig, hasTrig, err := ruleRef(put.Trigger, ns)
	if err != nil {
		return whisk.Rule{}, err
	}
	act, hasAct, err := ruleRef(put.Action, ns)
	if err != nil {
		return whisk.Rule{}, err
	}
	if put.Version != nil && !validSemver(*put.Version) {
		return whisk.Rule{}, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"version must be major.minor.patch", nil)
	}
	if hasTrig {
		if err := entitled(caller, trig); err != nil {
			return whisk.Rule{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		oldE, err := s.st.GetEntity(ctx, whisk.EntityRule, ns, name)
		exists := err == nil
		if err != nil && !whisk.IsKind(err, whisk.NotFound) {
			return whisk.Rule{}, err
		}
		if exists && !overwrite {
			return whisk.Rule{}, whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
		}
		var r, old whisk.Rule
		var oldTrig *whisk.Trigger
		st := whisk.RuleActive
		if exists {
			if old, err = decodeRule(oldE); err != nil {
				return whisk.Rule{}, err
			}
			if oldTrig, err = s.getTriggerOpt(ctx, old.Trigger); err != nil {
				return whisk.Rule{}, err
			}
			st = status(oldTrig, old.Key())
			r = old
			r.Version = bumpPatch(old.Version)
			if hasTrig {
				r.Trigger = trig
			}
			if hasAct {
				r.Action = act
			}
		} else {
			if !hasTrig || !hasAct {
				return whisk.Rule{}, whisk.E(op, whisk.Invalid, whisk.MsgRuleNeedsBoth, nil)
			}
			r = whisk.Rule{Namespace: ns, Name: name, Trigger: trig, Action: act, Version: "0.0.1", Annotations: whisk.Params{}}
		}
		if put.Version != nil {
			r.Version = *put.Version
		}
		if put.Publish != nil {
			r.Publish = *put.Publish
		}
		if put.Annotations != nil {
			r.Annotations = *put.Annotations
		}

		newTrig, err := s.GetTrigger(ctx, r.Trigger.Path, r.Trigger.Name)
		if whisk.IsKind(err, whisk.NotFound) || whisk.IsKind(err, whisk.Conflict) {
			return whisk.Rule{}, whisk.E(op, whisk.Invalid, whisk.MsgTriggerMissing(r.Trigger), err)
		}
		if err != nil {
			return whisk.Rule{}, err
		}
		if err := s.checkAction(ctx, caller, r.Action); err != nil {
			return whisk.Rule{}, err
		}

		ops := []store.EntityOp{{Entity: encodeRule(r), ExpectRev: old.Rev}}
		key := r.Key()
		if oldTrig != nil && (oldTrig.Namespace != newTrig.Namespace || oldTrig.Name != newTrig.Name) {
			// Written even when the entry seems absent: the revision
			// check catches a stale (cached) read of the old trigger.
			ot := *oldTrig
			ot.Rules = without(ot.Rules, key)
			ops = append(ops, store.EntityOp{Entity: encodeTrigger(ot), ExpectRev: ot.Rev})
		}
		newTrig.Rules = with(newTrig.Rules, key, whisk.TriggerRule{Action: r.Action, Status: st})
		ops = append(ops, store.EntityOp{Entity: encodeTrigger(newTrig), ExpectRev: newTrig.Rev})
		out, err := s.st.ApplyEntities(ctx, ops)
		if retryApply(err, attempt) {
			continue
		}
		if err != nil {
			return whisk.Rule{}, err
		}
		r, err = decodeRule(out[0])
		if err != nil {
			return whisk.Rule{}, err
		}
		r.Status = st
		return r, nil
	}
}

// retryApply reports whether a transaction that lost a race on a revision
// (or a create that raced another) should be redone from fresh reads.
func retryApply(err error, attempt int) bool {
	return err != nil && attempt < casAttempts && whisk.IsKind(err, whisk.Conflict) &&
		whisk.UserMessage(err) == whisk.MsgConcurrentUpdate
}

// SetRuleStatus enables or disables a rule by rewriting its trigger's
// entry; the same state is a no-op. The action is not re-checked.
func (s *Service) SetRuleStatus(ctx context.Context, ns, name, want string) error {
	const op = "events.SetRuleStatus"
	if want != whisk.RuleActive && want != whisk.RuleInactive {
		return whisk.E(op, whisk.Invalid, whisk.MsgMalformed+whisk.MsgBadRuleStatus(want), nil)
	}
	for attempt := 0; ; attempt++ {
		r, err := s.GetRule(ctx, ns, name)
		if err != nil {
			return err
		}
		t, err := s.GetTrigger(ctx, r.Trigger.Path, r.Trigger.Name)
		if whisk.IsKind(err, whisk.NotFound) || whisk.IsKind(err, whisk.Conflict) {
			if want == whisk.RuleInactive {
				return nil // no trigger: inactive already
			}
			return whisk.E(op, whisk.NotFound, whisk.MsgRuleTriggerMissing, err)
		}
		if err != nil {
			return err
		}
		if status(&t, r.Key()) == want && attempt > 0 {
			// Read fresh after a lost race: nothing to change. (The first
			// read may come from another controller's stale cache, so it
			// is confirmed by a write with the revision check.)
			return nil
		}
		t.Rules = with(t.Rules, r.Key(), whisk.TriggerRule{Action: r.Action, Status: want})
		_, err = s.st.PutEntity(ctx, encodeTrigger(t), t.Rev)
		if retryApply(err, attempt) {
			continue
		}
		return err
	}
}

// DeleteRule deletes a rule in any state, removing its trigger's entry in
// the same transaction; it returns the rule with status inactive.
func (s *Service) DeleteRule(ctx context.Context, ns, name string) (whisk.Rule, error) {
	for attempt := 0; ; attempt++ {
		e, err := s.st.GetEntity(ctx, whisk.EntityRule, ns, name)
		if err != nil {
			return whisk.Rule{}, err
		}
		r, err := decodeRule(e)
		if err != nil {
			return whisk.Rule{}, err
		}
		t, err := s.getTriggerOpt(ctx, r.Trigger)
		if err != nil {
			return whisk.Rule{}, err
		}
		ops := []store.EntityOp{{Delete: true, Entity: e, ExpectRev: r.Rev}}
		if t != nil {
			// Written even when the entry seems absent: the revision
			// check catches a stale (cached) read of the trigger.
			t.Rules = without(t.Rules, r.Key())
			ops = append(ops, store.EntityOp{Entity: encodeTrigger(*t), ExpectRev: t.Rev})
		}
		_, err = s.st.ApplyEntities(ctx, ops)
		if retryApply(err, attempt) || (err != nil && whisk.IsKind(err, whisk.NotFound) && attempt < casAttempts && t != nil) {
			continue
		}
		if err != nil {
			return whisk.Rule{}, err
		}
		r.Status = whisk.RuleInactive
		return r, nil
	}
}

// with returns a copy of m with key set to v.
func with(m map[string]whisk.TriggerRule, key string, v whisk.TriggerRule) map[string]whisk.TriggerRule {
	out := make(map[string]whisk.TriggerRule, len(m)+1)
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

// without returns a copy of m without key.
func without(m map[string]whisk.TriggerRule, key string) map[string]whisk.TriggerRule {
	out := make(map[string]whisk.TriggerRule, len(m))
	for k, x := range m {
		if k != key {
			out[k] = x
		}
	}
	return out
}

// validSemver reports whether v is "major.minor.patch".
func validSemver(v string) bool {
	_, ok := parseSemver(v)
	return ok
}

func parseSemver(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// bumpPatch returns the next patch version (0.0.1 → 0.0.2).
func bumpPatch(v string) string {
	sv, ok := parseSemver(v)
	if !ok {
		return "0.0.1"
	}
	return fmt.Sprintf("%d.%d.%d", sv[0], sv[1], sv[2]+1)
}
