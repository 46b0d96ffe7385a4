package metrics

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/prometheus/client_golang/prometheus"
)

// OpenWhisk's user-event labels (MetricNames.scala in OpenWhisk's
// core/monitoring/user-events).
const (
	labelNamespace = "namespace" // the action's root namespace
	labelInitiator = "initiator" // the namespace of the subject that invoked it (the record's namespace)
	labelAction    = "action"    // the action's name relative to its namespace: "pkg/name" or "name"
	labelKind      = "kind"
	labelMemory    = "memory" // MB, as a string
	labelStatus    = "status"
	// labelStatusCode is the status code an action's result sets
	// (MetricNames.userDefinedStatusCode).
	labelStatusCode = "status_code"
	// labelContainerState is how an activation found its container
	// (containerStates).
	labelContainerState = "containerState"
)

// containerStates are OpenWhisk's containerState values of Eddy's start
// annotation (whisk.AnnStart).
var containerStates = map[string]string{whisk.StartCold: "cold", whisk.StartPrewarm: "prewarmed", whisk.StartWarm: "warmed"}

// OtherLabel replaces the namespace, initiator and action labels of the
// activations of actions past UserEvents' cap on distinct actions.
const OtherLabel = "other"

// DefaultMaxActions is the default cap on the distinct (namespace,
// initiator, action) label sets of the user-event families.
const DefaultMaxActions = 1000

// OpenWhisk's status label values (ActivationResponse.statusSuccess …).
var statusLabels = [4]string{"success", "application_error", "action_developer_error", "whisk_internal_error"}

// UserEvents are OpenWhisk's user-event metric families, counted from the
// activation records as they are stored, so that their counts agree with
// the records. The label set (namespace, initiator, action) of at most
// maxActions distinct actions is kept; the activations of further actions
// are counted under namespace, initiator and action "other" (their kind,
// memory and status labels are kept), so that a platform with many
// actions does not grow the scrape without bound.
type UserEvents struct {
	activations  *prometheus.CounterVec
	coldStarts   *prometheus.CounterVec
	status       *prometheus.CounterVec
	memory       *prometheus.GaugeVec
	waitTime     *prometheus.HistogramVec
	initTime     *prometheus.HistogramVec
	duration     *prometheus.HistogramVec
	responseSize *prometheus.HistogramVec
	statusCode   *prometheus.CounterVec
	// containerStarts is OpenWhisk's invoker counter of how each
	// activation found its container (ContainerPool.logContainerStart,
	// exported by Kamon under this name), which its dashboards chart.
	containerStarts *prometheus.CounterVec

	// actions caps the distinct (namespace, initiator, action) label sets.
	actions *labelCap[[3]string]
}

// NewUserEvents registers OpenWhisk's user-event families on reg, with at
// most maxActions distinct actions labelled (DefaultMaxActions when ≤ 0).
func NewUserEvents(reg prometheus.Registerer, maxActions int) (*UserEvents, error) {
	if maxActions <= 0 {
		maxActions = DefaultMaxActions
	}
	who := []string{labelNamespace, labelInitiator, labelAction}
	with := func(more ...string) []string { return append(append([]string{}, who...), more...) }
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, who)
	}
	// OpenWhisk's response size buckets: 10 linear buckets of its
	// activation entity limit (1 MB).
	sizes := prometheus.LinearBuckets(0, 1<<20, 10)
	u := &UserEvents{
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_activations_total", Help: "Activation Count"},
			with(labelKind, labelMemory)),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_coldStarts_total", Help: "Cold start counts"}, who),
		status: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_status", Help: "Activation failure status type"},
			with(labelStatus)),
		memory:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "openwhisk_action_memory", Help: "Memory consumption of the action containers"}, who),
		waitTime:     histogram("openwhisk_action_waitTime_seconds", "Internal system hold time", prometheus.DefBuckets),
		initTime:     histogram("openwhisk_action_initTime_seconds", "Time it took to initialize an action, e.g. docker init", prometheus.DefBuckets),
		duration:     histogram("openwhisk_action_duration_seconds", "Actual time the action code was running", prometheus.DefBuckets),
		responseSize: histogram("openwhisk_action_response_size_bytes", "Activation Response size", sizes),
		statusCode: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "openwhisk_action_status_code",
			Help: "status code returned in action result response set by developer"}, with(labelStatusCode)),
		containerStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "counter_invoker_containerStart_counter_total",
			Help: "activations by how they found their container: cold, prewarmed or warmed (OpenWhisk's invoker containerStart)"},
			with(labelContainerState)),
		actions: &labelCap[[3]string]{max: maxActions, other: [3]string{OtherLabel, OtherLabel, OtherLabel}},
	}
	if err := register(reg, u.activations, u.coldStarts, u.status, u.memory, u.waitTime, u.initTime, u.duration, u.responseSize, u.statusCode, u.containerStarts); err != nil {
		return nil, err
	}
	return u, nil
}

