package main

// A process's metrics (internal/metrics, docs/operations.md): one
// Prometheus registry per process, the families of the roles it runs, and
// where they are served — on standalone's API port at /metrics, and on
// --metrics-addr for every command.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/metrics"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// procMetrics are one process's metric families, on its own registry.
type procMetrics struct {
	reg      *prometheus.Registry
	events   *metrics.UserEvents
	regrants *prometheus.CounterVec
	ctl      *metrics.Controller      // nil until a controller is wired
	traces   *sdktrace.TracerProvider // nil: tracing is off (--otlp-endpoint)
}

func newProcMetrics() (*procMetrics, error) {
	m := &procMetrics{reg: metrics.NewRegistry()}
	var err error
	if m.events, err = metrics.NewUserEvents(m.reg, metrics.DefaultMaxActions); err != nil {
		return nil, err
	}
	if m.regrants, err = metrics.NewLeaseRegrants(m.reg); err != nil {
		return nil, err
	}
	return m, nil
}

// records counts the activation records written through st in OpenWhisk's
// user-event families, as they are stored.
func (m *procMetrics) records(st store.Store) store.Store {
	if m == nil {
		return st
	}
	return &countedStore{Store: st, events: m.events}
}

// countedStore is a store whose PutActivation feeds the user events.
type countedStore struct {
	store.Store
	events *metrics.UserEvents
}

func (s *countedStore) PutActivation(ctx context.Context, a whisk.Activation) error {
	if err := s.Store.PutActivation(ctx, a); err != nil {
		return err
	}
	s.events.Record(&a)
	return nil
}

// controller returns the controller's observer, registering its families
// once.
func (m *procMetrics) controller() (controller.Observer, error) {
	if m == nil {
		return nil, nil
	}
	if m.ctl == nil {
		c, err := metrics.NewController(m.reg)
		if err != nil {
			return nil, err
		}
		m.ctl = c
	}
	return m.ctl, nil
}

// api wraps the API's handler: requests are counted, and GET /metrics is
// answered on the API port too, as OpenWhisk's controller does.
func (m *procMetrics) api(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	if m.ctl != nil {
		h = m.ctl.Requests(h)
	}
	mh := metrics.Handler(m.reg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			mh.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// scheduler registers a scheduler's families and counts its lease's
// re-grants.
func (m *procMetrics) scheduler(s *scheduler.Scheduler, session *cluster.Session) error {
	if m == nil {
		return nil
	}
	m.session("scheduler", session)
	return metrics.NewScheduler(m.reg, s, metrics.DefaultMaxQueues)
}

// invoker registers an invoker's families, has timed (its backend,
// made by backend) report creations to them, and counts its lease's
// re-grants.
func (m *procMetrics) invoker(i *invoker.Invoker, session *cluster.Session, timed container.Backend) error {
	if m == nil {
		return nil
	}
	m.session("invoker", session)
	mi, err := metrics.NewInvoker(m.reg, i)
	if err != nil {
		return err
	}
	if ib, ok := timed.(*invokerBackend); ok {
		ib.set(mi)
	}
	return nil
}

func (m *procMetrics) session(role string, s *cluster.Session) {
	c := m.regrants.WithLabelValues(role)
	s.OnRegrant(func(context.Context) { c.Inc() })
}

// invokerBackend is the backend an invoker gets: it reports each
// container creation to the invoker's families once set (they need the
// invoker, which needs the backend).
type invokerBackend struct {
	container.Backend
	mi atomic.Pointer[metrics.Invoker]
}

func (b *invokerBackend) set(mi *metrics.Invoker) { b.mi.Store(mi) }

func (b *invokerBackend) Create(ctx context.Context, spec container.Spec) (container.Container, error) {
	began := time.Now()
	c, err := b.Backend.Create(ctx, spec)
	if mi := b.mi.Load(); mi != nil {
		mi.Created(spec.Kind, time.Since(began), err)
	}
	return c, err
}

// backend wraps an invoker's backend (see invoker); without metrics it is
// b itself.
func (m *procMetrics) backend(b container.Backend) container.Backend {
	if m == nil {
		return b
	}
	return &invokerBackend{Backend: b}
}

// serve serves /metrics on addr (--metrics-addr) until ctx ends; "" is
// off.
func (m *procMetrics) serve(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	if m == nil || addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(m.reg))
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return serveSide(ctx, ln, mux, "metrics", log), nil
}

// startMetrics makes the process's metrics (t.obs) and serves them on
// --metrics-addr until ctx ends; with --otlp-endpoint, it exports traces
// there (stop flushes them).
func (t *tuning) startMetrics(ctx context.Context, log *slog.Logger) (stop func(), err error) {
	if t.obs, err = newProcMetrics(); err != nil {
		return nil, err
	}
	if t.otlpEndpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpTracesURL(t.otlpEndpoint)))
		if err != nil {
			return nil, fmt.Errorf("--otlp-endpoint: %w", err)
		}
		t.obs.traces = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "eddy"))))
		log.Info("traces", "otlp", t.otlpEndpoint)
	}
	stopServe, err := t.obs.serve(ctx, t.metricsAddr, log)
	if err != nil {
		return nil, err
	}
	return func() {
		stopServe()
		if t.obs.traces != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = t.obs.traces.Shutdown(sctx)
		}
	}, nil
}

// tracer is the tracer of a role's spans; nil when tracing is off, so the
// roles make none.
func (m *procMetrics) tracer(role string) trace.Tracer {
	if m == nil || m.traces == nil {
		return nil
	}
	return m.traces.Tracer("github.com/eddy-faas/eddy/" + role)
}

// otlpTracesURL is the traces URL of an OTLP/HTTP endpoint: a URL without
// a path (http://collector:4318) gets OTLP's /v1/traces, as
// OTEL_EXPORTER_OTLP_ENDPOINT does; one with a path is used as is.
func otlpTracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}
