package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Controller is the controller's families: the API's requests by route
// and code (Requests), and what the invoke path tells it as its
// controller.Observer: bus publications, throttles and blocking waits.
type Controller struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	throttled *prometheus.CounterVec
	// OpenWhisk's user-event limit families (PrometheusRecorder.scala),
	// by the caller's namespace: the controller is where throttles happen.
	limitConcurrent, limitTimed *prometheus.CounterVec
	namespaces                  *labelCap[string]
	waits                       *prometheus.CounterVec
	waitSeconds                 prometheus.Histogram
	publish                     prometheus.Histogram
	publishFails                prometheus.Counter
}

// latencyBuckets are the buckets of the request and blocking-wait
// histograms (seconds): sub-millisecond answers up to the longest
// blocking wait.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewController registers the controller's families on reg.
func NewController(reg prometheus.Registerer) (*Controller, error) {
	c := &Controller{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_controller_requests_total",
			Help: "API requests by route (a pattern, e.g. /api/v1/namespaces/{ns}/actions/{name}), method and HTTP status code"},
			[]string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eddy_controller_request_duration_seconds",
			Help: "API request latency by route", Buckets: latencyBuckets},
			[]string{"route"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_controller_throttled_total",
			Help: "Invocations refused at a limit, by the limit (reason)"}, []string{"reason"}),
		limitConcurrent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_limit_concurrent_total",
			Help: "a user has exceeded its limit for concurrent invocations"}, []string{labelNamespace}),
		limitTimed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_limit_timed_total",
			Help: "the user has reached its per minute limit for the number of invocations"}, []string{labelNamespace}),
		namespaces: &labelCap[string]{max: DefaultMaxActions, other: OtherLabel},
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_controller_blocking_waits_total",
			Help: "Blocking invocations' waits for their completion, by how they ended (completed, timeout, cancelled)"}, []string{"outcome"}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eddy_controller_blocking_wait_seconds",
			Help: "How long blocking invocations waited for their completion", Buckets: latencyBuckets}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eddy_controller_bus_publish_seconds",
			Help: "Latency of publishing an activation message on the bus", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		publishFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "eddy_controller_bus_publish_errors_total",
			Help: "Activation messages the bus refused (the invocation got 503)"}),
	}
	if err := register(reg, c.requests, c.latency, c.throttled, c.limitConcurrent, c.limitTimed, c.waits, c.waitSeconds, c.publish, c.publishFails); err != nil {
		return nil, err
	}
	for _, o := range []string{"completed", "timeout", "cancelled"} {
		c.waits.WithLabelValues(o) // present at 0 from the start
	}
	return c, nil
}

// Published implements controller.Observer.
func (c *Controller) Published(took time.Duration, err error) {
	if err != nil {
		c.publishFails.Inc()
		return
	}
	c.publish.Observe(took.Seconds())
}

// Throttled implements controller.Observer.
func (c *Controller) Throttled(namespace, limit string) {
	c.throttled.WithLabelValues(limit).Inc()
	ns := c.namespaces.label(namespace)
	switch limit {
	case whisk.LimitConcurrentContainers:
		c.limitConcurrent.WithLabelValues(ns).Inc()
	case whisk.LimitInvocationsPerMinute:
		c.limitTimed.WithLabelValues(ns).Inc()
	}
}

// Waited implements controller.Observer.
func (c *Controller) Waited(took time.Duration, outcome string) {
	c.waits.WithLabelValues(outcome).Inc()
	c.waitSeconds.Observe(took.Seconds())
}

// Requests wraps the API's handler, counting its requests by route,
// method and code, and timing them.
func (c *Controller) Requests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := Route(r.URL.Path)
		c.requests.WithLabelValues(route, method(r.Method), strconv.Itoa(rec.code)).Inc()
		c.latency.WithLabelValues(route).Observe(time.Since(began).Seconds())
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes on (server-sent events).
func (w *statusWriter) Flush() {
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// method bounds the method label to the methods the API serves.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// Route is the route label of a request path: the API's pattern with
// names replaced ({ns}, {name}), so that the label's values are bounded.
func Route(path string) string {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) >= 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "namespaces":
		switch len(seg) {
		case 3:
			return "/api/v1/namespaces"
		case 4:
			return "/api/v1/namespaces/{ns}"
		case 5:
			return "/api/v1/namespaces/{ns}/" + collection(seg[4])
		default:
			return "/api/v1/namespaces/{ns}/" + collection(seg[4]) + "/{name}"
		}
	case len(seg) >= 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "web":
		return "/api/v1/web/{path}"
	case len(seg) >= 2 && seg[0] == "eddy" && seg[1] == "ui":
		return "/eddy/ui/"
	}
	switch p := "/" + strings.Join(seg, "/"); p {
	case "/", "/api", "/api/v1", "/eddy/v1/status", "/metrics", "/ping", "/api/v1/api-docs":
		return p
	}
	if len(seg) >= 2 && seg[0] == "api" {
		return "/api/{other}"
	}
	return "other"
}

// collection bounds the collection segment of a namespace path.
func collection(s string) string {
	switch s {
	case "actions", "activations", "triggers", "rules", "packages", "limits", "apis":
		return s
	}
	return "{other}"
}
