package cli

import (
	"fmt"
	"strings"
	"testing"
)

// want is one expected request: method, path, query and body ("" = any).
type want struct{ method, path, query, body string }

func checkCalls(t *testing.T, got []call, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.Method != w.method || g.Path != w.path || (w.query != "" && g.Query != w.query) || (w.body != "" && strings.TrimSpace(g.Body) != w.body) {
			t.Errorf("request %d = %s %s?%s %s\nwant %s %s?%s %s", i, g.Method, g.Path, g.Query, g.Body, w.method, w.path, w.query, w.body)
		}
	}
}

const (
	trigPath = "/api/v1/namespaces/_/triggers/"
	rulePath = "/api/v1/namespaces/_/rules/"
	okRecord = `{"activationId":"` + actID + `","response":{"success":true,"status":"success","result":{"status":"success"}}}`
	badRec   = `{"activationId":"` + actID + `","response":{"success":false,"status":"application error","result":{"error":"nope"}}}`
)

// TestTriggerRequestsAsWsk checks the requests of each trigger command
// against those recorded from wsk (reference §4.3, [observed]).
func TestTriggerRequestsAsWsk(t *testing.T) {
	feedTrig := `{"name":"feedt","annotations":[{"key":"feed","value":"/whisk.system/alarms/alarm"}]}`
	s := newStub(t, map[string]reply{
		"PUT " + trigPath + "t1":                                    {200, `{"name":"t1"}`, ""},
		"GET " + trigPath + "t1":                                    {200, `{"namespace":"guest","name":"t1","annotations":[]}`, ""},
		"POST " + trigPath + "t1":                                   {202, `{"activationId":"` + actID + `"}`, actID},
		"DELETE " + trigPath + "t1":                                 {200, `{"name":"t1"}`, ""},
		"PUT " + trigPath + "feedt":                                 {200, feedTrig, ""},
		"GET " + trigPath + "feedt":                                 {200, feedTrig, ""},
		"POST /api/v1/namespaces/whisk.system/actions/alarms/alarm": {200, okRecord, actID},
		"DELETE " + trigPath + "feedt":                              {200, feedTrig, ""},
		"GET /api/v1/namespaces/_/triggers":                         {200, `[{"namespace":"guest","name":"t1"}]`, ""},
	})
	run := func(args ...string) string {
		t.Helper()
		so, se, code := s.run(args...)
		if code != 0 {
			t.Fatalf("eddy %s: exit %d\n%s%s", strings.Join(args, " "), code, so, se)
		}
		return so
	}
	run("trigger", "create", "t1", "-p", "a", "b", "-a", "x", "y")
	run("trigger", "update", "t1", "-p", "c", "d")
	if out := run("trigger", "fire", "t1", "-p", "k", "v"); out != "ok: triggered /_/t1 with id "+actID+"\n" {
		t.Fatalf("fire output %q", out)
	}
	run("trigger", "list")
	run("trigger", "get", "t1")
	run("trigger", "delete", "t1")
	checkCalls(t, s.requests(), []want{
		{"PUT", trigPath + "t1", "overwrite=false", `{"name":"t1","annotations":[{"key":"x","value":"y"}],"parameters":[{"key":"a","value":"b"}]}`},
		{"GET", trigPath + "t1", "", ""},
		{"PUT", trigPath + "t1", "overwrite=true", `{"name":"t1","parameters":[{"key":"c","value":"d"}]}`},
		{"POST", trigPath + "t1", "", `{"k":"v"}`},
		{"GET", "/api/v1/namespaces/_/triggers", "limit=30&skip=0", ""},
		{"GET", trigPath + "t1", "", ""},
		{"GET", trigPath + "t1", "", ""},
		{"DELETE", trigPath + "t1", "", ""},
	})

	s.calls = nil
	feedBody := func(event string) string {
		return fmt.Sprintf(`{"authKey":"%s","cron":"*/1 * * * *","lifecycleEvent":"%s","triggerName":"/_/feedt","trigger_payload":{"k":"v"}}`, testAuth, event)
	}
	out := run("trigger", "create", "feedt", "--feed", "/whisk.system/alarms/alarm", "-p", "cron", "*/1 * * * *", "-p", "trigger_payload", `{"k":"v"}`)
	if !strings.Contains(out, "ok: invoked /whisk.system/alarms/alarm with id "+actID) || !strings.HasSuffix(out, "ok: created trigger feedt\n") {
		t.Fatalf("feed create output %q", out)
	}
	run("trigger", "update", "feedt", "-p", "cron", "*/1 * * * *", "-p", "trigger_payload", `{"k":"v"}`)
	run("trigger", "get", "feedt")
	run("trigger", "delete", "feedt")
	const feed = "/api/v1/namespaces/whisk.system/actions/alarms/alarm"
	checkCalls(t, s.requests(), []want{
		{"PUT", trigPath + "feedt", "overwrite=false", feedTrig},
		{"POST", feed, "blocking=true&result=false", feedBody("CREATE")},
		{"GET", trigPath + "feedt", "", ""},
		{"POST", feed, "blocking=true&result=false", feedBody("UPDATE")},
		{"GET", trigPath + "feedt", "", ""},
		{"POST", feed, "", `{"authKey":"` + testAuth + `","lifecycleEvent":"READ","triggerName":"/_/feedt"}`},
		{"GET", trigPath + "feedt", "", ""},
		{"POST", feed, "", `{"authKey":"` + testAuth + `","lifecycleEvent":"DELETE","triggerName":"/_/feedt"}`},
		{"DELETE", trigPath + "feedt", "", ""},
	})

	// -F to the feed, -T to the trigger.
	s.calls = nil
	run("trigger", "create", "feedt", "--feed", "/whisk.system/alarms/alarm", "-F", "cron", "X", "-T", "tp", "1")
	checkCalls(t, s.requests(), []want{
		{"PUT", trigPath + "feedt", "overwrite=false", `{"name":"feedt","annotations":[{"key":"feed","value":"/whisk.system/alarms/alarm"}],"parameters":[{"key":"tp","value":1}]}`},
		{"POST", feed, "", `{"authKey":"` + testAuth + `","cron":"X","lifecycleEvent":"CREATE","triggerName":"/_/feedt"}`},
	})
}

