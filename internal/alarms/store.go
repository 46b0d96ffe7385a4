package alarms

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// EntityStore is the part of store.Store the alarms keep their state in.
type EntityStore interface {
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error)
	ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error)
	ApplyEntities(ctx context.Context, ops []store.EntityOp) ([]whisk.Entity, error)
}

// StoreDocs keeps alarm documents as entities of kind whisk.EntityAlarm
// (namespace and name of the trigger), and reads and deletes triggers and
// rules for the feed and for deleteAfterFire. It is Docs, TriggerExists and
// TriggerDeleter.
type StoreDocs struct{ S EntityStore }

func (d StoreDocs) Get(ctx context.Context, t whisk.FQN) (Stored, error) {
	e, err := d.S.GetEntity(ctx, whisk.EntityAlarm, t.Namespace, t.Name)
	if err != nil {
		return Stored{}, err
	}
	return decode(e)
}

func decode(e whisk.Entity) (Stored, error) {
	var a Alarm
	if err := json.Unmarshal(e.Doc, &a); err != nil {
		return Stored{}, whisk.E("alarms.decode", whisk.Internal, "", fmt.Errorf("alarm %s/%s: %w", e.Namespace, e.Name, err))
	}
	return Stored{Alarm: a, Rev: e.Rev}, nil
}

func (d StoreDocs) Put(ctx context.Context, a Alarm, expectRev int64) (int64, error) {
	doc, err := json.Marshal(a)
	if err != nil {
		return 0, whisk.E("alarms.put", whisk.Internal, "", err)
	}
	e, err := d.S.PutEntity(ctx, whisk.Entity{Kind: whisk.EntityAlarm, Namespace: a.Namespace, Name: a.Name, Doc: doc}, expectRev)
	return e.Rev, err
}

func (d StoreDocs) Delete(ctx context.Context, t whisk.FQN) error {
	_, err := d.S.DeleteEntity(ctx, whisk.EntityAlarm, t.Namespace, t.Name, 0)
	return err
}

func (d StoreDocs) List(ctx context.Context) ([]Stored, error) {
	es, err := d.S.ListEntities(ctx, whisk.EntityAlarm, "", store.EntityFilter{})
	if err != nil {
		return nil, err
	}
	out := make([]Stored, 0, len(es))
	for _, e := range es {
		s, err := decode(e)
		if err != nil {
			continue // one bad document does not stop the others
		}
		out = append(out, s)
	}
	return out, nil
}

// TriggerExists reports whether the trigger exists.
func (d StoreDocs) TriggerExists(ctx context.Context, t whisk.FQN) (bool, error) {
	_, err := d.S.GetEntity(ctx, whisk.EntityTrigger, t.Namespace, t.Name)
	switch {
	case err == nil:
		return true, nil
	case whisk.KindOf(err) == whisk.NotFound, whisk.KindOf(err) == whisk.Conflict:
		return false, nil // missing, or another kind holds the name
	default:
		return false, err
	}
}

// DeleteTrigger deletes the trigger (as the alarms provider's
// deleteAfterFire does with DELETE on the trigger) and, withRules, every
// rule of its rules map in the trigger's namespace, in one transaction.
// The owner check is the caller's: as must own the trigger.
func (d StoreDocs) DeleteTrigger(ctx context.Context, as whisk.Identity, t whisk.FQN, withRules bool) error {
	if as.Namespace != t.Namespace {
		return whisk.E("alarms.deleteTrigger", whisk.Forbidden, whisk.MsgForbidden, nil)
	}
	e, err := d.S.GetEntity(ctx, whisk.EntityTrigger, t.Namespace, t.Name)
	if err != nil {
		return err
	}
	ops := []store.EntityOp{{Delete: true, Entity: e, ExpectRev: e.Rev}}
	if withRules {
		var tr whisk.Trigger
		if err := json.Unmarshal(e.Doc, &tr); err != nil {
			return whisk.E("alarms.deleteTrigger", whisk.Internal, "", err)
		}
		for key := range tr.Rules {
			ns, name, ok := cutRuleKey(key)
			if !ok || ns != t.Namespace {
				continue
			}
			if _, err := d.S.GetEntity(ctx, whisk.EntityRule, ns, name); err != nil {
				continue // gone already
			}
			ops = append(ops, store.EntityOp{Delete: true, Entity: whisk.Entity{Kind: whisk.EntityRule, Namespace: ns, Name: name}})
		}
	}
	_, err = d.S.ApplyEntities(ctx, ops)
	return err
}

func cutRuleKey(k string) (ns, name string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], i > 0 && i < len(k)-1
		}
	}
	return "", "", false
}
