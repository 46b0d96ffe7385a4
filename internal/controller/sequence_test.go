package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// PutActivation lets fakeStore keep the records of sequences and
// compositions; put (if set) is told of each.
func (s *fakeStore) PutActivation(_ context.Context, a whisk.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[a.ActivationID]; !ok {
		s.recs[a.ActivationID] = a
	}
	return nil
}

func (s *fakeStore) record(t *testing.T, id whisk.ActivationID) whisk.Activation {
	t.Helper()
	var a whisk.Activation
	waitFor(t, "record "+string(id), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ok bool
		a, ok = s.recs[id]
		return ok
	})
	return a
}

// fakeComponents resolves from a map of actions by path; another
// namespace is Forbidden.
type fakeComponents struct {
	mu       sync.Mutex
	actions  map[string]whisk.Action
	bindings map[string]string // path → the binding it is reached through
}

func (f *fakeComponents) Action(_ context.Context, caller string, ref whisk.EntityName) (whisk.ResolvedAction, error) {
	if ref.Namespace != caller {
		return whisk.ResolvedAction{}, whisk.E("fake", whisk.Forbidden, whisk.MsgNotAuthorized(ref.Path()), nil)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.actions[ref.Path()]
	if !ok {
		return whisk.ResolvedAction{}, whisk.E("fake", whisk.NotFound, whisk.MsgNotFound, nil)
	}
	return whisk.ResolvedAction{Action: a, Binding: f.bindings[ref.Path()]}, nil
}

func (f *fakeComponents) put(a whisk.Action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions[a.Namespace+"/"+a.Name] = a
}

// worker plays queue + container for a set of actions: it reads their
// topics and answers each activation with fn's result and status, after
// a duration of its own (the record's), on the controller's completion
// topic. It keeps every message it read, per action.
type worker struct {
	t    *testing.T
	r    *rig
	mu   sync.Mutex
	msgs map[string][]whisk.ActivationMessage
	n    int64                        // durations: 1, 2, 3, ... in the order read
	dur  map[whisk.ActivationID]int64 // the duration each activation got
}

type behaviour func(params map[string]any) (result any, status int)

func newWorker(t *testing.T, r *rig) *worker {
	return &worker{t: t, r: r, msgs: map[string][]whisk.ActivationMessage{}, dur: map[whisk.ActivationID]int64{}}
}

// serve answers the activations of a with fn; a nil fn never answers.
func (w *worker) serve(a whisk.Action, fn behaviour) {
	cons := queueConsumer(w.t, w.r.bus, a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			recs, err := cons.Poll(ctx, 16)
			if err != nil {
				return
			}
			for _, rec := range recs {
				var m whisk.ActivationMessage
				if err := whisk.DecodeActivationMessage(rec.Value, &m); err != nil {
					w.t.Errorf("decode: %v", err)
					return
				}
				w.mu.Lock()
				w.msgs[a.Name] = append(w.msgs[a.Name], m)
				w.n++
				d := w.n
				w.dur[m.ActivationID] = d
				w.mu.Unlock()
				if fn == nil {
					continue
				}
				var p map[string]any
				if err := json.Unmarshal(m.Params, &p); err != nil {
					p = map[string]any{"$raw": string(m.Params)}
				}
				res, status := fn(p)
				out, _ := json.Marshal(res)
				act := whisk.Activation{
					Namespace: "guest", Name: m.Action.Name, Version: m.Action.Version, Subject: m.Subject,
					ActivationID: m.ActivationID, Start: 1, End: 1 + d, Duration: d,
					StatusCode: status, Response: whisk.NewResponse(status, out), Logs: []string{},
				}
				act.Annotate(m.Action, whisk.Timings{Run: d}, false)
				act.SetCause(m.Cause)
				b, _ := (&whisk.Completion{Activation: act}).AppendJSON(nil)
				if err := w.r.bus.Publish(ctx, whisk.CompletionTopic(w.r.c.cfg.ID), b); err != nil {
					if ctx.Err() == nil {
						w.t.Errorf("publish completion: %v", err)
					}
					return
				}
			}
			_ = cons.Commit(ctx, recs[len(recs)-1].Offset)
		}
	}()
}

