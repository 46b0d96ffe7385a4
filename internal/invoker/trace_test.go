package invoker_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTracedActivation: an activation whose message carries a traceparent
// gets the trace id in its record and, with a tracer, the spans of its
// hops (queue, activation, init, run) in that trace under the given
// parent; one without a traceparent gets neither.
func TestTracedActivation(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnvWith(t, invoker.Config{}, etcd, envWrap{tracer: tp.Tracer("test")})
	a := e.putAction("traced", "python:3.11", helloPy, whisk.Limits{})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m := &whisk.ActivationMessage{
		ActivationID: whisk.NewActivationID(), TransactionID: whisk.NewTransactionID(),
		Action: a.Meta(), Subject: "guest", Params: json.RawMessage(`{"name":"T"}`),
		Blocking: true, ControllerID: "c0", Published: time.Now().UnixMilli(),
		TraceParent: "00-" + traceID + "-" + parent + "-01",
	}
	e.stub.queue <- m
	cold := e.completion(30 * time.Second)
	if got, _ := annotation(cold, whisk.AnnTraceID); got != `"`+traceID+`"` {
		t.Errorf("traced record's %s annotation %q, want %q", whisk.AnnTraceID, got, traceID)
	}
	plain := e.invoke(a, `{"name":"U"}`)
	if _, ok := annotation(plain, whisk.AnnTraceID); ok {
		t.Errorf("a record without a traceparent has a trace id: %v", plain.Annotations)
	}

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		spans[s.Name()] = s
	}
	if len(rec.Ended()) != 4 {
		t.Errorf("%d spans, want 4 (queue, activation, init, run) of the traced activation only", len(rec.Ended()))
	}
	for _, name := range []string{"eddy.queue", "eddy.invoker.activation"} {
		if s, ok := spans[name]; !ok || s.Parent().SpanID().String() != parent {
			t.Errorf("span %s: present %v, want it under the caller's span %s", name, ok, parent)
		}
	}
	act := spans["eddy.invoker.activation"]
	for _, name := range []string{"eddy.container.init", "eddy.container.run"} {
		s, ok := spans[name]
		if !ok || act == nil || s.Parent().SpanID() != act.SpanContext().SpanID() {
			t.Errorf("span %s: present %v, want it under eddy.invoker.activation", name, ok)
			continue
		}
		if s.StartTime().Before(act.StartTime()) || s.EndTime().After(act.EndTime()) {
			t.Errorf("span %s [%v, %v] outside its activation's [%v, %v]", name, s.StartTime(), s.EndTime(), act.StartTime(), act.EndTime())
		}
	}
}
