package cluster_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrapeMetrics reads url's Prometheus text.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// metricSum sums the samples of a family whose labels include want.
func metricSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range want {
			ok := false
			for _, l := range m.Label {
				ok = ok || (l.GetName() == k && l.GetValue() == v)
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestClusterMetrics scrapes every role's --metrics-addr (deploy/cluster.sh
// gives each one) after invocations through both controllers: the
// user-event counts summed over the processes agree with the records, the
// controllers count the requests their clients saw, the schedulers show
// one leader queue with its follower, the invokers the containers.
func TestClusterMetrics(t *testing.T) {
	c := startCluster(t)
	c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/metered", map[string]any{"exec": map[string]any{"kind": "native", "code": helloScript}})
	const blocking, nonBlocking = 6, 4
	var ids []string
	for i := range blocking + nonBlocking {
		ctl := []api{c.ctl1, c.ctl2}[i%2]
		path, want := "/api/v1/namespaces/_/actions/metered?blocking=true", 200
		if i >= blocking {
			path, want = "/api/v1/namespaces/_/actions/metered", 202
		}
		var got struct {
			ActivationID string `json:"activationId"`
		}
		if err := json.Unmarshal(ctl.must(want, "POST", path, map[string]any{"name": fmt.Sprint(i)}), &got); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ActivationID)
	}
	recs := collectRecords(ids, []string{c.ctl1.base, c.ctl2.base}, time.Now().Add(60*time.Second))
	if len(recs) != len(ids) {
		t.Fatalf("%d records of %d activations", len(recs), len(ids))
	}
	cold := 0
	for _, r := range recs {
		if _, ok := r.Annotations.Get("initTime"); ok {
			cold++
		}
	}

	url := func(offset int) string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", c.base+offset) }
	roles := map[string][]int{"controller": {51, 52}, "scheduler": {61, 62, 63}, "invoker": {71, 72}}
	sum := func(role, name string, labels map[string]string) float64 {
		total := 0.0
		for _, o := range roles[role] {
			total += metricSum(scrapeMetrics(t, url(o)), name, labels)
		}
		return total
	}
	who := map[string]string{"namespace": "guest", "initiator": "guest", "action": "metered"}
	// A record is counted once its write returned: the last ones may be
	// read before; wait for them, then compare.
	deadline := time.Now().Add(30 * time.Second)
	for sum("invoker", "openwhisk_action_activations_total", who) < float64(len(recs)) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if got := sum("invoker", "openwhisk_action_activations_total", who); got != float64(len(recs)) {
		t.Errorf("invokers' openwhisk_action_activations_total = %v, records %d", got, len(recs))
	}
	if got := sum("invoker", "openwhisk_action_status", map[string]string{"action": "metered", "status": "success"}); got != float64(len(recs)) {
		t.Errorf("invokers' success statuses = %v, records %d", got, len(recs))
	}
	if got := sum("invoker", "openwhisk_action_coldStarts_total", who); got != float64(cold) {
		t.Errorf("invokers' cold starts = %v, records with initTime %d", got, cold)
	}
	for role := range roles {
		if got := sum(role, "go_goroutines", nil); got <= 0 {
			t.Errorf("%s: no Go runtime metrics", role)
		}
	}
	route := map[string]string{"route": "/api/v1/namespaces/{ns}/actions/{name}", "method": "POST"}
	for code, want := range map[string]int{"200": blocking, "202": nonBlocking} {
		route["code"] = code
		if got := sum("controller", "eddy_controller_requests_total", route); got != float64(want) {
			t.Errorf("controllers' POST requests with code %s = %v, want %d", code, got, want)
		}
	}
	if got := sum("controller", "eddy_controller_bus_publish_seconds", nil); got != float64(len(ids)) {
		t.Errorf("controllers' publications = %v, want %d", got, len(ids))
	}
	if got := sum("scheduler", "eddy_scheduler_leader_queues", nil); got != 1 {
		t.Errorf("leader queues over the schedulers = %v, want 1", got)
	}
	if got := sum("scheduler", "eddy_scheduler_follower_queues", nil); got < 1 {
		t.Errorf("follower queues over the schedulers = %v, want ≥ 1", got)
	}
	created, requested := sum("scheduler", "eddy_scheduler_containers_created_total", nil), sum("scheduler", "eddy_scheduler_containers_requested_total", nil)
	if created < 1 || requested < created {
		t.Errorf("containers requested %v, created %v", requested, created)
	}
	if got := sum("invoker", "eddy_invoker_containers", map[string]string{"state": "warm"}) + sum("invoker", "eddy_invoker_containers", map[string]string{"state": "busy"}); got < 1 {
		t.Errorf("invokers' action containers = %v, want ≥ 1", got)
	}
}