// duration sums the durations the worker gave to msgs.
func (w *worker) duration(msgs ...whisk.ActivationMessage) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var sum int64
	for _, m := range msgs {
		sum += w.dur[m.ActivationID]
	}
	return sum
}

func (w *worker) messages(name string) []whisk.ActivationMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]whisk.ActivationMessage(nil), w.msgs[name]...)
}

// inc adds 1 to n.
func inc(p map[string]any) (any, int) {
	n, _ := p["n"].(float64)
	return map[string]any{"n": n + 1}, whisk.StatusSuccess
}

// fails returns an error result (application error).
func fails(p map[string]any) (any, int) {
	return map[string]any{"error": fmt.Sprintf("failed at %v", p["n"])}, whisk.StatusApplicationError
}

func sequence(name string, comps ...string) whisk.Action {
	a := action(name, nil, whisk.Params{{Key: "exec", Value: raw(`"sequence"`)}})
	a.Exec = whisk.Exec{Kind: whisk.KindSequence, Components: comps}
	a.Limits.Timeout = 30000
	a.Limits.Logs = 5
	return a
}

// seqRig is a controller with Components and Records, running, and a worker.
func seqRig(t *testing.T) (*rig, *fakeComponents, *worker) {
	t.Helper()
	r := newRig(t, "c0", nil, nil, whisk.DefaultSystemLimits())
	comps := &fakeComponents{actions: map[string]whisk.Action{}}
	r.c.deps.Components = comps
	r.c.deps.Records = r.store
	// Run creates the completion topic; the worker may answer before.
	if err := r.bus.EnsureTopic(context.Background(), whisk.CompletionTopic(r.c.cfg.ID)); err != nil {
		t.Fatal(err)
	}
	r.run(t)
	return r, comps, newWorker(t, r)
}

func annotationsOf(t *testing.T, a whisk.Activation) map[string]any {
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

func keysOf(a whisk.Activation) []string {
	var ks []string
	for _, kv := range a.Annotations {
		ks = append(ks, kv.Key)
	}
	return ks
}

func resultOf(t *testing.T, a whisk.Activation) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Response.Result, &m); err != nil {
		t.Fatalf("result %s: %v", a.Response.Result, err)
	}
	return m
}

