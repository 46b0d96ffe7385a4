package invoker

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/whisk"
)

func TestRunOutcome(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", 100) + `"}`
	cases := []struct {
		name    string
		status  int
		body    string
		code    int
		result  string // exact result, or "" to check errPart
		errPart string
		destroy bool
	}{
		{"object", 200, `{"greeting": "hi"}` + "\n", whisk.StatusSuccess, `{"greeting":"hi"}`, "", false},
		{"array", 200, `[1, 2]`, whisk.StatusSuccess, `[1,2]`, "", false},
		{"empty object", 200, `{}`, whisk.StatusSuccess, `{}`, "", false},
		{"application error", 200, `{"error":"nope","more":1}`, whisk.StatusApplicationError, `{"error":"nope","more":1}`, "", false},
		{"application error object", 200, `{"error":{"code":7}}`, whisk.StatusApplicationError, `{"error":{"code":7}}`, "", false},
		{"not json", 200, `this is not json`, whisk.StatusDeveloperError, "", whisk.MsgInvalidRunResponse("this is not json"), true},
		{"json string", 200, `"hello"`, whisk.StatusDeveloperError, "", whisk.MsgInvalidRunResponse(`"hello"`), true},
		{"empty", 200, ``, whisk.StatusDeveloperError, "", whisk.MsgInvalidRunResponse(""), true},
		{"broken object", 200, `{"a":`, whisk.StatusDeveloperError, "", whisk.MsgInvalidRunResponse(`{"a":`), true},
		{"502 with error", 502, `{"error":"The action did not return a dictionary or array."}`, whisk.StatusDeveloperError, `{"error":"The action did not return a dictionary or array."}`, "", true},
		{"500 with object error", 500, `{"error":{"why":"x"}}`, whisk.StatusDeveloperError, `{"error":{"why":"x"}}`, "", true},
		{"502 without error", 502, `oops`, whisk.StatusDeveloperError, "", whisk.MsgInvalidRunResponse("oops"), true},
		{"too large", 200, big, whisk.StatusApplicationError, "", "exceeded the allowed length: 108 > 50 bytes", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := runOutcome(c.status, []byte(c.body), 50)
			if o.code != c.code || o.destroy != c.destroy || o.timedOut {
				t.Fatalf("outcome %+v (%s), want code %d destroy %v", o, o.result, c.code, c.destroy)
			}
			if c.result != "" && string(o.result) != c.result {
				t.Fatalf("result %s, want %s", o.result, c.result)
			}
			if c.errPart != "" && !strings.Contains(errorText(o.result), c.errPart) {
				t.Fatalf("error %q, want it to contain %q", errorText(o.result), c.errPart)
			}
		})
	}
}

// TestRunOutcomeFastPathAgrees: runOutcome's one-scan reading of a reply
// (whisk.CompactField, a compact body kept as it is) gives what the general
// path (the object parsed into a map, json.Compact) gives.
func TestRunOutcomeFastPathAgrees(t *testing.T) {
	general := func(status int, body []byte, maxResult int) outcome {
		body = bytes.TrimSpace(body)
		var obj map[string]json.RawMessage
		var arr []json.RawMessage
		isObj := json.Unmarshal(body, &obj) == nil && obj != nil
		isArr := json.Unmarshal(body, &arr) == nil && arr != nil
		if status != 200 || (!isObj && !isArr) {
			t.Fatalf("the general path is for valid 200 answers: %s", body)
		}
		if maxResult > 0 && len(body) > maxResult {
			return failure(whisk.StatusApplicationError, whisk.MsgResultTooLarge(len(body), maxResult, truncate(body, maxResult)), false)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			t.Fatal(err)
		}
		if _, ok := obj["error"]; ok {
			return outcome{code: whisk.StatusApplicationError, result: buf.Bytes()}
		}
		return success(buf.Bytes())
	}
	for _, body := range []string{
		`{}`, ` {} `, `{"a":1}`, `{"a": 1}`, "{\"a\":\n1}", `{"a":"x y"}`, `{"a":[1,2,{"b":null}]}`,
		`{"error":1}`, `{"a":1,"error":"x"}`, `{"\u0065rror":1}`, `{"e\u0072ror":{"x":1}}`, `{"a":"error"}`,
		`{"errors":1}`, `{"a":{"error":1}}`, `{"a":"<&>"}`, `{"a":"\u2028"}`, `{"é":"ü"}`, `[1,2]`, `[{"error":1}]`,
		`{"x":"` + strings.Repeat("a", 100) + `"}`, `{"error":"` + strings.Repeat("a", 100) + `"}`,
	} {
		want := general(200, []byte(body), 50)
		got := runOutcome(200, []byte(body), 50)
		if got.code != want.code || got.destroy != want.destroy || string(got.result) != string(want.result) {
			t.Errorf("%s: outcome %d %s, want %d %s", body, got.code, got.result, want.code, want.result)
		}
	}
}

func TestResultTooLargeTruncates(t *testing.T) {
	body := `{"x":"` + strings.Repeat("é", 40) + `"}`
	o := runOutcome(200, []byte(body), 20)
	msg := errorText(o.result)
	want := whisk.MsgResultTooLarge(len(body), 20, "")
	if !strings.HasPrefix(msg, want) {
		t.Fatalf("message %q, want prefix %q", msg, want)
	}
	cut := strings.TrimPrefix(msg, want)
	if len(cut) > 20 || !strings.HasPrefix(body, cut) || !json.Valid(o.result) {
		t.Fatalf("truncated part %q (%d bytes)", cut, len(cut))
	}
}

func TestInitOutcome(t *testing.T) {
	o := initOutcome([]byte(`{"error":"SyntaxError: bad"}`))
	if o.code != whisk.StatusDeveloperError || !o.destroy || errorText(o.result) != "SyntaxError: bad" {
		t.Fatalf("%+v %s", o, o.result)
	}
	o = initOutcome([]byte("OOPS\n"))
	if errorText(o.result) != whisk.MsgInitFailed("OOPS") || !o.destroy {
		t.Fatalf("%+v %s", o, o.result)
	}
	o = initOutcome([]byte(`{"ok":false}`))
	if errorText(o.result) != whisk.MsgInitFailed(`{"ok":false}`) {
		t.Fatalf("%s", o.result)
	}
}

func testMsg() *whisk.ActivationMessage {
	return &whisk.ActivationMessage{
		ActivationID: "0123456789abcdef0123456789abcdef", TransactionID: "tid",
		Action: whisk.ActionMeta{
			Namespace: "guest", Name: "hello", Version: "0.0.1", Rev: 3, Kind: "python:3.11",
			Limits: whisk.Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1},
		},
		Subject: "guest", ControllerID: "c0", Published: 1000,
	}
}

func annotation(a whisk.Activation, key string) (string, bool) {
	v, ok := a.Annotations.Get(key)
	return string(v), ok
}

func TestBuildRecordCold(t *testing.T) {
	msg := testMsg()
	rec := buildRecord(recordInput{
		msg: msg, start: 1100, end: 1180, out: success(json.RawMessage(`{"a":1}`)),
		logs: []string{"l1"}, logsDone: true,
		timings: whisk.Timings{Queued: queuedMs(msg.Published, 1100), Create: 40, Init: 30, Run: 50, Start: whisk.StartCold},
	})
	if rec.Namespace != "guest" || rec.Name != "hello" || rec.Version != "0.0.1" || rec.Subject != "guest" ||
		rec.ActivationID != msg.ActivationID || rec.Start != 1100 || rec.End != 1180 || rec.Duration != 80 {
		t.Fatalf("record %+v", rec)
	}
	if rec.StatusCode != 0 || !rec.Response.Success || rec.Response.Status != "success" || string(rec.Response.Result) != `{"a":1}` {
		t.Fatalf("response %+v", rec.Response)
	}
	if len(rec.Logs) != 1 {
		t.Fatalf("logs %q", rec.Logs)
	}
	for key, want := range map[string]string{
		whisk.AnnPath: `"guest/hello"`, whisk.AnnKind: `"python:3.11"`, whisk.AnnTimeout: "false",
		whisk.AnnWaitTime: "100", whisk.AnnInitTime: "30",
	} {
		if got, ok := annotation(rec, key); !ok || got != want {
			t.Errorf("annotation %s = %s, want %s", key, got, want)
		}
	}
	tj, _ := annotation(rec, whisk.AnnTimings)
	var tm whisk.Timings
	if err := json.Unmarshal([]byte(tj), &tm); err != nil || tm.Create != 40 || tm.Start != whisk.StartCold || tm.Queued != 100 {
		t.Errorf("timings %s (%v)", tj, err)
	}
}

func TestBuildRecordWarmAndErrors(t *testing.T) {
	msg := testMsg()
	rec := buildRecord(recordInput{
		msg: msg, start: 2000, end: 2010, out: success(json.RawMessage(`{}`)), logsDone: true,
		timings: whisk.Timings{Queued: 5, Run: 10, Start: whisk.StartWarm},
	})
	if _, ok := annotation(rec, whisk.AnnInitTime); ok {
		t.Error("warm record has initTime")
	}
	if rec.Logs == nil {
		t.Error("logs must be an empty list, not null")
	}

	// A developer error with incomplete logs says so; a timeout is annotated.
	o := failure(whisk.StatusDeveloperError, whisk.MsgTimeLimit(300, false), true)
	o.timedOut = true
	rec = buildRecord(recordInput{msg: msg, start: 2000, end: 2301, out: o, logs: []string{"x"}, logsDone: false})
	if rec.StatusCode != whisk.StatusDeveloperError || rec.Response.Status != "action developer error" ||
		errorText(rec.Response.Result) != "The action exceeded its time limits of 300 milliseconds." {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if len(rec.Logs) != 2 || rec.Logs[1] != container.FormatLogLine(container.LogLine{Time: time.UnixMilli(2301), Stream: container.Stderr, Text: whisk.MsgLogsMaybeGone}) {
		t.Fatalf("logs %q", rec.Logs)
	}
	// Any developer error's logs end so (OpenWhisk reads them without
	// waiting for sentinels), complete or not.
	r2 := buildRecord(recordInput{msg: msg, start: 2000, end: 2301, out: o, logs: []string{"x"}, logsDone: true})
	if len(r2.Logs) != 2 || !strings.HasSuffix(r2.Logs[1], "stderr: "+whisk.MsgLogsMaybeGone) {
		t.Fatalf("logs %q", r2.Logs)
	}
	// Other logs whose sentinels did not come say that collecting failed.
	r2 = buildRecord(recordInput{msg: msg, start: 2000, end: 2301, out: success([]byte(`{}`)), logs: []string{"x"}, logsDone: false})
	if len(r2.Logs) != 2 || !strings.HasSuffix(r2.Logs[1], "stderr: "+whisk.MsgLogsFailed) {
		t.Fatalf("logs %q", r2.Logs)
	}
	if v, _ := annotation(rec, whisk.AnnTimeout); v != "true" {
		t.Fatalf("timeout annotation %s", v)
	}

	// An application error's complete logs get no notice.
	rec = buildRecord(recordInput{msg: msg, start: 1, end: 2, logsDone: true, out: outcome{code: whisk.StatusApplicationError, result: json.RawMessage(`{"error":"x"}`)}})
	if len(rec.Logs) != 0 || rec.Response.Success {
		t.Fatalf("%+v", rec)
	}
	// A clock step backwards never gives a negative duration.
	rec = buildRecord(recordInput{msg: msg, start: 10, end: 5, logsDone: true, out: success(json.RawMessage(`{}`))})
	if rec.Duration != 0 || rec.End != 10 {
		t.Fatalf("%+v", rec)
	}
	if queuedMs(0, 10) != 0 || queuedMs(20, 10) != 0 || queuedMs(5, 10) != 5 {
		t.Fatal("queuedMs")
	}
}

func TestSanitizeName(t *testing.T) {
	if got := sanitizeName("eddy_inv 0_guest_my/act@x_1"); got != "eddy_inv_0_guest_my_act_x_1" {
		t.Fatal(got)
	}
}

// TestParseJSONMatchesEncodingJSON checks parseJSON (its fast scan or
// encoding/json) against a plain encoding/json reading of the same bodies.
func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	bodies := []string{
		``, `{}`, `[]`, `{"a":1}`, `{"error":"x"}`, `{"error": "x"}`, `{"error":{"a":[1,2]},"b":2}`,
		`{"error":1,"error":2}`, `{"\u0065rror":1}`, `[{"error":1}]`, `"s"`, `12`, `null`, `{"a":`, `{"a":1}x`,
		"{\"a\":\"\xff\"}", `{"a":"\ud800"}`, "[1,\n2]", `{"a":{"b":{"c":{}}}}`, `{"error":null}`,
	}
	for _, body := range bodies {
		got := parseJSON([]byte(body))
		var want reply
		var obj map[string]json.RawMessage
		var arr []json.RawMessage
		if json.Unmarshal([]byte(body), &obj) == nil && obj != nil {
			want.isObj = true
			want.errVal, want.hasErr = obj["error"]
		} else if json.Unmarshal([]byte(body), &arr) == nil && arr != nil {
			want.isArr = true
		}
		if got.isObj != want.isObj || got.isArr != want.isArr || got.hasErr != want.hasErr || string(got.errVal) != string(want.errVal) {
			t.Errorf("%q: %+v, want %+v", body, got, want)
		}
		if got.compact {
			var b bytes.Buffer
			if err := json.Compact(&b, []byte(body)); err != nil || b.String() != body {
				t.Errorf("%q: said compact, json.Compact gives %q (%v)", body, b.String(), err)
			}
		}
	}
}

// BenchmarkRunOutcome reads a small /run reply, as a no-op action gives.
func BenchmarkRunOutcome(b *testing.B) {
	body := []byte(`{"greeting":"Hello stranger!","n":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if o := runOutcome(200, body, 1<<20); o.code != 0 {
			b.Fatal(o)
		}
	}
}

// A step of a sequence or composition carries its cause and causedBy; a
// top-level activation has neither.
func TestBuildRecordCause(t *testing.T) {
	msg := testMsg()
	rec := buildRecord(recordInput{msg: msg, start: 1, end: 2, out: success(json.RawMessage(`{}`))})
	if _, ok := annotation(rec, whisk.AnnCausedBy); ok || rec.Cause != "" {
		t.Fatalf("top-level record has a cause: %+v", rec)
	}
	msg.Cause = "fedcba9876543210fedcba9876543210"
	rec = buildRecord(recordInput{msg: msg, start: 1, end: 2, out: success(json.RawMessage(`{}`))})
	if v, _ := annotation(rec, whisk.AnnCausedBy); v != `"sequence"` || rec.Cause != msg.Cause {
		t.Fatalf("cause %q, causedBy %s", rec.Cause, v)
	}
	b, err := rec.AppendJSON(nil)
	if err != nil || !bytes.Contains(b, []byte(`"cause":"fedcba9876543210fedcba9876543210"`)) {
		t.Fatalf("stored document %s (%v)", b, err)
	}
}
