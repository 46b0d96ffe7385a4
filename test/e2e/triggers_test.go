package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// argsPy returns its arguments: a rule action shows what a fire passed.
const argsPy = "def main(args):\n    return {'args': args}\n"

// ruleLog is one log line of a trigger record.
type ruleLog struct {
	StatusCode   int    `json:"statusCode"`
	Success      bool   `json:"success"`
	ActivationID string `json:"activationId"`
	Error        string `json:"error"`
	Rule         string `json:"rule"`
	Action       string `json:"action"`
}

// fire fires a trigger and returns the status and the activation id.
func (e *eddy) fire(trigger string, body any) (int, string) {
	e.t.Helper()
	code, hdr, out := e.call("POST", "/api/v1/namespaces/_/triggers/"+trigger, body)
	if code != http.StatusAccepted {
		if code == http.StatusNoContent && len(out) != 0 {
			e.t.Fatalf("fire %s: 204 with a body %q", trigger, out)
		}
		return code, ""
	}
	var b struct {
		ActivationID string `json:"activationId"`
	}
	if err := json.Unmarshal(out, &b); err != nil || b.ActivationID == "" {
		e.t.Fatalf("fire %s: 202 body %s", trigger, out)
	}
	if h := hdr.Get("X-Openwhisk-Activation-Id"); h != b.ActivationID {
		e.t.Fatalf("fire %s: header id %q, body id %q", trigger, h, b.ActivationID)
	}
	return code, b.ActivationID
}

// triggerLogs reads a trigger record and decodes its rule log lines, by rule.
func (e *eddy) triggerLogs(id string) (whisk.Activation, map[string]ruleLog) {
	e.t.Helper()
	a := e.activation(id)
	out := map[string]ruleLog{}
	for _, l := range a.Logs {
		var rl ruleLog
		if err := json.Unmarshal([]byte(l), &rl); err != nil {
			e.t.Fatalf("trigger record log %q: %v", l, err)
		}
		out[rl.Rule] = rl
	}
	return a, out
}