func TestSequenceBlocking(t *testing.T) {
	r, comps, w := seqRig(t)
	big := action("inc", whisk.Params{{Key: "dflt", Value: raw("1")}}, nil)
	small := action("inc2", nil, nil)
	small.Limits.Memory = 128
	big.Limits.Memory = 512
	comps.put(big)
	comps.put(small)
	w.serve(big, inc)
	w.serve(small, inc)
	seq := sequence("s", "/guest/inc", "/guest/inc2", "/guest/inc")

	res, err := r.c.Invoke(context.Background(), Request{TransactionID: "tid", Identity: guest(), Action: seq,
		Params: raw(`{"n":10}`), Blocking: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Activation == nil {
		t.Fatalf("blocking sequence answered with the id only")
	}
	rec := *res.Activation
	if got := resultOf(t, rec); got["n"] != float64(13) {
		t.Fatalf("result %v, want n 13", got)
	}
	// Each component ran once, in order, caused by the sequence; the first
	// got the invoke payload merged over its defaults, the next ones the
	// previous result.
	m1, m2 := w.messages("inc"), w.messages("inc2")
	if len(m1) != 2 || len(m2) != 1 {
		t.Fatalf("runs: inc %d, inc2 %d", len(m1), len(m2))
	}
	for _, m := range append(m1, m2...) {
		if m.Cause != rec.ActivationID || !m.Blocking || m.TransactionID != "tid" {
			t.Fatalf("component message %+v", m)
		}
	}
	if string(m1[0].Params) != `{"dflt":1,"n":10}` || string(m2[0].Params) != `{"n":11}` || string(m1[1].Params) != `{"dflt":1,"n":12}` {
		t.Fatalf("inputs %s, %s, %s", m1[0].Params, m2[0].Params, m1[1].Params)
	}
	wantLogs := []string{string(m1[0].ActivationID), string(m2[0].ActivationID), string(m1[1].ActivationID)}
	if !reflect.DeepEqual(rec.Logs, wantLogs) {
		t.Fatalf("logs %v, want %v", rec.Logs, wantLogs)
	}
	// The record, field by field (reference §2.3).
	if rec.Namespace != "guest" || rec.Name != "s" || rec.Version != "0.0.1" || rec.Subject != "guest" ||
		rec.Cause != "" || rec.StatusCode != whisk.StatusSuccess || !rec.Response.Success || rec.Publish {
		t.Fatalf("record %+v", rec)
	}
	sum := w.duration(append(m1, m2...)...)
	if rec.Duration != sum || rec.End < rec.Start {
		t.Fatalf("duration %d, want %d (sum); start %d end %d", rec.Duration, sum, rec.Start, rec.End)
	}
	if ks := keysOf(rec); !reflect.DeepEqual(ks, []string{"topmost", "path", "kind", "waitTime", "limits"}) {
		t.Fatalf("annotation keys %v", ks)
	}
	anns := annotationsOf(t, rec)
	wantLimits := map[string]any{"timeout": float64(30000), "memory": float64(512), "logs": float64(5), "concurrency": float64(1)}
	if anns["topmost"] != true || anns["path"] != "guest/s" || anns["kind"] != "sequence" ||
		!reflect.DeepEqual(anns["limits"], wantLimits) {
		t.Fatalf("annotations %v", anns)
	}
	if wt, ok := anns["waitTime"].(float64); !ok || wt < 0 {
		t.Fatalf("waitTime %v", anns["waitTime"])
	}
	if stored := r.store.record(t, rec.ActivationID); !reflect.DeepEqual(stored, rec) {
		t.Fatalf("stored %+v\nanswered %+v", stored, rec)
	}
}

func TestSequenceErrorStopsChain(t *testing.T) {
	r, comps, w := seqRig(t)
	a, f := action("inc", nil, nil), action("fail", nil, nil)
	comps.put(a)
	comps.put(f)
	w.serve(a, inc)
	w.serve(f, fails)
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(),
		Action: sequence("s", "/guest/inc", "/guest/fail", "/guest/inc"), Params: raw(`{"n":1}`), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	if rec.StatusCode != whisk.StatusApplicationError || rec.Response.Status != "application error" ||
		resultOf(t, rec)["error"] != "failed at 2" {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if len(w.messages("inc")) != 1 || len(rec.Logs) != 2 || rec.Logs[1] != string(w.messages("fail")[0].ActivationID) {
		t.Fatalf("inc ran %d times; logs %v", len(w.messages("inc")), rec.Logs)
	}
}

func TestSequenceNonBlockingAndNested(t *testing.T) {
	r, comps, w := seqRig(t)
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	inner := sequence("inner", "/guest/inc", "/guest/inc")
	comps.put(inner)
	outer := sequence("outer", "/guest/inc", "/guest/inner", "/guest/inc")

	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: outer, Params: raw(`{"n":0}`)})
	if err != nil || res.Activation != nil || len(res.ActivationID) != 32 {
		t.Fatalf("non-blocking: %+v %v", res, err)
	}
	rec := r.store.record(t, res.ActivationID)
	if got := resultOf(t, rec); got["n"] != float64(4) {
		t.Fatalf("result %v", got)
	}
	msgs := w.messages("inc")
	if len(msgs) != 4 || len(rec.Logs) != 3 {
		t.Fatalf("inc ran %d times; logs %v", len(msgs), rec.Logs)
	}
	// The nested sequence contributes its own id; its steps name it as cause.
	innerRec := r.store.record(t, whisk.ActivationID(rec.Logs[1]))
	if innerRec.Cause != rec.ActivationID || innerRec.Name != "inner" {
		t.Fatalf("inner record %+v", innerRec)
	}
	if ks := keysOf(innerRec); !reflect.DeepEqual(ks, []string{"topmost", "path", "kind", "causedBy", "waitTime", "limits"}) {
		t.Fatalf("inner annotation keys %v", ks)
	}
	if anns := annotationsOf(t, innerRec); anns["topmost"] != false || anns["causedBy"] != "sequence" {
		t.Fatalf("inner annotations %v", anns)
	}
	causes := map[whisk.ActivationID]int{}
	for _, m := range msgs {
		causes[m.Cause]++
	}
	if causes[rec.ActivationID] != 2 || causes[innerRec.ActivationID] != 2 {
		t.Fatalf("causes %v", causes)
	}
	if rec.Logs[0] != string(msgs[0].ActivationID) || rec.Logs[2] != string(msgs[3].ActivationID) ||
		!reflect.DeepEqual(innerRec.Logs, []string{string(msgs[1].ActivationID), string(msgs[2].ActivationID)}) {
		t.Fatalf("logs outer %v inner %v", rec.Logs, innerRec.Logs)
	}
	if innerRec.Duration != w.duration(msgs[1], msgs[2]) || rec.Duration != innerRec.Duration+w.duration(msgs[0], msgs[3]) {
		t.Fatalf("duration %d", rec.Duration)
	}
}

func TestSequenceDynamicLimit(t *testing.T) {
	r, comps, w := seqRig(t)
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	thirty := make([]string, 30)
	for i := range thirty {
		thirty[i] = "/guest/inc"
	}
	comps.put(sequence("thirty", thirty...))
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(),
		Action: sequence("s", "/guest/thirty", "/guest/thirty"), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	if rec.StatusCode != whisk.StatusApplicationError || resultOf(t, rec)["error"] != whisk.MsgSequenceTooLong {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if n := len(w.messages("inc")); n != MaxSequenceLength {
		t.Fatalf("%d atomic actions ran, want %d", n, MaxSequenceLength)
	}
	second := r.store.record(t, whisk.ActivationID(rec.Logs[1]))
	if len(second.Logs) != 20 || resultOf(t, second)["error"] != whisk.MsgSequenceTooLong {
		t.Fatalf("second inner: %d logs, %s", len(second.Logs), second.Response.Result)
	}
}

func TestSequenceComponentGoneForbiddenAndTimeout(t *testing.T) {
	r, comps, w := seqRig(t)
	r.c.stepGrace = 10 * time.Millisecond
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	ctx := context.Background()

	// Missing at run time: application error, nothing more runs.
	res, err := r.c.Invoke(ctx, Request{Identity: guest(), Action: sequence("s", "/guest/inc", "/guest/gone", "/guest/inc"), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	if rec := *res.Activation; rec.StatusCode != whisk.StatusApplicationError ||
		resultOf(t, rec)["error"] != whisk.MsgSequenceComponentGone || len(rec.Logs) != 1 {
		t.Fatalf("gone: %+v %s", rec, rec.Response.Result)
	}

	// Not entitled: 403 naming the components, nothing runs.
	before := len(w.messages("inc"))
	_, err = r.c.Invoke(ctx, Request{Identity: guest(), Action: sequence("s", "/other/b", "/guest/inc", "/other/a")})
	if !whisk.IsKind(err, whisk.Forbidden) || whisk.UserMessage(err) != whisk.MsgNotAuthorized("other/a, other/b") {
		t.Fatalf("forbidden: %v", err)
	}
	if len(w.messages("inc")) != before {
		t.Fatal("a component ran for a refused sequence")
	}

	// No completion within the component's limit + grace, no record:
	// OpenWhisk's timeout message, the component's id in the logs.
	slow := action("slow", nil, nil)
	slow.Limits.Timeout = 100
	comps.put(slow)
	w.serve(slow, nil)
	res, err = r.c.Invoke(ctx, Request{Identity: guest(), Action: sequence("s", "/guest/slow", "/guest/inc"), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	sid := w.messages("slow")[0].ActivationID
	if rec.StatusCode != whisk.StatusWhiskError || resultOf(t, rec)["error"] != whisk.MsgSequenceTimeout(sid) ||
		!reflect.DeepEqual(rec.Logs, []string{string(sid)}) {
		t.Fatalf("timeout: %+v %s", rec, rec.Response.Result)
	}
	if _, ok := annotationsOf(t, rec)["limits"]; ok {
		t.Fatal("limits annotation without any component record")
	}
}

// Close ends a running chain with a record, written before Close returns.
func TestSequenceEndsOnClose(t *testing.T) {
	r, comps, w := seqRig(t)
	stuck := action("stuck", nil, nil)
	comps.put(stuck)
	w.serve(stuck, nil) // takes the activation, never answers
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: sequence("s", "/guest/stuck")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the step published", func() bool { return len(w.messages("stuck")) == 1 })
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
	r.store.mu.Lock()
	rec, ok := r.store.recs[res.ActivationID]
	r.store.mu.Unlock()
	if !ok || rec.StatusCode != whisk.StatusWhiskError || resultOf(t, rec)["error"] != whisk.MsgSequenceFailed ||
		!reflect.DeepEqual(rec.Logs, []string{string(w.messages("stuck")[0].ActivationID)}) {
		t.Fatalf("record after Close: %v %+v", ok, rec)
	}
}

// Packaged components and sequences: a component reached through a
// binding is invoked with it (its record's binding annotation); a packaged
// sequence's record has its bare name, its path and, when invoked through
// a binding, the binding annotation after waitTime.
func TestSequencePackagedAndBound(t *testing.T) {
	r, comps, w := seqRig(t)
	inc := action("pkg/inc", nil, nil) // stored name of inc in package pkg
	comps.actions["guest/bnd/inc"] = inc
	comps.bindings = map[string]string{"guest/bnd/inc": "guest/bnd"}
	w.serve(inc, func(p map[string]any) (any, int) { return map[string]any{"ok": true}, whisk.StatusSuccess })
	seq := sequence("pkg/s", "/guest/bnd/inc")
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: seq, Binding: "guest/sb", Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	m := w.messages("pkg/inc")
	if len(m) != 1 || m[0].Binding != "guest/bnd" || m[0].Action.Name != "pkg/inc" || m[0].Cause != rec.ActivationID {
		t.Fatalf("component message %+v", m)
	}
	if ks := keysOf(rec); !reflect.DeepEqual(ks, []string{"topmost", "path", "kind", "waitTime", "binding", "limits"}) {
		t.Fatalf("annotation keys %v", ks)
	}
	if anns := annotationsOf(t, rec); rec.Name != "s" || anns["path"] != "guest/pkg/s" || anns["binding"] != "guest/sb" {
		t.Fatalf("record name %q, annotations %v", rec.Name, anns)
	}
}

// A blocking caller whose wait ends first gets the sequence's id (202)
// while the chain goes on and records its end.
func TestSequenceBlockingWaitEndsFirst(t *testing.T) {
	r, comps, w := seqRig(t)
	hold := make(chan struct{})
	gated := action("gated", nil, nil)
	comps.put(gated)
	w.serve(gated, func(p map[string]any) (any, int) { <-hold; return inc(p) })
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: sequence("s", "/guest/gated"),
		Params: raw(`{"n":1}`), Blocking: true, Wait: 20 * time.Millisecond})
	if err != nil || res.Activation != nil || len(res.ActivationID) != 32 {
		t.Fatalf("%+v %v", res, err)
	}
	close(hold)
	if rec := r.store.record(t, res.ActivationID); resultOf(t, rec)["n"] != float64(2) || len(rec.Logs) != 1 {
		t.Fatalf("record %+v %s", rec, rec.Response.Result)
	}
}
