package metrics

import (
	"time"

	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/prometheus/client_golang/prometheus"
)

// InvokerStats is what the invoker's families read at each scrape
// (*invoker.Invoker has it).
type InvokerStats interface {
	Stats() invoker.Stats
}

// Invoker is the invoker's families: containers by state, memory and /run
// errors read at each scrape, and container creations, which the
// invoker's container backend reports (Created).
type Invoker struct {
	creations *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// invokerCollector reads an invoker's Stats at each scrape.
type invokerCollector struct {
	src                                     InvokerStats
	containers, running, memory, free, stem *prometheus.Desc
	runErrors                               *prometheus.Desc
}

// NewInvoker registers the invoker's families on reg.
func NewInvoker(reg prometheus.Registerer, src InvokerStats) (*Invoker, error) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	col := &invokerCollector{
		src:        src,
		containers: d("eddy_invoker_containers", "Containers by state: prewarm (idle stem cells), warm (an action's, idle), busy (running an activation)", "state"),
		running:    d("eddy_invoker_activations_running", "Activations running in this invoker's containers"),
		memory:     d("eddy_invoker_memory_bytes", "Memory this invoker hands to containers"),
		free:       d("eddy_invoker_memory_free_bytes", "Memory not held by a container or a stem cell"),
		stem:       d("eddy_invoker_memory_prewarm_bytes", "Memory held by idle stem cells (given up to a creation that needs it)"),
		runErrors:  d("eddy_invoker_run_errors_total", "Failed /run calls by kind: timeout, connection, exited, status, shutdown", "kind"),
	}
	inv := &Invoker{
		creations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_invoker_container_creations_total",
			Help: "Containers the backend created (stem cells included), by kind and outcome (ok, error)"}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eddy_invoker_container_creation_seconds",
			Help: "How long the backend took to create a container (until its runtime answered)", Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"kind"}),
	}
	if err := register(reg, col, inv.creations, inv.latency); err != nil {
		return nil, err
	}
	return inv, nil
}

// Created reports one container creation of kind by the backend.
func (i *Invoker) Created(kind string, took time.Duration, err error) {
	if err != nil {
		i.creations.WithLabelValues(kind, "error").Inc()
		return
	}
	i.creations.WithLabelValues(kind, "ok").Inc()
	i.latency.WithLabelValues(kind).Observe(took.Seconds())
}

func (c *invokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.containers, c.running, c.memory, c.free, c.stem, c.runErrors} {
		ch <- d
	}
}

func (c *invokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// With an action concurrency above 1, one container runs several
	// activations: busy counts containers at most.
	busy := min(st.Busy, st.Containers)
	gauge(c.containers, float64(st.Prewarm), "prewarm")
	gauge(c.containers, float64(st.Containers-busy), "warm")
	gauge(c.containers, float64(busy), "busy")
	gauge(c.running, float64(st.Busy))
	const mb = 1 << 20
	gauge(c.memory, float64(st.UserMemoryMB*mb))
	gauge(c.free, float64(st.FreeMemoryMB*mb))
	gauge(c.stem, float64(st.StemCellMB*mb))
	for k, n := range st.RunErrors {
		ch <- prometheus.MustNewConstMetric(c.runErrors, prometheus.CounterValue, float64(n), k)
	}
}