// TestTriggersAndRules walks OpenWhisk's event model over the REST API:
// trigger parameters merged under the fire body, __ow_headers, active and
// inactive rules in the trigger record, 204 without an active rule, a rule
// whose action was deleted, rule references and statuses, and orphaned
// rules.
func TestTriggersAndRules(t *testing.T) {
	e := startEddy(t, "process", "")
	e.createAction("show", "python:3.11", argsPy, nil)
	e.createAction("other", "python:3.11", argsPy, nil)
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/triggers/t", map[string]any{
		"parameters": []map[string]any{{"key": "p", "value": 1}, {"key": "k", "value": "trigger"}},
	})

	// No rule: 204, no record.
	if code, _ := e.fire("t", map[string]any{"k": "v"}); code != http.StatusNoContent {
		t.Fatalf("fire without rules: %d, want 204", code)
	}

	// Rule references: missing trigger and action are 400s with OpenWhisk's messages.
	code, _, out := e.call("PUT", "/api/v1/namespaces/_/rules/r1", map[string]any{"trigger": "/_/nope", "action": "/_/show"})
	if code != 400 || !strings.Contains(string(out), "trigger /guest/nope does not exist") {
		t.Fatalf("rule with missing trigger: %d %s", code, out)
	}
	code, _, out = e.call("PUT", "/api/v1/namespaces/_/rules/r1", map[string]any{"trigger": "/_/t", "action": "/_/nope"})
	if code != 400 || !strings.Contains(string(out), "action /guest/nope does not exist") {
		t.Fatalf("rule with missing action: %d %s", code, out)
	}
	code, _, out = e.call("PUT", "/api/v1/namespaces/_/rules/r1", map[string]any{"trigger": "t", "action": "/_/show"})
	if code != 400 || !strings.Contains(string(out), "must contain at least the namespace and the name of the entity") {
		t.Fatalf("rule with a one-segment trigger: %d %s", code, out)
	}

	// wsk's body: status "" and "/_/x" references.
	out = e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/r1", map[string]any{"name": "r1", "status": "", "trigger": "/_/t", "action": "/_/show"})
	var rule whisk.Rule
	if err := json.Unmarshal(out, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Status != "active" || rule.Trigger != (whisk.EntityPath{Path: "guest", Name: "t"}) || rule.Action != (whisk.EntityPath{Path: "guest", Name: "show"}) {
		t.Fatalf("created rule = %+v", rule)
	}
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/r2", map[string]any{"trigger": "/guest/t", "action": map[string]string{"path": "guest", "name": "other"}})
	if code, _, out := e.call("PUT", "/api/v1/namespaces/_/rules/r2", map[string]any{"trigger": "/_/t", "action": "/_/show"}); code != 409 {
		t.Fatalf("second create of r2: %d %s", code, out)
	}

	// The trigger holds the statuses.
	var trig whisk.Trigger
	if err := json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/triggers/t", nil), &trig); err != nil {
		t.Fatal(err)
	}
	if len(trig.Rules) != 2 || trig.Rules["guest/r1"].Status != "active" || trig.Rules["guest/r2"].Action.Name != "other" {
		t.Fatalf("trigger rules = %+v", trig.Rules)
	}

	// Disable r2 (body OK, not JSON), fire: r1 runs, r2 is logged inactive.
	code, hdr, out := e.call("POST", "/api/v1/namespaces/_/rules/r2", map[string]any{"status": "inactive", "trigger": nil, "action": nil})
	if code != 200 || string(out) != "OK" || strings.Contains(hdr.Get("Content-Type"), "json") {
		t.Fatalf("disable: %d %q %s", code, out, hdr.Get("Content-Type"))
	}
	code, id := e.fire("t", map[string]any{"k": "v", "n": 2})
	if code != http.StatusAccepted {
		t.Fatalf("fire: %d", code)
	}
	rec, logs := e.triggerLogs(id)
	if rec.Name != "t" || rec.Namespace != "guest" || !rec.Response.Success || len(rec.Annotations) != 0 {
		t.Fatalf("trigger record = %+v", rec)
	}
	var result map[string]any
	_ = json.Unmarshal(rec.Response.Result, &result)
	if result["k"] != "v" || result["p"] != nil {
		t.Fatalf("trigger record result = %s (the fire body, not merged)", rec.Response.Result)
	}
	_, _, raw := e.call("GET", "/api/v1/namespaces/_/activations/"+id, nil)
	if strings.Contains(string(raw), `"end"`) || strings.Contains(string(raw), `"duration"`) {
		t.Fatalf("trigger record has end/duration: %s", raw)
	}
	if len(logs) != 2 || !logs["guest/r1"].Success || logs["guest/r1"].Action != "guest/show" ||
		logs["guest/r2"].StatusCode != 1 || logs["guest/r2"].Error != "Rule 'guest/r2' is inactive, action 'guest/other' was not activated." {
		t.Fatalf("trigger logs = %+v", logs)
	}
	act := e.activation(logs["guest/r1"].ActivationID)
	var got struct {
		Args map[string]any `json:"args"`
	}
	if err := json.Unmarshal(act.Response.Result, &got); err != nil {
		t.Fatal(err)
	}
	hdrs, _ := got.Args["__ow_headers"].(map[string]any)
	if got.Args["p"] != 1.0 || got.Args["k"] != "v" || got.Args["n"] != 2.0 || hdrs["content-type"] != "application/json" || hdrs["authorization"] != nil {
		t.Fatalf("rule action args = %v", got.Args)
	}

	// Rule get: status from the trigger; list: no status.
	var r2 whisk.Rule
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/rules/r2", nil), &r2)
	if r2.Status != "inactive" {
		t.Fatalf("r2 status = %q", r2.Status)
	}
	list := e.mustCall(200, "GET", "/api/v1/namespaces/_/rules?limit=30&skip=0", nil)
	if strings.Contains(string(list), "status") || !strings.Contains(string(list), `"r1"`) {
		t.Fatalf("rule list: %s", list)
	}

	// Both disabled: 204.
	e.mustCall(200, "POST", "/api/v1/namespaces/_/rules/r1", map[string]string{"status": "inactive"})
	if code, _ := e.fire("t", nil); code != http.StatusNoContent {
		t.Fatalf("fire with inactive rules: %d", code)
	}

	// A rule whose action was deleted: the fire records the refusal.
	e.mustCall(200, "POST", "/api/v1/namespaces/_/rules/r2", map[string]string{"status": "active"})
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/actions/other", nil)
	_, id = e.fire("t", nil)
	_, logs = e.triggerLogs(id)
	if l := logs["guest/r2"]; l.StatusCode != 1 || l.Success || l.Error != whisk.MsgNotFound {
		t.Fatalf("deleted action's log = %+v", l)
	}

	// Deleting the trigger orphans its rules: inactive, enabling is a 404.
	out = e.mustCall(200, "DELETE", "/api/v1/namespaces/_/triggers/t", nil)
	if !strings.Contains(string(out), `"guest/r1"`) {
		t.Fatalf("deleted trigger lacks its rules: %s", out)
	}
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/rules/r2", nil), &r2)
	if r2.Status != "inactive" {
		t.Fatalf("orphaned rule status = %q", r2.Status)
	}
	code, _, out = e.call("POST", "/api/v1/namespaces/_/rules/r2", map[string]string{"status": "active"})
	if code != 404 || !strings.Contains(string(out), "Only rules with existing triggers can be activated") {
		t.Fatalf("enable orphan: %d %s", code, out)
	}
	// Deleting a rule works in any state.
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/rules/r1", nil)
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/rules/r2", nil)
	if code, _ := e.fire("t", nil); code != 404 {
		t.Fatalf("fire of a deleted trigger: %d", code)
	}
}

