package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Sequence and conductor components in three runtimes: pyinc and jsinc
// count n up and build a name, nat (testdata/native) greets the name.
const (
	pyInc = "def main(args):\n    n = args.get('n', 0)\n    print('py', n)\n    return {'n': n + 1, 'name': 'py' + str(n)}\n"
	jsInc = "function main(args) {\n  console.log('js', args.n);\n  return {n: (args.n || 0) + 1, name: args.name + '-js'};\n}\n"
	jsErr = "function main(args) {\n  return {error: 'failed at ' + args.n};\n}\n"
	// pyConductor runs pyinc, then jsinc, then ends with the params.
	pyConductor = `def main(args):
    step = args.get('$step', 0)
    if 'error' in args:
        return {'params': {'recovered': args['error']}}
    if step == 0:
        return {'action': 'pyinc', 'params': {'n': args.get('n', 0)}, 'state': {'$step': 1}}
    if step == 1:
        return {'action': '/_/jsinc', 'params': {'n': args['n'], 'name': args['name']}, 'state': {'$step': 2}}
    return {'params': {'done': args['name'], 'n': args['n']}}
`
)

func (e *eddy) createSequence(name string, comps ...string) {
	e.t.Helper()
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/"+name,
		map[string]any{"exec": map[string]any{"kind": "sequence", "components": comps}})
}

// invokeBlocking invokes and decodes the record answered (any status).
func (e *eddy) invokeBlocking(name string, params any) (int, whisk.Activation) {
	e.t.Helper()
	code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/"+name+"?blocking=true", params)
	var rec whisk.Activation
	if err := json.Unmarshal(out, &rec); err != nil {
		e.t.Fatalf("invoke %s: %d %s", name, code, out)
	}
	return code, rec
}

func annotationMap(t *testing.T, a whisk.Activation) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, kv := range a.Annotations {
		var v any
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			t.Fatalf("annotation %s: %v", kv.Key, err)
		}
		out[kv.Key] = v
	}
	return out
}

func annotationKeys(a whisk.Activation) []string {
	var ks []string
	for _, kv := range a.Annotations {
		ks = append(ks, kv.Key)
	}
	return ks
}

// checkChainRecord checks a sequence's or composition's record field by
// field (reference §2.3, §3) and its components' records, which it
// returns in order.
func checkChainRecord(t *testing.T, e *eddy, rec whisk.Activation, name, cause string, conductor bool, memory int) []whisk.Activation {
	t.Helper()
	if rec.Namespace != "guest" || rec.Name != name || rec.Subject != "guest" || rec.Version == "" ||
		string(rec.Cause) != cause || rec.End < rec.Start || rec.Publish || rec.StatusCode != rec.Response.StatusCode {
		t.Fatalf("%s record %+v", name, rec)
	}
	wantKeys := []string{"topmost", "path", "kind"}
	if conductor {
		wantKeys = append(wantKeys, "conductor")
	}
	if cause != "" {
		wantKeys = append(wantKeys, "causedBy")
	}
	wantKeys = append(wantKeys, "waitTime", "limits")
	if ks := annotationKeys(rec); !reflect.DeepEqual(ks, wantKeys) {
		t.Fatalf("%s annotation keys %v, want %v", name, ks, wantKeys)
	}
	anns := annotationMap(t, rec)
	wantLimits := map[string]any{"timeout": float64(60000), "memory": float64(memory), "logs": float64(10), "concurrency": float64(1)}
	if anns["topmost"] != (cause == "") || anns["path"] != "guest/"+name || anns["kind"] != "sequence" ||
		!reflect.DeepEqual(anns["limits"], wantLimits) {
		t.Fatalf("%s annotations %v", name, anns)
	}
	if wt, ok := anns["waitTime"].(float64); !ok || wt < 0 {
		t.Fatalf("%s waitTime %v", name, anns["waitTime"])
	}
	if conductor && anns["conductor"] != true {
		t.Fatalf("%s conductor annotation %v", name, anns["conductor"])
	}
	if cause != "" && anns["causedBy"] != "sequence" {
		t.Fatalf("%s causedBy %v", name, anns["causedBy"])
	}
	var comps []whisk.Activation
	var sum int64
	for _, id := range rec.Logs {
		c := e.activation(id)
		if c.Cause != rec.ActivationID {
			t.Fatalf("component %s (%s) has cause %q, want %s", id, c.Name, c.Cause, rec.ActivationID)
		}
		if v := annotationMap(t, c)["causedBy"]; v != "sequence" {
			t.Fatalf("component %s causedBy %v", c.Name, v)
		}
		sum += c.Duration
		comps = append(comps, c)
	}
	if rec.Duration != sum {
		t.Fatalf("%s duration %d, want the components' sum %d", name, rec.Duration, sum)
	}
	return comps
}

