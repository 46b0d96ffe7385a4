package invoker

import (
	"context"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext reads W3C traceparent values.
var traceContext propagation.TraceContext

// traced marks the record of an activation whose message carries a trace
// context with the trace's id (whisk.AnnTraceID), and, with a
// Deps.Tracer, records its spans after the fact from the times the proxy
// measured: eddy.queue (from publication until the container took it),
// eddy.invoker.activation, and under it eddy.container.init (cold starts)
// and eddy.container.run. Without a trace context it does nothing.
func (inv *Invoker) traced(msg *whisk.ActivationMessage, rec *whisk.Activation, begin time.Time, initMs int64,
	runBegin time.Time, runMs int64, ran bool, end time.Time) {
	if !markTrace(msg, rec) {
		return
	}
	tr := inv.d.Tracer
	if tr == nil {
		return
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": msg.TraceParent})
	activation := attribute.String("eddy.activation_id", string(msg.ActivationID))
	if msg.Published > 0 {
		_, q := tr.Start(ctx, "eddy.queue", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithTimestamp(time.UnixMilli(msg.Published)), trace.WithAttributes(activation))
		q.End(trace.WithTimestamp(begin))
	}
	actx, span := tr.Start(ctx, "eddy.invoker.activation", trace.WithTimestamp(begin), trace.WithAttributes(
		activation,
		attribute.String("eddy.action", msg.Action.FQN().String()),
		attribute.String("eddy.invoker", inv.cfg.ID),
		attribute.Int("eddy.status_code", rec.StatusCode),
	))
	if initMs > 0 {
		_, s := tr.Start(actx, "eddy.container.init", trace.WithTimestamp(begin))
		s.End(trace.WithTimestamp(begin.Add(time.Duration(initMs) * time.Millisecond)))
	}
	if ran {
		_, s := tr.Start(actx, "eddy.container.run", trace.WithTimestamp(runBegin))
		s.End(trace.WithTimestamp(runBegin.Add(time.Duration(runMs) * time.Millisecond)))
	}
	span.End(trace.WithTimestamp(end))
}

// markTrace marks rec with the trace id of msg's trace context
// (whisk.AnnTraceID); it reports whether msg has one.
func markTrace(msg *whisk.ActivationMessage, rec *whisk.Activation) bool {
	id := whisk.TraceIDOf(msg.TraceParent)
	if id == "" {
		return false
	}
	rec.Annotations = rec.Annotations.Merge(whisk.Params{{Key: whisk.AnnTraceID, Value: whisk.AppendJSONString(nil, id)}})
	return true
}