// TestFireBadInput: another namespace's trigger and rule references,
// payloads over 1 MB, and a flood of fires over the namespace's
// firesPerMinute: every fire is either refused (429, OpenWhisk's message)
// or accepted, and every accepted one ran the rule's action exactly once.
func TestFireBadInput(t *testing.T) {
	e := startEddy(t, "process", "", "--fires-per-minute", "6")
	e.createAction("show", "python:3.11", argsPy, nil)
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/triggers/t", nil)
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/rules/r", map[string]any{"trigger": "/_/t", "action": "/_/show"})

	other := e.admin("user", "create", "mallory")
	if code, _, out := e.callAuth(other, "POST", "/api/v1/namespaces/guest/triggers/t", nil); code != 403 {
		t.Fatalf("fire another namespace's trigger: %d %s", code, out)
	}
	e.callAuth(other, "PUT", "/api/v1/namespaces/_/triggers/mt", nil)
	for _, ref := range []map[string]any{
		{"trigger": "/guest/t", "action": "/mallory/x"},
		{"trigger": "/_/mt", "action": "/guest/show"},
	} {
		if code, _, out := e.callAuth(other, "PUT", "/api/v1/namespaces/_/rules/steal", ref); code != 403 {
			t.Fatalf("rule %v across namespaces: %d %s", ref, code, out)
		}
	}
	if code, _, out := e.call("POST", "/api/v1/namespaces/_/triggers/missing", nil); code != 404 || !strings.Contains(string(out), whisk.MsgNotFound) {
		t.Fatalf("fire a missing trigger: %d %s", code, out)
	}
	big := fmt.Sprintf(`{"x":"%s"}`, strings.Repeat("a", 1<<20))
	if code, _, out := e.call("POST", "/api/v1/namespaces/_/triggers/t", big); code != 413 || !strings.Contains(string(out), "Request larger than allowed") {
		t.Fatalf("fire 1 MB: %d %.200s", code, out)
	}

	// The flood: of the fires above only the 404 was counted (the 403 is
	// refused before the limit, the 413 before the fire); 10 more at once.
	var mu sync.Mutex
	var accepted []string
	refused := 0
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, h, out := e.call("POST", "/api/v1/namespaces/_/triggers/t", map[string]int{"i": i})
			mu.Lock()
			defer mu.Unlock()
			switch code {
			case 202:
				var b struct{ ActivationID string }
				_ = json.Unmarshal(out, &b)
				accepted = append(accepted, b.ActivationID)
			case 429:
				if !strings.Contains(string(out), "Too many requests in the last minute") || h.Get("Retry-After") == "" {
					t.Errorf("429 body %s", out)
				}
				refused++
			default:
				t.Errorf("flood fire: %d %s", code, out)
			}
		}(i)
	}
	wg.Wait()
	if len(accepted) == 0 || refused == 0 || len(accepted)+refused != 10 {
		t.Fatalf("flood: %d accepted, %d refused", len(accepted), refused)
	}
	var ids []string
	for _, id := range accepted {
		_, logs := e.triggerLogs(id)
		if l := logs["guest/r"]; !l.Success || l.ActivationID == "" {
			t.Fatalf("accepted fire %s: log %+v", id, l)
		}
		ids = append(ids, logs["guest/r"].ActivationID)
	}
	for _, id := range ids {
		e.activation(id) // every accepted fire's action ran and has its record
	}
	var count struct {
		Activations int `json:"activations"`
	}
	waitFor(t, 60*time.Second, "one record of show per accepted fire", func() bool {
		_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/activations?name=show&count=true", nil), &count)
		return count.Activations >= len(accepted)
	})
	if count.Activations != len(accepted) {
		t.Fatalf("%d records of show for %d accepted fires", count.Activations, len(accepted))
	}
}
