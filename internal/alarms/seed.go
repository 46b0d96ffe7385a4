package alarms

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// SeedStore is what Seed writes through (store.Store has it).
type SeedStore interface {
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error)
}

// placeholder is the code of the stored feed actions. Their invocations at
// /whisk.system/alarms/<feed> are served by the controller in its own
// process (api.Builtins); the stored actions make the package's GET and
// `wsk action get` show them, with their annotations, as OpenWhisk's
// catalog does. Reached another way (through a binding), the placeholder
// says where to call.
const placeholder = `function main(params) {
  return {error: "the alarms feed actions are built into Eddy: invoke /whisk.system/alarms/<feed> or a binding of the package"};
}
`

func kv(k string, v any) whisk.KeyValue {
	b, _ := json.Marshal(v)
	return whisk.KeyValue{Key: k, Value: b}
}

type paramDoc struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
}

// Seed creates the shared package /whisk.system/alarms and its three feed
// actions (annotation feed: true, and the parameters annotations of the
// alarms package's installCatalog.sh) unless they exist: it is safe to run
// at every start of every controller.
func Seed(ctx context.Context, st SeedStore, now int64) error {
	pkg := whisk.Package{
		Namespace: SystemNamespace, Name: PackageName,
		Parameters:  whisk.Params{kv("trigger_payload", "")},
		Version:     "0.0.1",
		Publish:     true,
		Annotations: whisk.Params{kv("description", "Alarms and periodic utility"), kv("parameters", []paramDoc{{"trigger_payload", false}})},
		Updated:     now,
	}
	e, err := pkg.Entity()
	if err != nil {
		return err
	}
	if _, err := st.PutEntity(ctx, e, 0); err != nil && whisk.KindOf(err) != whisk.Conflict {
		return fmt.Errorf("alarms: seed package /%s/%s: %w", SystemNamespace, PackageName, err)
	}
	actions := []struct {
		name, desc string
		params     []paramDoc
		bound      whisk.Params
	}{
		{FeedAlarm, "Fire trigger when alarm occurs",
			[]paramDoc{{"cron", true}, {"timezone", false}, {"startDate", false}, {"stopDate", false}, {"strict", false}}, whisk.Params{}},
		{FeedOnce, "Fire trigger once when alarm occurs",
			[]paramDoc{{"date", true}, {"deleteAfterFire", false}}, whisk.Params{kv("fireOnce", true)}},
		{FeedInterval, "Fire trigger at specified interval",
			[]paramDoc{{"minutes", true}, {"startDate", false}, {"stopDate", false}}, whisk.Params{kv("isInterval", true)}},
	}
	for _, a := range actions {
		name := PackageName + "/" + a.name
		if _, err := st.GetAction(ctx, SystemNamespace, name); err == nil {
			continue
		}
		act := whisk.Action{
			Namespace: SystemNamespace, Name: name, Version: "0.0.1",
			Exec:        whisk.Exec{Kind: "nodejs:18", Code: placeholder},
			Parameters:  a.bound,
			Annotations: whisk.Params{kv("description", a.desc), kv("parameters", a.params), kv("feed", true), kv("exec", "nodejs")},
			Limits:      whisk.DefaultSystemLimits().Defaults(),
			Publish:     false,
			Updated:     now,
		}
		if _, err := st.PutAction(ctx, act, 0); err != nil && whisk.KindOf(err) != whisk.Conflict {
			return fmt.Errorf("alarms: seed action /%s/%s: %w", SystemNamespace, name, err)
		}
	}
	return nil
}
