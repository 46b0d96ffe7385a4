package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The built-in /whisk.system/alarms package against `eddy standalone`, with
// the requests `wsk trigger create t --feed /whisk.system/alarms/<feed>`
// sends (shared/reference/openwhisk-entities.md §4.3): the trigger PUT with
// its feed annotation, then the feed action invoked blocking with
// lifecycleEvent, triggerName /_/t and the caller's key.

// alarmFeed invokes a feed action as the CLI does and returns the status
// and the activation's result.
func alarmFeed(e *eddy, feed, event, trigger string, params map[string]any) (int, map[string]any) {
	e.t.Helper()
	body := map[string]any{"lifecycleEvent": event, "triggerName": "/_/" + trigger, "authKey": guestAuth}
	for k, v := range params {
		body[k] = v
	}
	code, _, out := e.call("POST", "/api/v1/namespaces/whisk.system/actions/alarms/"+feed+"?blocking=true&result=true", body)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		e.t.Fatalf("feed %s %s: %d %s", feed, event, code, out)
	}
	return code, m
}

// alarmTrigger creates trigger t with a feed as the CLI does; it fails
// the test unless the feed answers success.
func alarmTrigger(e *eddy, feed, trigger string, params map[string]any) {
	e.t.Helper()
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/triggers/"+trigger+"?overwrite=false", map[string]any{
		"name": trigger, "annotations": []map[string]any{{"key": "feed", "value": "/whisk.system/alarms/" + feed}},
	})
	if code, m := alarmFeed(e, feed, "CREATE", trigger, params); code != 200 || m["status"] != "success" {
		e.t.Fatalf("feed %s CREATE for %s: %d %v", feed, trigger, code, m)
	}
}

