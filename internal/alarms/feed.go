package alarms

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Package and action names of the built-in alarms package.
const (
	SystemNamespace = "whisk.system"
	PackageName     = "alarms"
)

// IsFeedAction reports whether namespace/pkg/name is one of the built-in
// feed actions, and which.
func IsFeedAction(namespace, pkg, name string) (string, bool) {
	if namespace != SystemNamespace || pkg != PackageName {
		return "", false
	}
	switch name {
	case FeedAlarm, FeedOnce, FeedInterval:
		return name, true
	}
	return "", false
}

// TriggerExists answers whether a trigger exists (the store's trigger
// entities).
type TriggerExists interface {
	TriggerExists(ctx context.Context, trigger whisk.FQN) (bool, error)
}

// Feed answers the lifecycle calls of the three feed actions, as
// OpenWhisk's alarm.js and alarmWebAction.js do together.
type Feed struct {
	docs     Docs
	ids      Identities
	triggers TriggerExists
	now      func() time.Time
	changed  func()
	log      *slog.Logger
}

// FeedDeps are a Feed's collaborators. Changed (optional) is told of every
// write (Provider.Changed, for a provider in the same process).
type FeedDeps struct {
	Docs       Docs
	Identities Identities
	Triggers   TriggerExists
	Now        func() time.Time
	Changed    func()
	Log        *slog.Logger
}

