package metrics

import (
	"sort"

	"github.com/eddy-faas/eddy/internal/queue"
	"github.com/eddy-faas/eddy/internal/scheduler"
	"github.com/prometheus/client_golang/prometheus"
)

// SchedulerStats is what the scheduler's families read at each scrape
// (*scheduler.Scheduler has it).
type SchedulerStats interface {
	Stats() scheduler.Stats
}

// DefaultMaxQueues is the default cap on the queues labelled one by one in
// the per-action scheduler families.
const DefaultMaxQueues = 100

// schedulerCollector reads a scheduler's Stats at each scrape.
type schedulerCollector struct {
	src       SchedulerStats
	maxQueues int

	queues, leaders, followers, length, oldest, parked *prometheus.Desc
	decisions, requested, created, failed, failovers   *prometheus.Desc
}

// NewScheduler registers the scheduler's families on reg, read from src at
// each scrape. The per-action families (queue length, age of the oldest
// activation) label at most maxQueues queues (DefaultMaxQueues when ≤ 0):
// the longest-waiting ones; the rest are summed (length) or maxed (age)
// under namespace and action "other".
func NewScheduler(reg prometheus.Registerer, src SchedulerStats, maxQueues int) error {
	if maxQueues <= 0 {
		maxQueues = DefaultMaxQueues
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return reg.Register(&schedulerCollector{
		src: src, maxQueues: maxQueues,
		queues:    d("eddy_scheduler_queues", "Leader queues hosted by this scheduler, by state (running, idle, flushing, removing)", "state"),
		leaders:   d("eddy_scheduler_leader_queues", "Actions whose leader queue this scheduler hosts"),
		followers: d("eddy_scheduler_follower_queues", "Actions this scheduler follows (ready to take the queue over)"),
		length:    d("eddy_scheduler_queue_length", "Activations waiting in a leader queue", "namespace", "action"),
		oldest:    d("eddy_scheduler_queue_oldest_age_seconds", "How long the oldest activation waiting in a leader queue has waited", "namespace", "action"),
		parked:    d("eddy_scheduler_fetches_parked", "Container fetches (long polls) parked in this scheduler's queues, waiting for an activation"),
		decisions: d("eddy_scheduler_decisions_total", "Scheduling decisions (how many containers an action needs) made by this scheduler's queues"),
		requested: d("eddy_scheduler_containers_requested_total", "Containers this scheduler's queues asked invokers for"),
		created:   d("eddy_scheduler_containers_created_total", "Containers asked for that an invoker created"),
		failed:    d("eddy_scheduler_container_creations_failed_total", "Containers asked for whose creation failed or was refused"),
		failovers: d("eddy_scheduler_failovers_total", "Leader queues this scheduler took over as a follower after their leader vanished"),
	})
}

func (c *schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queues, c.leaders, c.followers, c.length, c.oldest, c.parked,
		c.decisions, c.requested, c.created, c.failed, c.failovers} {
		ch <- d
	}
}

func (c *schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	states := map[string]int{}
	for _, s := range []queue.State{queue.Running, queue.Idle, queue.Flushing, queue.Removing} {
		states[s.String()] = 0
	}
	parked := 0
	for _, q := range st.Queues {
		states[q.State]++
		parked += q.Parked
	}
	for s, n := range states {
		gauge(c.queues, float64(n), s)
	}
	gauge(c.leaders, float64(len(st.Queues)))
	gauge(c.followers, float64(len(st.Following)))
	gauge(c.parked, float64(parked))
	qs := append([]scheduler.QueueStats(nil), st.Queues...)
	sort.SliceStable(qs, func(i, j int) bool {
		if qs[i].OldestAge != qs[j].OldestAge {
			return qs[i].OldestAge > qs[j].OldestAge
		}
		return qs[i].Buffered > qs[j].Buffered
	})
	var otherLen int
	var otherAge float64
	for i, q := range qs {
		if i >= c.maxQueues {
			otherLen += q.Buffered
			otherAge = max(otherAge, q.OldestAge.Seconds())
			continue
		}
		gauge(c.length, float64(q.Buffered), q.Action.Namespace, q.Action.Name)
		gauge(c.oldest, q.OldestAge.Seconds(), q.Action.Namespace, q.Action.Name)
	}
	if len(qs) > c.maxQueues {
		gauge(c.length, float64(otherLen), OtherLabel, OtherLabel)
		gauge(c.oldest, otherAge, OtherLabel, OtherLabel)
	}
	counter(c.decisions, st.Decisions)
	counter(c.requested, st.Requested)
	counter(c.created, st.Created)
	counter(c.failed, st.Failed)
	counter(c.failovers, st.Failovers)
}

// NewLeaseRegrants registers the counter of a process's etcd lease
// re-grants (its lease expired, during an etcd outage or a partition, and
// the session got a new one): role names the lease's owner. Count it from
// the session's re-grant hook.
func NewLeaseRegrants(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eddy_lease_regrants_total",
		Help: "Times this process's etcd lease was lost and re-granted, by the role that holds it"}, []string{"role"})
	return c, reg.Register(c)
}