func names(recs []whisk.Activation) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

// countRecords counts the records of an action.
func (e *eddy) countRecords(name string) int {
	e.t.Helper()
	var n map[string]int
	if err := json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/activations?count=true&name="+name, nil), &n); err != nil {
		e.t.Fatal(err)
	}
	return n["activations"]
}

// TestSequences: python, Node.js and native components through the real
// queue path, blocking and not, a failing middle component, a nested
// sequence, a component deleted after creation, and the creation checks.
func TestSequences(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		e := startEddy(t, backend, "", "--prewarm", "0")
		e.createAction("pyinc", "python:3.11", pyInc, nil)
		e.createAction("jsinc", "nodejs:18", jsInc, map[string]any{"memory": 128})
		e.createAction("jserr", "nodejs:18", jsErr, nil)
		e.createAction("nat", "native", nativeCode, nil)
		e.createSequence("s", "/_/pyinc", "/_/jsinc", "/guest/nat")

		// Blocking: each result is the next input.
		code, rec := e.invokeBlocking("s", map[string]any{"n": 1})
		if code != 200 || string(rec.Response.Result) != `{"greeting":"Hello py1-js"}` || !rec.Response.Success {
			t.Fatalf("blocking: %d %+v %s", code, rec.Response, rec.Response.Result)
		}
		comps := checkChainRecord(t, e, rec, "s", "", false, 256)
		if got := names(comps); !reflect.DeepEqual(got, []string{"pyinc", "jsinc", "nat"}) {
			t.Fatalf("components %v", got)
		}
		if a := annotationMap(t, comps[1]); a["path"] != "guest/jsinc" || a["kind"] != "nodejs:18" {
			t.Fatalf("jsinc annotations %v", a)
		}

		// Non-blocking: 202 with the sequence's id; the record follows.
		code, _, out := e.call("POST", "/api/v1/namespaces/_/actions/s", map[string]any{"n": 5})
		var accepted struct{ ActivationID string }
		if err := json.Unmarshal(out, &accepted); code != 202 || err != nil || len(accepted.ActivationID) != 32 {
			t.Fatalf("non-blocking: %d %s", code, out)
		}
		rec = e.activation(accepted.ActivationID)
		if string(rec.Response.Result) != `{"greeting":"Hello py5-js"}` || len(rec.Logs) != 3 {
			t.Fatalf("non-blocking record %s, logs %v", rec.Response.Result, rec.Logs)
		}
		checkChainRecord(t, e, rec, "s", "", false, 256)

		// A failing middle component stops the chain: its error is the answer.
		natRuns := e.countRecords("nat")
		e.createSequence("sfail", "/_/pyinc", "/_/jserr", "/_/nat")
		code, rec = e.invokeBlocking("sfail", map[string]any{"n": 1})
		if code != 502 || rec.Response.Status != "application error" || string(rec.Response.Result) != `{"error":"failed at 2"}` {
			t.Fatalf("failing middle: %d %+v %s", code, rec.Response, rec.Response.Result)
		}
		if got := names(checkChainRecord(t, e, rec, "sfail", "", false, 256)); !reflect.DeepEqual(got, []string{"pyinc", "jserr"}) {
			t.Fatalf("failing middle ran %v", got)
		}
		if n := e.countRecords("nat"); n != natRuns {
			t.Fatalf("the component after the failure ran (%d → %d records of nat)", natRuns, n)
		}

		// Nested: the inner sequence's record is one step of the outer one.
		e.createSequence("outer", "/_/s", "/_/pyinc")
		code, rec = e.invokeBlocking("outer", map[string]any{"n": 7})
		if code != 200 || string(rec.Response.Result) != `{"n":1,"name":"py0"}` {
			t.Fatalf("nested: %d %s", code, rec.Response.Result)
		}
		steps := checkChainRecord(t, e, rec, "outer", "", false, 256)
		if got := names(steps); !reflect.DeepEqual(got, []string{"s", "pyinc"}) {
			t.Fatalf("outer steps %v", got)
		}
		inner := checkChainRecord(t, e, steps[0], "s", string(rec.ActivationID), false, 256)
		if string(steps[0].Response.Result) != `{"greeting":"Hello py7-js"}` || len(inner) != 3 {
			t.Fatalf("inner %s, %d steps", steps[0].Response.Result, len(inner))
		}

		// A component deleted after creation: OpenWhisk's message, no hang.
		e.createAction("doomed", "python:3.11", pyInc, nil)
		e.createSequence("sdoomed", "/_/pyinc", "/_/doomed")
		e.mustCall(200, "DELETE", "/api/v1/namespaces/_/actions/doomed", nil)
		code, rec = e.invokeBlocking("sdoomed", map[string]any{"n": 1})
		if code != 502 || string(rec.Response.Result) != `{"error":"`+whisk.MsgSequenceComponentGone+`"}` || len(rec.Logs) != 1 {
			t.Fatalf("deleted component: %d %s logs %v", code, rec.Response.Result, rec.Logs)
		}

		// Creation checks, with OpenWhisk's statuses and messages.
		for _, tc := range []struct {
			comps  []string
			status int
			msg    string
		}{
			{[]string{"/_/outer", "/_/s"}, 200, ""},
			{nil, 400, whisk.MsgSequenceNoComponent},
			{[]string{"/_/nothere"}, 400, whisk.MsgSequenceComponentGone},
			{[]string{"/_/loop"}, 400, whisk.MsgSequenceCyclic},
			{[]string{"/_/s", "/_/other"}, 400, whisk.MsgSequenceCyclic}, // other → loop
			{strings.Split(strings.Repeat("/_/s,", 17), ",")[:17], 400, whisk.MsgSequenceTooLong},
			{[]string{"/whisk.system/x"}, 403, whisk.MsgNotAuthorized("whisk.system/x")},
		} {
			code, _, out := e.call("PUT", "/api/v1/namespaces/_/actions/loop?overwrite=true",
				map[string]any{"exec": map[string]any{"kind": "sequence", "components": tc.comps}})
			if tc.status == 200 {
				e.createSequence("other", "/_/loop")
			}
			var body map[string]string
			_ = json.Unmarshal(out, &body)
			if code != tc.status || (tc.msg != "" && body["error"] != tc.msg) {
				t.Errorf("components %v: %d %s, want %d %q", tc.comps, code, out, tc.status, tc.msg)
			}
		}
	})
}