// Record counts one stored activation record. Records that are not an
// action's (a trigger's: no kind annotation) are not counted.
func (u *UserEvents) Record(a *whisk.Activation) {
	kind := a.Annotations.String(whisk.AnnKind)
	path := a.Annotations.String(whisk.AnnPath)
	if kind == "" || path == "" {
		return
	}
	ns, action, ok := strings.Cut(path, "/")
	if !ok {
		return
	}
	who := u.actions.label([3]string{ns, a.Namespace, action})
	var limits struct {
		Memory int64 `json:"memory"`
	}
	if raw, ok := a.Annotations.Get(whisk.AnnLimits); ok {
		_ = json.Unmarshal(raw, &limits)
	}
	mem := strconv.FormatInt(limits.Memory, 10)
	u.activations.WithLabelValues(who[0], who[1], who[2], kind, mem).Inc()
	u.memory.WithLabelValues(who[:]...).Set(float64(limits.Memory))
	// OpenWhisk counts a cold start when the activation ran /init.
	if initMs, ok := annInt(a.Annotations, whisk.AnnInitTime); ok && initMs > 0 {
		u.coldStarts.WithLabelValues(who[:]...).Inc()
		u.initTime.WithLabelValues(who[:]...).Observe(float64(initMs) / 1000)
	}
	wait, _ := annInt(a.Annotations, whisk.AnnWaitTime)
	u.waitTime.WithLabelValues(who[:]...).Observe(float64(wait) / 1000)
	u.duration.WithLabelValues(who[:]...).Observe(float64(a.Duration) / 1000)
	status := "unknown"
	if a.StatusCode >= 0 && a.StatusCode < len(statusLabels) {
		status = statusLabels[a.StatusCode]
	}
	u.status.WithLabelValues(who[0], who[1], who[2], status).Inc()
	size := len(a.Response.Result)
	if a.Response.Size != nil {
		size = *a.Response.Size
	}
	u.responseSize.WithLabelValues(who[:]...).Observe(float64(size))
	if state, ok := containerStates[a.Annotations.String(whisk.AnnStart)]; ok {
		u.containerStarts.WithLabelValues(who[0], who[1], who[2], state).Inc()
	}
	if code, ok := userStatusCode(a.Response.Result); ok {
		u.statusCode.WithLabelValues(who[0], who[1], who[2], strconv.Itoa(code)).Inc()
	}
}

// userStatusCode is the status code an action's result sets, as OpenWhisk's
// Activation event reads it (Message.scala, userDefinedStatusCode): the
// result's error.statusCode, else its statusCode; 400 when that is not an
// integer.
func userStatusCode(result json.RawMessage) (int, bool) {
	var r struct {
		Error      json.RawMessage `json:"error"`
		StatusCode json.RawMessage `json:"statusCode"`
	}
	if json.Unmarshal(result, &r) != nil {
		return 0, false
	}
	raw := r.StatusCode
	var inErr struct {
		StatusCode json.RawMessage `json:"statusCode"`
	}
	if json.Unmarshal(r.Error, &inErr) == nil && inErr.StatusCode != nil {
		raw = inErr.StatusCode
	}
	if raw == nil || string(raw) == "null" {
		return 0, false
	}
	// spray's BigInt format: a number, its fraction dropped; anything
	// else is OpenWhisk's BadRequest.
	var n float64
	if json.Unmarshal(raw, &n) != nil {
		return 400, true
	}
	return int(n), true
}

// annInt is an integer annotation's value.
func annInt(p whisk.Params, key string) (int64, bool) {
	raw, ok := p.Get(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	return n, err == nil
}