// TestFeedCreateRollsBack: a feed that refuses CREATE gets DELETE (with the
// original parameters) and the trigger is deleted; the command fails.
func TestFeedCreateRollsBack(t *testing.T) {
	feedTrig := `{"name":"ft","annotations":[{"key":"feed","value":"/_/myfeed"}]}`
	s := newStub(t, map[string]reply{
		"PUT " + trigPath + "ft":                   {200, feedTrig, ""},
		"GET " + trigPath + "ft":                   {200, feedTrig, ""},
		"DELETE " + trigPath + "ft":                {200, feedTrig, ""},
		"POST /api/v1/namespaces/_/actions/myfeed": {502, badRec, actID},
	})
	so, se, code := s.run("trigger", "create", "ft", "--feed", "myfeed", "-p", "x", "1")
	if code == 0 || !strings.Contains(se, "Unable to create trigger 'ft'") {
		t.Fatalf("exit %d\n%s%s", code, so, se)
	}
	checkCalls(t, s.requests(), []want{
		{"PUT", trigPath + "ft", "overwrite=false", feedTrig},
		{"POST", "/api/v1/namespaces/_/actions/myfeed", "blocking=true&result=false", `{"authKey":"` + testAuth + `","lifecycleEvent":"CREATE","triggerName":"/_/ft","x":1}`},
		{"GET", trigPath + "ft", "", ""},
		{"POST", "/api/v1/namespaces/_/actions/myfeed", "", `{"authKey":"` + testAuth + `","lifecycleEvent":"DELETE","triggerName":"/_/ft","x":1}`},
		{"DELETE", trigPath + "ft", "", ""},
	})
}

// TestRuleRequestsAsWsk checks the rule commands against wsk's requests
// (reference §5, [observed]).
func TestRuleRequestsAsWsk(t *testing.T) {
	rule := `{"namespace":"guest","name":"r1","status":"active","trigger":{"path":"guest","name":"t1"},"action":{"path":"guest","name":"a1"}}`
	s := newStub(t, map[string]reply{
		"PUT " + rulePath + "r1":         {200, rule, ""},
		"POST " + rulePath + "r1":        {200, "OK", ""},
		"GET " + rulePath + "r1":         {200, rule, ""},
		"DELETE " + rulePath + "r1":      {200, rule, ""},
		"GET /api/v1/namespaces/_/rules": {200, `[{"namespace":"guest","name":"r1"}]`, ""},
	})
	run := func(args ...string) string {
		t.Helper()
		so, se, code := s.run(args...)
		if code != 0 {
			t.Fatalf("eddy %s: exit %d\n%s%s", strings.Join(args, " "), code, so, se)
		}
		return so
	}
	run("rule", "create", "r1", "t1", "a1")
	run("rule", "update", "r1", "t2", "pkg/a2")
	run("rule", "create", "r1", "t1", "/other/pkg/a1")
	if out := run("rule", "enable", "r1"); out != "ok: enabled rule r1\n" {
		t.Fatalf("enable output %q", out)
	}
	run("rule", "disable", "r1")
	if out := run("rule", "status", "r1"); out != "ok: rule r1 is active\n" {
		t.Fatalf("status output %q", out)
	}
	if out := run("rule", "list"); !strings.Contains(out, "rules\n/guest/r1") || !strings.HasSuffix(out, "private              active\n") {
		t.Fatalf("list output %q", out)
	}
	run("rule", "delete", "r1", "--disable")
	checkCalls(t, s.requests(), []want{
		{"PUT", rulePath + "r1", "overwrite=false", `{"name":"r1","status":"","trigger":"/_/t1","action":"/_/a1"}`},
		{"PUT", rulePath + "r1", "overwrite=true", `{"name":"r1","status":"","trigger":"/_/t2","action":"/_/pkg/a2"}`},
		{"PUT", rulePath + "r1", "overwrite=false", `{"name":"r1","status":"","trigger":"/_/t1","action":"/other/pkg/a1"}`},
		{"POST", rulePath + "r1", "", `{"status":"active","trigger":null,"action":null}`},
		{"POST", rulePath + "r1", "", `{"status":"inactive","trigger":null,"action":null}`},
		{"GET", rulePath + "r1", "", ""},
		{"GET", "/api/v1/namespaces/_/rules", "limit=30&skip=0", ""},
		{"GET", rulePath + "r1", "", ""},
		{"POST", rulePath + "r1", "", `{"status":"inactive","trigger":null,"action":null}`},
		{"DELETE", rulePath + "r1", "", ""},
	})
}
