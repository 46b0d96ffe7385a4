package alarms

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

func (e *env) feed(t *testing.T, now time.Time) *Feed {
	t.Helper()
	f, err := NewFeed(FeedDeps{Docs: e.docs, Identities: e.st, Triggers: e.docs, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (e *env) trigger(t *testing.T, ns, name string) {
	t.Helper()
	doc, _ := json.Marshal(whisk.Trigger{Namespace: ns, Name: name, Version: "0.0.1"})
	if _, err := e.st.PutEntity(context.Background(), whisk.Entity{Kind: whisk.EntityTrigger, Namespace: ns, Name: name, Doc: doc}, 0); err != nil {
		t.Fatal(err)
	}
}

func call(t *testing.T, f *Feed, caller whisk.Identity, feed string, kv ...string) (map[string]any, bool) {
	t.Helper()
	p := map[string]json.RawMessage{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = json.RawMessage(kv[i+1])
	}
	body, _ := json.Marshal(p)
	res, ok := f.Invoke(context.Background(), caller, feed, body)
	var m map[string]any
	if err := json.Unmarshal(res, &m); err != nil {
		t.Fatalf("result %s: %v", res, err)
	}
	return m, ok
}

// errorOf is the web action's error message inside a failed feed result.
func errorOf(m map[string]any) string {
	switch e := m["error"].(type) {
	case map[string]any:
		s, _ := e["error"].(string)
		return s
	case string:
		return e
	}
	return ""
}

func TestFeedLifecycle(t *testing.T) {
	e := newEnv(t)
	e.trigger(t, "alice", "t")
	f := e.feed(t, now)
	key := `"` + e.user.AuthKey() + `"`
	q := func(s string) string { return `"` + s + `"` }

	// Bad input is answered before the key is checked, as upstream.
	m, ok := call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("CREATE"), "triggerName", q("/_/t"), "authKey", key, "cron", q("* * *"))
	if ok || errorOf(m) != "cron pattern '* * *' is not valid" {
		t.Fatalf("bad cron: %v %v", m, ok)
	}
	m, ok = call(t, f, e.user, FeedOnce, "lifecycleEvent", q("CREATE"), "triggerName", q("/_/t"), "authKey", key, "date", ms(now.Add(-time.Second)))
	if ok || errorOf(m) != "date parameter '"+ms(now.Add(-time.Second))+"' must be in the future" {
		t.Fatalf("past date: %v %v", m, ok)
	}
	// A trigger the caller does not have, a wrong key, another's key.
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("CREATE"), "triggerName", q("/_/nope"), "authKey", key, "cron", q("* * * * *"))
	if ok || errorOf(m) != msgTriggerAuthFailed {
		t.Fatalf("missing trigger: %v %v", m, ok)
	}
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("CREATE"), "triggerName", q("/_/t"), "authKey", q("u-1:wrong"), "cron", q("* * * * *"))
	if ok || errorOf(m) != msgTriggerAuthFailed {
		t.Fatalf("wrong key: %v %v", m, ok)
	}
	bob := whisk.Identity{Subject: "bob", Namespace: "bob", UUID: "u-2", Key: "k-2"}
	if err := e.st.PutIdentity(context.Background(), bob); err != nil {
		t.Fatal(err)
	}
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("CREATE"), "triggerName", q("/_/t"), "authKey", q(bob.AuthKey()), "cron", q("* * * * *"))
	if ok || errorOf(m) != msgTriggerAuthFailed {
		t.Fatalf("bob's key for alice's trigger: %v %v", m, ok)
	}
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("FROB"), "triggerName", q("/_/t"), "authKey", key)
	if ok || errorOf(m) != "unsupported lifecycleEvent" {
		t.Fatalf("unknown event: %v %v", m, ok)
	}

	// CREATE, READ: the triggerName's namespace is the caller's, whatever it says.
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("CREATE"), "triggerName", q("/someone/t"), "authKey", key,
		"cron", q("*/10 * * * * *"), "trigger_payload", `{"k":"v"}`, "timezone", q("Europe/Paris"))
	if !ok || m["status"] != "success" {
		t.Fatalf("create: %v %v", m, ok)
	}
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("READ"), "triggerName", q("/_/t"), "authKey", key)
	cfg, _ := m["config"].(map[string]any)
	st, _ := m["status"].(map[string]any)
	if !ok || cfg["cron"] != "*/10 * * * * *" || cfg["timezone"] != "Europe/Paris" || cfg["namespace"] != "alice" || cfg["strict"] != false ||
		st["active"] != true || st["dateChangedISO"] != "2026-03-01T12:00:00Z" {
		t.Fatalf("read: %v %v", m, ok)
	}
	if p, _ := cfg["payload"].(map[string]any); p["k"] != "v" {
		t.Fatalf("read payload: %v", cfg["payload"])
	}

	// UPDATE: nothing to update; a new cron.
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("UPDATE"), "triggerName", q("/_/t"), "authKey", key, "minutes", "3")
	if ok || errorOf(m) != msgNothingToUpdate {
		t.Fatalf("update nothing: %v %v", m, ok)
	}
	if m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("UPDATE"), "triggerName", q("/_/t"), "authKey", key, "cron", q("0 * * * *")); !ok {
		t.Fatalf("update: %v", m)
	}
	// PAUSE and UNPAUSE.
	if _, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("PAUSE"), "triggerName", q("/_/t"), "authKey", key); !ok {
		t.Fatal("pause failed")
	}
	m, _ = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("READ"), "triggerName", q("/_/t"), "authKey", key)
	if st := m["status"].(map[string]any); st["active"] != false || m["config"].(map[string]any)["cron"] != "0 * * * *" {
		t.Fatalf("after pause: %v", m)
	}
	if _, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("UNPAUSE"), "triggerName", q("/_/t"), "authKey", key); !ok {
		t.Fatal("unpause failed")
	}
	// DELETE works even when the trigger went first; READ then fails.
	if _, err := e.st.DeleteEntity(context.Background(), whisk.EntityTrigger, "alice", "t", 0); err != nil {
		t.Fatal(err)
	}
	if m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("DELETE"), "triggerName", q("/_/t"), "authKey", key); !ok {
		t.Fatalf("delete: %v", m)
	}
	m, ok = call(t, f, e.user, FeedAlarm, "lifecycleEvent", q("DELETE"), "triggerName", q("/_/t"), "authKey", key)
	if ok || !strings.Contains(errorOf(m), "could not find trigger /alice/t") {
		t.Fatalf("delete twice: %v %v", m, ok)
	}
}