// NewFeed builds a Feed.
func NewFeed(d FeedDeps) (*Feed, error) {
	if d.Docs == nil || d.Identities == nil || d.Triggers == nil {
		return nil, errors.New("alarms: feed needs Docs, Identities and Triggers")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Changed == nil {
		d.Changed = func() {}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Feed{docs: d.Docs, ids: d.Identities, triggers: d.Triggers, now: d.Now, changed: d.Changed, log: d.Log}, nil
}

// feedError is an error answer of the alarms web action: its HTTP status
// and body ({"error": msg[, "message": detail]}), which alarm.js passes on
// as the activation's error.
type feedError struct {
	Status  int
	Error   string
	Message string
}

// Invoke runs feed action feed ("alarm", "once" or "interval") for caller
// with the invoke parameters body (a JSON object). It returns the
// activation's result and whether it succeeded: {"status":"success"} for
// CREATE, UPDATE, DELETE, PAUSE and UNPAUSE, {"config":…,"status":…} for
// READ; on failure {"error": <the web action's error body>} as OpenWhisk's
// feed action answers, or {"error":"unsupported lifecycleEvent"}.
func (f *Feed) Invoke(ctx context.Context, caller whisk.Identity, feed string, body json.RawMessage) (json.RawMessage, bool) {
	p := Params{}
	if len(body) > 0 && string(body) != "null" {
		if err := json.Unmarshal(body, &p); err != nil {
			return errorResult(feedError{Status: 400, Error: "the parameters must be a JSON object"}), false
		}
	}
	// The package's action parameters, under the caller's.
	switch feed {
	case FeedOnce:
		if !p.has("fireOnce") {
			p["fireOnce"] = json.RawMessage("true")
		}
	case FeedInterval:
		if !p.has("isInterval") {
			p["isInterval"] = json.RawMessage("true")
		}
	}
	event := p.text("lifecycleEvent")
	switch event {
	case "CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE":
	default:
		b, _ := json.Marshal(map[string]string{"error": msgUnsupportedEvent})
		return b, false
	}
	if !p.truthy("triggerName") {
		return errorResult(feedError{Status: 400, Error: msgNoTriggerName}), false
	}
	// alarm.js: the trigger is /<the caller's namespace>/<name>, whatever
	// namespace triggerName names.
	name := p.text("triggerName")
	if strings.HasPrefix(name, "/") {
		parts := strings.SplitN(name, "/", 3)
		name = ""
		if len(parts) == 3 {
			name = parts[2]
		}
	}
	trigger := whisk.FQN{Namespace: caller.Namespace, Name: name}
	res, ferr := f.handle(ctx, event, p, trigger)
	if ferr != nil {
		return errorResult(*ferr), false
	}
	b, err := json.Marshal(res)
	if err != nil {
		return errorResult(feedError{Status: 500, Error: err.Error()}), false
	}
	return b, true
}

func errorResult(e feedError) json.RawMessage {
	inner := map[string]any{"error": e.Error}
	if e.Message != "" {
		inner["message"] = e.Message
	}
	b, _ := json.Marshal(map[string]any{"error": inner})
	return b
}

var success = map[string]string{"status": "success"}

func (f *Feed) handle(ctx context.Context, event string, p Params, trigger whisk.FQN) (any, *feedError) {
	apikey := p.text("authKey")
	if !p.truthy("authKey") {
		apikey = ""
	}
	now := f.now()
	var created *Alarm
	if event == "CREATE" { // the alarms package validates a CREATE before it checks the key
		a, err := newAlarm(p, trigger, apikey, now)
		if err != nil {
			return nil, &feedError{Status: 400, Error: whisk.UserMessage(err)}
		}
		created = a
	}
	if ferr := f.verify(ctx, apikey, trigger, event == "DELETE"); ferr != nil {
		return nil, ferr
	}
	notFound := &feedError{Status: 404, Error: "could not find trigger " + trigger.Path() + " in the database"}
	switch event {
	case "CREATE":
		a := created
		// A document left by a trigger deleted without its feed's DELETE
		// is replaced: the caller owns the trigger now.
		for {
			rev := int64(0)
			if old, err := f.docs.Get(ctx, trigger); err == nil {
				rev = old.Rev
			} else if whisk.KindOf(err) != whisk.NotFound {
				return nil, &feedError{Status: 500, Error: "error creating alarm trigger.", Message: err.Error()}
			}
			_, err := f.docs.Put(ctx, *a, rev)
			if whisk.KindOf(err) == whisk.Conflict {
				continue
			}
			if err != nil {
				return nil, &feedError{Status: 500, Error: "error creating alarm trigger.", Message: err.Error()}
			}
			break
		}
		f.changed()
		return success, nil
	case "READ":
		st, err := f.docs.Get(ctx, trigger)
		if err != nil {
			return nil, notFound
		}
		return readBody(&st.Alarm), nil
	case "UPDATE", "PAUSE", "UNPAUSE":
		for {
			st, err := f.docs.Get(ctx, trigger)
			if err != nil {
				return nil, notFound
			}
			a := st.Alarm
			switch event {
			case "UPDATE":
				if err := update(&a, p, p.text("triggerName"), now); err != nil {
					return nil, &feedError{Status: 400, Error: whisk.UserMessage(err)}
				}
			case "PAUSE":
				a.Status = Status{Active: false, DateChanged: now.UnixMilli(), Reason: &Reason{Kind: "USER", Message: "Paused by the feed's PAUSE lifecycle event"}}
			case "UNPAUSE":
				// Resume from now: the ticks of the pause are not caught up.
				a.Status = Status{Active: true, DateChanged: now.UnixMilli()}
				a.LastTick = max(a.LastTick, now.UnixMilli())
			}
			_, err = f.docs.Put(ctx, a, st.Rev)
			if whisk.KindOf(err) == whisk.Conflict {
				continue
			}
			if err != nil {
				return nil, &feedError{Status: 500, Error: "there was an error while updating the trigger in the database.", Message: err.Error()}
			}
			f.changed()
			return success, nil
		}
	default: // DELETE
		if _, err := f.docs.Get(ctx, trigger); err != nil {
			return nil, notFound
		}
		if err := f.docs.Delete(ctx, trigger); err != nil && whisk.KindOf(err) != whisk.NotFound {
			return nil, &feedError{Status: 500, Error: "there was an error while deleting the trigger from the database.", Message: err.Error()}
		}
		f.changed()
		return success, nil
	}
}

// verify is the alarms package's verifyTriggerAuth: GET the trigger with
// the given key. Any failure is "Trigger authentication request failed."
// with the GET's status, except a missing trigger on DELETE.
func (f *Feed) verify(ctx context.Context, apikey string, trigger whisk.FQN, isDelete bool) *feedError {
	fail := func(status int) *feedError { return &feedError{Status: status, Error: msgTriggerAuthFailed} }
	uuid, key, ok := strings.Cut(apikey, ":")
	if !ok {
		return fail(401)
	}
	id, err := f.ids.IdentityByUUID(ctx, uuid)
	if err != nil || !id.Authenticate(key) {
		if err != nil && whisk.KindOf(err) != whisk.NotFound {
			return &feedError{Status: 400, Error: msgTriggerAuthFailed, Message: err.Error()}
		}
		return fail(401)
	}
	if id.Namespace != trigger.Namespace {
		return fail(403)
	}
	exists, err := f.triggers.TriggerExists(ctx, trigger)
	switch {
	case err != nil:
		return &feedError{Status: 400, Error: msgTriggerAuthFailed, Message: err.Error()}
	case !exists && !isDelete:
		return fail(404)
	}
	return nil
}

// readBody is READ's answer, as alarmWebAction.js builds it.
func readBody(a *Alarm) any {
	config := map[string]any{"name": a.Name, "namespace": a.Namespace, "payload": a.Payload}
	strict := json.RawMessage("false")
	if len(a.Strict) > 0 {
		strict = a.Strict
	}
	config["strict"] = strict
	if a.Feed == FeedOnce {
		config["date"] = a.Date
		if a.DeleteAfterFire != "" {
			config["deleteAfterFire"] = a.DeleteAfterFire
		}
	} else {
		if len(a.StartDate) > 0 {
			config["startDate"] = a.StartDate
		}
		if len(a.StopDate) > 0 {
			config["stopDate"] = a.StopDate
		}
		if a.Feed == FeedInterval {
			config["minutes"] = a.Minutes
		} else {
			config["cron"] = a.Cron
			if a.Timezone != "" {
				config["timezone"] = a.Timezone
			}
		}
	}
	changed := time.UnixMilli(a.Status.DateChanged).UTC()
	status := map[string]any{
		"active":         a.Status.Active,
		"dateChanged":    a.Status.DateChanged,
		"dateChangedISO": changed.Format("2006-01-02T15:04:05Z"),
	}
	if a.Status.Reason != nil {
		status["reason"] = a.Status.Reason
	}
	// Eddy's own: what the provider fired (docs/alarms.md).
	status["fired"] = a.Fired
	if a.FirstTick != 0 {
		status["firstTick"], status["lastTick"] = a.FirstTick, a.LastTick
	}
	if a.Skipped != 0 {
		status["skipped"] = a.Skipped
	}
	return map[string]any{"config": config, "status": status}
}

// BuiltinPath is where the feed actions are invoked, below
// /api/v1/namespaces/ (api.Builtins).
func (f *Feed) BuiltinPath() string { return SystemNamespace + "/actions/" + PackageName }

// InvokeBuiltin runs feed action name (api.Builtins): nil and false for a
// name that is none of alarm, once and interval.
func (f *Feed) InvokeBuiltin(ctx context.Context, caller whisk.Identity, name string, params json.RawMessage) (json.RawMessage, bool) {
	feed, ok := IsFeedAction(SystemNamespace, PackageName, name)
	if !ok {
		return nil, false
	}
	return f.Invoke(ctx, caller, feed, params)
}
