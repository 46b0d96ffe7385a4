package controller

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext reads and writes W3C traceparent values.
var traceContext propagation.TraceContext

// noEnd ends no span.
func noEnd() {}

// traceInvoke starts the invocation's span, a child of the caller's
// traceparent (msg.TraceParent) when it has one, and puts the span's
// context in msg.TraceParent for the queue and the invoker. Without a
// Deps.Tracer it does nothing: msg keeps the caller's traceparent.
func (c *Controller) traceInvoke(ctx context.Context, msg *whisk.ActivationMessage) (context.Context, func()) {
	if c.deps.Tracer == nil {
		return ctx, noEnd
	}
	if msg.TraceParent != "" {
		ctx = traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": msg.TraceParent})
	}
	ctx, span := c.deps.Tracer.Start(ctx, "eddy.controller.invoke", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("eddy.activation_id", string(msg.ActivationID)),
			attribute.String("eddy.action", msg.Action.FQN().String()),
			attribute.Bool("eddy.blocking", msg.Blocking),
		))
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	msg.TraceParent = carrier["traceparent"]
	return ctx, func() { span.End() }
}