// records lists the records of name (newest first).
func alarmRecords(e *eddy, name string) []whisk.Activation {
	e.t.Helper()
	path := "/api/v1/namespaces/_/activations?docs=true&limit=200"
	if name != "" {
		path += "&name=" + name
	}
	out := e.mustCall(200, "GET", path, nil)
	var recs []whisk.Activation
	if err := json.Unmarshal(out, &recs); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func waitAlarmRecords(e *eddy, name string, n int) []whisk.Activation {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		recs := alarmRecords(e, name)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d records of %s, want %d", len(recs), name, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func alarmStatus(e *eddy, feed, trigger string) map[string]any {
	e.t.Helper()
	code, m := alarmFeed(e, feed, "READ", trigger, nil)
	if code != 200 {
		e.t.Fatalf("READ %s: %d %v", trigger, code, m)
	}
	return m["status"].(map[string]any)
}

func TestAlarms(t *testing.T) {
	e := startEddy(t, "process", "")
	e.createAction("tock", "native", helloScript, nil)

	// The package is there, shared, with its three feeds... once the
	// package routes serve it; the feed actions are built in regardless.

	t.Run("once a few seconds ahead, deleteAfterFire rules", func(t *testing.T) {
		at := time.Now().Add(3 * time.Second).UTC()
		alarmTrigger(e, "once", "once1", map[string]any{"date": at.Format("2006-01-02T15:04:05.000Z"), "deleteAfterFire": "rules", "trigger_payload": "hi"})
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/once1-rule", map[string]any{"trigger": "/_/once1", "action": "/_/tock"})
		recs := waitAlarmRecords(e, "once1", 1)
		// The trigger and its rule go once it fired.
		deadline := time.Now().Add(30 * time.Second)
		for {
			tc, _, _ := e.call("GET", "/api/v1/namespaces/_/triggers/once1", nil)
			rc, _, _ := e.call("GET", "/api/v1/namespaces/_/rules/once1-rule", nil)
			if tc == 404 && rc == 404 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the fire: trigger %d, rule %d; want both deleted", tc, rc)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := len(alarmRecords(e, "once1")); n != 1 {
			t.Errorf("once fired %d times", n)
		}
		if r := string(recs[0].Response.Result); !strings.Contains(r, `"payload":"hi"`) {
			t.Errorf("trigger record result %s, want the string payload as {\"payload\": ...}", r)
		}
		if recs[0].Start < at.UnixMilli() {
			t.Errorf("fired at %d, before its date %d", recs[0].Start, at.UnixMilli())
		}
		waitAlarmRecords(e, "tock", 1)
	})

	t.Run("once without deleteAfterFire is disabled after firing", func(t *testing.T) {
		at := time.Now().Add(2 * time.Second).UnixMilli()
		alarmTrigger(e, "once", "once2", map[string]any{"date": at})
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/once2-rule", map[string]any{"trigger": "/_/once2", "action": "/_/tock"})
		waitAlarmRecords(e, "once2", 1)
		deadline := time.Now().Add(30 * time.Second)
		for st := alarmStatus(e, "once", "once2"); st["active"] != false; st = alarmStatus(e, "once", "once2") {
			if time.Now().After(deadline) {
				t.Fatalf("status after firing: %v", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
		st := alarmStatus(e, "once", "once2")
		if reason, _ := st["reason"].(map[string]any); reason["message"] != "Automatically disabled after firing once" {
			t.Errorf("reason %v", st["reason"])
		}
	})

	t.Run("alarm with a seconds cron; DELETE stops it", func(t *testing.T) {
		alarmTrigger(e, "alarm", "every2s", map[string]any{"cron": "*/2 * * * * *", "trigger_payload": map[string]any{"name": "cron"}})
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/every2s-rule", map[string]any{"trigger": "/_/every2s", "action": "/_/tock"})
		recs := waitAlarmRecords(e, "every2s", 3)
		for _, r := range recs {
			if r.Start/1000%2 != 0 && (r.Start-1000)/1000%2 != 0 {
				t.Errorf("fire at %d is not near an even second", r.Start)
			}
		}
		if code, m := alarmFeed(e, "alarm", "DELETE", "every2s", nil); code != 200 {
			t.Fatalf("DELETE: %d %v", code, m)
		}
		e.mustCall(200, "DELETE", "/api/v1/namespaces/_/triggers/every2s", nil)
		// No more fires: the alarm document is gone.
		if code, m := alarmFeed(e, "alarm", "READ", "every2s", nil); code == 200 {
			t.Errorf("READ after DELETE: %v", m)
		}
	})

	t.Run("interval", func(t *testing.T) {
		start := time.Now().Add(2 * time.Second).UnixMilli()
		alarmTrigger(e, "interval", "every-minute", map[string]any{"minutes": 1, "startDate": start})
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/every-minute-rule", map[string]any{"trigger": "/_/every-minute", "action": "/_/tock"})
		recs := waitAlarmRecords(e, "every-minute", 1) // at the start date
		if recs[0].Start < start {
			t.Errorf("first interval fire at %d, before the start date %d", recs[0].Start, start)
		}
		st := alarmStatus(e, "interval", "every-minute")
		if st["fired"] != float64(1) || st["firstTick"] != float64(start) {
			t.Errorf("status %v", st)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/triggers/bad", map[string]any{"name": "bad"})
		past := time.Now().Add(-5 * time.Second).UnixMilli()
		for _, tc := range []struct {
			feed   string
			params map[string]any
			want   string
		}{
			{"alarm", map[string]any{"trigger_payload": "x"}, "alarms trigger feed is missing the cron parameter"},
			{"alarm", map[string]any{"cron": "* * *"}, "cron pattern '* * *' is not valid"},
			{"alarm", map[string]any{"cron": "* * * * *", "timezone": "America/RTP"}, "Invalid timezone."},
			{"alarm", map[string]any{"cron": "* * * * *", "startDate": past}, fmt.Sprintf("startDate parameter '%d' must be in the future", past)},
			{"once", map[string]any{"trigger_payload": "x"}, "alarms once trigger feed is missing the date parameter"},
			{"once", map[string]any{"date": "tomorrow"}, "date parameter 'tomorrow' is not a valid Date"},
			{"once", map[string]any{"date": past}, fmt.Sprintf("date parameter '%d' must be in the future", past)},
			{"interval", map[string]any{"minutes": "five"}, "the minutes parameter must be an integer"},
		} {
			code, m := alarmFeed(e, tc.feed, "CREATE", "bad", tc.params)
			inner, _ := m["error"].(map[string]any)
			if code != 502 || inner["error"] != tc.want {
				t.Errorf("%s %v: %d %v, want 502 and %q", tc.feed, tc.params, code, m, tc.want)
			}
		}
		// Another namespace's trigger: the key does not own it.
		code, m := alarmFeed(e, "alarm", "CREATE", "no-such-trigger", map[string]any{"cron": "* * * * *"})
		if inner, _ := m["error"].(map[string]any); code != 502 || inner["error"] != "Trigger authentication request failed." {
			t.Errorf("missing trigger: %d %v", code, m)
		}
		// The failed feed calls are recorded, in the caller's namespace.
		var feedRec *whisk.Activation
		for _, r := range alarmRecords(e, "") {
			if r.Name == "alarm" {
				feedRec = &r
				break
			}
		}
		if feedRec == nil || feedRec.Response.Success || feedRec.Namespace != "guest" {
			t.Errorf("the newest record of the alarm feed: %+v", feedRec)
		}
	})
}
