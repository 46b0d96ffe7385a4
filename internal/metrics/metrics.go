// Package metrics is Eddy's Prometheus instrumentation: OpenWhisk's
// user-event metric families (userevents.go, the same names, labels and
// units as OpenWhisk's user-events service), and each role's own families
// (controller.go, scheduler.go, invoker.go), registered on a registry each
// process makes (NewRegistry) and served in Prometheus's text format by
// Handler. docs/operations.md says what each family means.
//
// The roles do not import this package. The scheduler and the invoker
// publish their figures as Stats, read here at scrape time; the
// controller's invoke path tells a controller.Observer, which Controller
// implements; records are counted where they are stored (UserEvents.Record).
// Nothing here is global: every family lives on the registry it is given.
package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry makes a process's registry, with the Go runtime's and the
// process's collectors on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg's families in Prometheus's text format (GET /metrics).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// register registers cs on reg, stopping at the first error.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// labelCap keeps at most max distinct label values (one label's, or one
// label set's); later ones are counted as other, so that a scrape does
// not grow without bound.
type labelCap[K comparable] struct {
	max   int
	other K
	mu    sync.Mutex
	seen  map[K]struct{}
}

func (c *labelCap[K]) label(v K) K {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return c.other
	}
	if c.seen == nil {
		c.seen = map[K]struct{}{}
	}
	c.seen[v] = struct{}{}
	return v
}
