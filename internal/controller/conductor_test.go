package controller

import (
	"context"
	"reflect"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// twoStep is a conductor: inc, then the action named by "next" (kept in
// its state), then the final n (boxed by the controller); an error fed
// back to it becomes its final params.
func twoStep(p map[string]any) (any, int) {
	if e, ok := p["error"]; ok {
		return map[string]any{"params": map[string]any{"recovered": e}}, whisk.StatusSuccess
	}
	switch step, _ := p["$step"].(float64); step {
	case 0:
		return map[string]any{"action": "inc", "params": map[string]any{"n": p["n"]},
			"state": map[string]any{"$step": 1, "next": p["next"]}}, whisk.StatusSuccess
	case 1:
		return map[string]any{"action": p["next"], "params": map[string]any{"n": p["n"]},
			"state": map[string]any{"$step": 2}}, whisk.StatusSuccess
	default:
		return map[string]any{"params": p["n"]}, whisk.StatusSuccess
	}
}

func conductor(name string) whisk.Action {
	return action(name, nil, whisk.Params{{Key: "conductor", Value: raw("true")}})
}

func TestConductorRunsComposition(t *testing.T) {
	r, comps, w := seqRig(t)
	a := action("inc", nil, nil)
	a.Limits.Memory = 512
	comps.put(a)
	w.serve(a, inc)
	cond := conductor("cond")
	cond.Limits.Timeout = 20000
	w.serve(cond, twoStep)

	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: cond,
		Params: raw(`{"n":1,"next":"/guest/inc"}`), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	if got := resultOf(t, rec); !reflect.DeepEqual(got, map[string]any{"value": float64(3)}) || rec.StatusCode != whisk.StatusSuccess {
		t.Fatalf("result %v (%d)", got, rec.StatusCode)
	}
	cm, im := w.messages("cond"), w.messages("inc")
	if len(cm) != 3 || len(im) != 2 {
		t.Fatalf("runs: conductor %d, inc %d", len(cm), len(im))
	}
	wantLogs := []string{string(cm[0].ActivationID), string(im[0].ActivationID), string(cm[1].ActivationID),
		string(im[1].ActivationID), string(cm[2].ActivationID)}
	if !reflect.DeepEqual(rec.Logs, wantLogs) {
		t.Fatalf("logs %v, want %v", rec.Logs, wantLogs)
	}
	for _, m := range append(cm, im...) {
		if m.Cause != rec.ActivationID {
			t.Fatalf("message %s has cause %q, want %s", m.ActivationID, m.Cause, rec.ActivationID)
		}
	}
	// The conductor's second run got the component's result with the
	// state over it.
	if string(cm[1].Params) != `{"$step":1,"n":2,"next":"/guest/inc"}` || string(im[0].Params) != `{"n":1}` {
		t.Fatalf("inputs: conductor %s, component %s", cm[1].Params, im[0].Params)
	}
	if rec.Name != "cond" || rec.Cause != "" || rec.Duration != w.duration(append(cm, im...)...) {
		t.Fatalf("record %+v", rec)
	}
	if ks := keysOf(rec); !reflect.DeepEqual(ks, []string{"topmost", "path", "kind", "conductor", "waitTime", "limits"}) {
		t.Fatalf("annotation keys %v", ks)
	}
	anns := annotationsOf(t, rec)
	wantLimits := map[string]any{"timeout": float64(20000), "memory": float64(512), "logs": float64(10), "concurrency": float64(1)}
	if anns["topmost"] != true || anns["path"] != "guest/cond" || anns["kind"] != "sequence" || anns["conductor"] != true ||
		!reflect.DeepEqual(anns["limits"], wantLimits) {
		t.Fatalf("annotations %v", anns)
	}
	if stored := r.store.record(t, rec.ActivationID); !reflect.DeepEqual(stored, rec) {
		t.Fatalf("stored %+v", stored)
	}
}

func TestConductorRecoverableErrors(t *testing.T) {
	r, comps, w := seqRig(t)
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	cond := conductor("cond")
	w.serve(cond, twoStep)
	for next, want := range map[string]string{
		`"nothere"`:  whisk.MsgCompositionNotFound("guest/nothere"),
		`"/other/x"`: whisk.MsgCompositionForbidden("other/x"),
		`"//"`:       whisk.MsgCompositionBadName(`"//"`),
		`7`:          whisk.MsgCompositionBadName(`7`),
	} {
		res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: cond,
			Params: raw(`{"n":1,"next":` + next + `}`), Blocking: true})
		if err != nil || res.Activation == nil {
			t.Fatalf("%s: %+v %v", next, res, err)
		}
		if got := resultOf(t, *res.Activation); got["recovered"] != want {
			t.Errorf("next %s: result %v, want recovered %q", next, got, want)
		}
		if n := len(res.Activation.Logs); n != 4 {
			t.Errorf("next %s: %d logs, want 4 (conductor, inc, conductor, conductor)", next, n)
		}
	}
}

func TestConductorLimits(t *testing.T) {
	r, comps, w := seqRig(t)
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	loop := conductor("loop")
	// Always asks for inc, even when told the composition is too long.
	w.serve(loop, func(map[string]any) (any, int) { return map[string]any{"action": "inc"}, whisk.StatusSuccess })
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(), Action: loop, Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	if rec.StatusCode != whisk.StatusApplicationError || resultOf(t, rec)["error"] != whisk.MsgCompositionTooLong {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if c, i := len(w.messages("loop")), len(w.messages("inc")); c != 2*MaxSequenceLength+1 || i != MaxSequenceLength {
		t.Fatalf("conductor ran %d times, inc %d", c, i)
	}
	if len(rec.Logs) != 3*MaxSequenceLength+1 {
		t.Fatalf("%d logs", len(rec.Logs))
	}
}

// A conductor's error result without "action" ends the composition with
// that result and status; a conductor inside a sequence is a nested
// composition, caused by the sequence.
func TestConductorErrorAndInSequence(t *testing.T) {
	r, comps, w := seqRig(t)
	bad := conductor("bad")
	comps.put(bad)
	w.serve(bad, fails)
	a := action("inc", nil, nil)
	comps.put(a)
	w.serve(a, inc)
	res, err := r.c.Invoke(context.Background(), Request{Identity: guest(),
		Action: sequence("s", "/guest/inc", "/guest/bad", "/guest/inc"), Params: raw(`{"n":0}`), Blocking: true})
	if err != nil || res.Activation == nil {
		t.Fatalf("%+v %v", res, err)
	}
	rec := *res.Activation
	if rec.StatusCode != whisk.StatusApplicationError || resultOf(t, rec)["error"] != "failed at 1" || len(rec.Logs) != 2 {
		t.Fatalf("sequence %+v %s", rec, rec.Response.Result)
	}
	comp := r.store.record(t, whisk.ActivationID(rec.Logs[1]))
	anns := annotationsOf(t, comp)
	if comp.Cause != rec.ActivationID || anns["topmost"] != false || anns["causedBy"] != "sequence" || anns["conductor"] != true ||
		comp.StatusCode != whisk.StatusApplicationError || len(comp.Logs) != 1 || w.messages("bad")[0].Cause != comp.ActivationID {
		t.Fatalf("composition record %+v", comp)
	}
}
