package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/whisk"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTraceparentPropagates: a caller's traceparent reaches the bus
// message as is without a tracer; with one, the controller's span is a
// child of the caller's and the message carries the span's context, in
// the same trace. A request without traceparent starts a new trace only
// when there is a tracer.
func TestTraceparentPropagates(t *testing.T) {
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tp := "00-" + traceID + "-" + parent + "-01"
	rec := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, traced := range []bool{false, true} {
		s1 := &fakeScheduler{id: "s1"}
		d := &dialer{scheds: map[string]*fakeScheduler{"s1:1": s1}}
		b := memory.New(nil)
		st := &fakeStore{recs: map[whisk.ActivationID]whisk.Activation{}}
		deps := Deps{Bus: b, Cluster: &fakeCluster{scheds: []whisk.SchedulerInfo{{ID: "s1", Addr: "s1:1"}}},
			Activations: st, DialScheduler: d.dial,
			Components: &fakeComponents{actions: map[string]whisk.Action{}}, Records: st}
		if traced {
			deps.Tracer = provider.Tracer("test")
		}
		c, err := New(Config{ID: "ctl", Limits: whisk.DefaultSystemLimits()}, deps)
		if err != nil {
			t.Fatal(err)
		}
		a := action("traced", nil, nil)
		cons := queueConsumer(t, b, a)
		if _, err := c.Invoke(context.Background(), Request{Identity: guest(), Action: a, TraceParent: tp}); err != nil {
			t.Fatal(err)
		}
		m := nextMessage(t, cons)
		if _, err := c.Invoke(context.Background(), Request{Identity: guest(), Action: a}); err != nil {
			t.Fatal(err)
		}
		plain := nextMessage(t, cons)
		_ = c.Close()
		if !traced {
			if m.TraceParent != tp || plain.TraceParent != "" {
				t.Errorf("without a tracer: traceparents %q and %q, want %q and none", m.TraceParent, plain.TraceParent, tp)
			}
			if n := len(rec.Ended()); n != 0 {
				t.Errorf("without a tracer: %d spans", n)
			}
			continue
		}
		if whisk.TraceIDOf(m.TraceParent) != traceID || strings.Contains(m.TraceParent, parent) {
			t.Errorf("with a tracer: message traceparent %q, want trace %s under a span of the controller", m.TraceParent, traceID)
		}
		if whisk.TraceIDOf(plain.TraceParent) == "" || whisk.TraceIDOf(plain.TraceParent) == traceID {
			t.Errorf("with a tracer, no traceparent: message traceparent %q, want a new trace", plain.TraceParent)
		}
		spans := rec.Ended()
		if len(spans) != 2 {
			t.Fatalf("%d spans, want 2", len(spans))
		}
		s := spans[0]
		if s.Name() != "eddy.controller.invoke" || s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parent ||
			!strings.Contains(m.TraceParent, s.SpanContext().SpanID().String()) {
			t.Errorf("span %s trace %s parent %s, message %q: want the controller's span under the caller's, named in the message",
				s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID(), m.TraceParent)
		}
	}
}
