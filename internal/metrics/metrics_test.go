package metrics

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func record(ns, action, initiator string, status int, t whisk.Timings) whisk.Activation {
	a := whisk.Activation{Namespace: initiator, Name: action, ActivationID: whisk.NewActivationID(), StatusCode: status, Duration: t.Run}
	a.Response = whisk.NewResponse(status, []byte(`{"ok":true}`))
	a.Annotate(whisk.ActionMeta{Namespace: ns, Name: action, Kind: "python:3.11", Limits: whisk.Limits{Memory: 256, Timeout: 60000}}, t, false)
	return a
}

// TestUserEventsCap: past the cap, new actions are counted under "other"
// while the actions already labelled keep their labels; nothing is lost.
func TestUserEventsCap(t *testing.T) {
	reg := NewRegistry()
	u, err := NewUserEvents(reg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		a := record("ns", fmt.Sprintf("a%d", i), "ns", whisk.StatusSuccess, whisk.Timings{Queued: 5, Run: 20, Start: whisk.StartWarm})
		u.Record(&a)
	}
	cold := record("ns", "a0", "caller", whisk.StatusApplicationError, whisk.Timings{Queued: 300, Create: 200, Init: 50, Run: 10, Start: whisk.StartCold})
	u.Record(&cold) // a fourth label set (another initiator): "other"
	again := record("ns", "a1", "ns", whisk.StatusSuccess, whisk.Timings{Run: 1, Start: whisk.StartWarm})
	u.Record(&again)
	trigger := whisk.Activation{Namespace: "ns", Name: "t", Annotations: whisk.Params{}}
	u.Record(&trigger) // not an action's record: not counted

	if got := testutil.ToFloat64(u.activations.WithLabelValues("ns", "ns", "a1", "python:3.11", "256")); got != 2 {
		t.Errorf("a1 activations %v, want 2", got)
	}
	if got := testutil.ToFloat64(u.activations.WithLabelValues(OtherLabel, OtherLabel, OtherLabel, "python:3.11", "256")); got != 3 {
		t.Errorf("activations under other %v, want 3 (a3, a4, a0 by caller)", got)
	}
	if got := testutil.ToFloat64(u.coldStarts.WithLabelValues(OtherLabel, OtherLabel, OtherLabel)); got != 1 {
		t.Errorf("cold starts under other %v, want 1", got)
	}
	if got := testutil.ToFloat64(u.status.WithLabelValues(OtherLabel, OtherLabel, OtherLabel, "application_error")); got != 1 {
		t.Errorf("application errors under other %v, want 1", got)
	}
	total := 0.0
	for _, who := range [][3]string{{"ns", "ns", "a0"}, {"ns", "ns", "a1"}, {"ns", "ns", "a2"}, {OtherLabel, OtherLabel, OtherLabel}} {
		total += testutil.ToFloat64(u.activations.WithLabelValues(who[0], who[1], who[2], "python:3.11", "256"))
	}
	if total != 7 {
		t.Errorf("activations counted %v, want 7 (the trigger's record is not an activation of an action)", total)
	}
	if n := testutil.CollectAndCount(u.activations); n != 4 {
		t.Errorf("label sets of openwhisk_action_activations_total: %d, want 4 (3 actions + other)", n)
	}
}

func TestRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/_/actions/hello":         "/api/v1/namespaces/{ns}/actions/{name}",
		"/api/v1/namespaces/guest/actions/pkg/hello": "/api/v1/namespaces/{ns}/actions/{name}",
		"/api/v1/namespaces/_/activations":           "/api/v1/namespaces/{ns}/activations",
		"/api/v1/namespaces/_/activations/0123/logs": "/api/v1/namespaces/{ns}/activations/{name}",
		"/api/v1/namespaces/_/bogus/x":               "/api/v1/namespaces/{ns}/{other}/{name}",
		"/api/v1/web/guest/default/hello.json":       "/api/v1/web/{path}",
		"/api/v1":                                    "/api/v1",
		"/eddy/ui/state":                             "/eddy/ui/",
		"/metrics":                                   "/metrics",
		"/wp-admin/../../etc/passwd":                 "other",
		"/api/v2/anything":                           "/api/{other}",
	} {
		if got := Route(path); got != want {
			t.Errorf("Route(%q) = %q, want %q", path, got, want)
		}
	}
}

// The status code an action's result sets is counted as OpenWhisk's
// Activation event reads it: error.statusCode before statusCode, the
// fraction dropped, 400 for a value that is not a number, nothing without
// one.
func TestUserDefinedStatusCode(t *testing.T) {
	for _, c := range []struct {
		result string
		code   int
		ok     bool
	}{
		{`{"statusCode": 201, "body": "x"}`, 201, true},
		{`{"error": {"statusCode": 404}, "statusCode": 200}`, 404, true},
		{`{"error": "plain"}`, 0, false},
		{`{"statusCode": 302.7}`, 302, true},
		{`{"statusCode": "teapot"}`, 400, true},
		{`{"statusCode": null}`, 0, false},
		{`{"ok": true}`, 0, false},
		{`[1, 2]`, 0, false},
	} {
		code, ok := userStatusCode(json.RawMessage(c.result))
		if code != c.code || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.result, code, ok, c.code, c.ok)
		}
	}
	reg := NewRegistry()
	u, err := NewUserEvents(reg, 10)
	if err != nil {
		t.Fatal(err)
	}
	a := record("ns", "web", "ns", whisk.StatusSuccess, whisk.Timings{Run: 1, Start: whisk.StartWarm})
	a.Response.Result = json.RawMessage(`{"statusCode": 418}`)
	u.Record(&a)
	u.Record(&a)
	if got := testutil.ToFloat64(u.statusCode.WithLabelValues("ns", "ns", "web", "418")); got != 2 {
		t.Errorf("openwhisk_action_status_code{status_code=418} %v, want 2", got)
	}
	if got := testutil.ToFloat64(u.containerStarts.WithLabelValues("ns", "ns", "web", "warmed")); got != 2 {
		t.Errorf("counter_invoker_containerStart_counter_total{containerState=warmed} %v, want 2", got)
	}
	cold := record("ns", "web", "ns", whisk.StatusSuccess, whisk.Timings{Create: 100, Init: 30, Run: 1, Start: whisk.StartCold})
	u.Record(&cold)
	if got := testutil.ToFloat64(u.containerStarts.WithLabelValues("ns", "ns", "web", "cold")); got != 1 {
		t.Errorf("counter_invoker_containerStart_counter_total{containerState=cold} %v, want 1", got)
	}
}

// Throttles count in OpenWhisk's limit families by the caller's namespace,
// beside Eddy's own by reason.
func TestControllerLimitFamilies(t *testing.T) {
	c, err := NewController(NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c.Throttled("alice", whisk.LimitInvocationsPerMinute)
	c.Throttled("alice", whisk.LimitInvocationsPerMinute)
	c.Throttled("bob", whisk.LimitConcurrentContainers)
	if got := testutil.ToFloat64(c.limitTimed.WithLabelValues("alice")); got != 2 {
		t.Errorf("openwhisk_action_limit_timed_total{alice} %v, want 2", got)
	}
	if got := testutil.ToFloat64(c.limitConcurrent.WithLabelValues("bob")); got != 1 {
		t.Errorf("openwhisk_action_limit_concurrent_total{bob} %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.throttled.WithLabelValues(whisk.LimitInvocationsPerMinute)); got != 2 {
		t.Errorf("eddy_controller_throttled_total{invocationsPerMinute} %v, want 2", got)
	}
}