// TestConductorAction: a python conductor drives a python and a Node.js
// component; the primary record and every run's record are checked.
func TestConductorAction(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		e := startEddy(t, backend, "", "--prewarm", "0")
		e.createAction("pyinc", "python:3.11", pyInc, nil)
		e.createAction("jsinc", "nodejs:18", jsInc, map[string]any{"memory": 512})
		e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/cond", map[string]any{
			"exec":        map[string]any{"kind": "python:3.11", "code": pyConductor},
			"annotations": []map[string]any{{"key": "conductor", "value": true}},
		})
		code, rec := e.invokeBlocking("cond", map[string]any{"n": 3})
		if code != 200 || string(rec.Response.Result) != `{"done":"py3-js","n":5}` {
			t.Fatalf("conductor: %d %s", code, rec.Response.Result)
		}
		runs := checkChainRecord(t, e, rec, "cond", "", true, 512)
		if got := names(runs); !reflect.DeepEqual(got, []string{"cond", "pyinc", "cond", "jsinc", "cond"}) {
			t.Fatalf("runs %v", got)
		}

		// A component that does not resolve is fed back to the conductor.
		e.mustCall(200, "DELETE", "/api/v1/namespaces/_/actions/jsinc", nil)
		start := time.Now()
		code, rec = e.invokeBlocking("cond", map[string]any{"n": 3})
		want := fmt.Sprintf(`{"recovered":"%s"}`, whisk.MsgCompositionNotFound("guest/jsinc"))
		if code != 200 || string(rec.Response.Result) != want {
			t.Fatalf("unresolvable component after %v: %d %s", time.Since(start), code, rec.Response.Result)
		}
		if got := names(checkChainRecord(t, e, rec, "cond", "", true, 256)); !reflect.DeepEqual(got, []string{"cond", "pyinc", "cond", "cond"}) {
			t.Fatalf("runs %v", got)
		}
	})
}
