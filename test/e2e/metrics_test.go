package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape reads url's Prometheus text and returns its families by name.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
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

// sample sums the family's samples whose labels include want (a counter's
// or gauge's value, a histogram's count).
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
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

// TestMetricsAgreeWithRecords runs a load of blocking and non-blocking
// invocations of an action that succeeds and one that fails, then checks
// that /metrics (on the API port and on --metrics-addr) counts what the
// records say: activations, statuses, cold starts, waits; and the
// controller's requests by code.
func TestMetricsAgreeWithRecords(t *testing.T) {
	metricsPort := freePort(t)
	e := startEddy(t, "process", "", "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	e.createAction("good", "python:3.11", "def main(a):\n    return {'n': a.get('n', 0)}\n", nil)
	e.createAction("bad", "python:3.11", "def main(a):\n    return {'error': 'no'}\n", nil)

	const workers, each, nonBlocking = 4, 6, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := "good"
				if i%3 == 2 {
					name = "bad"
				}
				code, _, _ := e.call("POST", "/api/v1/namespaces/_/actions/"+name+"?blocking=true", map[string]any{"n": w*each + i})
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for range nonBlocking {
		code, _, _ := e.call("POST", "/api/v1/namespaces/_/actions/good", nil)
		codes[code]++
	}
	total := workers*each + nonBlocking
	if codes[200]+codes[502]+codes[202] != total {
		t.Fatalf("invocation status codes %v: want %d answered", codes, total)
	}

	// The records, once every one is stored.
	var recs []whisk.Activation
	testenv.Eventually(t, 60*time.Second, "every activation's record", func() bool {
		_, _, out := e.call("GET", "/api/v1/namespaces/_/activations?limit=200&docs=true", nil)
		recs = nil
		_ = json.Unmarshal(out, &recs)
		return len(recs) == total
	})
	type key struct{ action, status string }
	byStatus := map[key]int{}
	cold, byAction := map[string]int{}, map[string]int{}
	statuses := []string{"success", "application_error", "action_developer_error", "whisk_internal_error"}
	for _, r := range recs {
		byAction[r.Name]++
		byStatus[key{r.Name, statuses[r.StatusCode]}]++
		if _, ok := r.Annotations.Get(whisk.AnnInitTime); ok {
			cold[r.Name]++
		}
	}
	if byStatus[key{"bad", "application_error"}] == 0 || byStatus[key{"good", "success"}] == 0 {
		t.Fatalf("records by status %v: the load did not make both outcomes", byStatus)
	}

	// A record is counted once its write returned: wait for the counts to
	// reach the records, then compare every family with them.
	apiURL, addrURL := e.URL+"/metrics", fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	testenv.Eventually(t, 30*time.Second, "the activations counted", func() bool {
		return sample(scrape(t, apiURL), "openwhisk_action_activations_total", nil) >= float64(total)
	})
	for _, url := range []string{apiURL, addrURL} {
		fams := scrape(t, url)
		for _, action := range []string{"good", "bad"} {
			who := map[string]string{"namespace": "guest", "initiator": "guest", "action": action}
			check := func(name string, labels map[string]string, want int) {
				t.Helper()
				all := map[string]string{}
				for k, v := range who {
					all[k] = v
				}
				for k, v := range labels {
					all[k] = v
				}
				if got := sample(fams, name, all); got != float64(want) {
					t.Errorf("%s: %s%v = %v, the records say %d", url, name, all, got, want)
				}
			}
			check("openwhisk_action_activations_total", map[string]string{"kind": "python:3.11", "memory": "256"}, byAction[action])
			check("openwhisk_action_coldStarts_total", nil, cold[action])
			check("openwhisk_action_initTime_seconds", nil, cold[action])
			check("openwhisk_action_waitTime_seconds", nil, byAction[action])
			check("openwhisk_action_duration_seconds", nil, byAction[action])
			check("openwhisk_action_response_size_bytes", nil, byAction[action])
			for _, s := range statuses {
				check("openwhisk_action_status", map[string]string{"status": s}, byStatus[key{action, s}])
			}
		}
		route := map[string]string{"route": "/api/v1/namespaces/{ns}/actions/{name}", "method": "POST"}
		for code, n := range codes {
			route["code"] = fmt.Sprint(code)
			if got := sample(fams, "eddy_controller_requests_total", route); got != float64(n) {
				t.Errorf("%s: requests %v = %v, the client saw %d", url, route, got, n)
			}
		}
		if got := sample(fams, "eddy_controller_blocking_waits_total", nil); got != float64(workers*each) {
			t.Errorf("%s: blocking waits %v, want %d", url, got, workers*each)
		}
		created := sample(fams, "eddy_scheduler_containers_created_total", nil)
		requested := sample(fams, "eddy_scheduler_containers_requested_total", nil)
		if created < 2 || requested < created {
			t.Errorf("%s: containers requested %v, created %v: want created ≥ 2 (two actions) and requested ≥ created", url, requested, created)
		}
		if got := sample(fams, "eddy_scheduler_leader_queues", nil); got != 2 {
			t.Errorf("%s: leader queues %v, want 2", url, got)
		}
		if sample(fams, "go_goroutines", nil) <= 0 || sample(fams, "process_resident_memory_bytes", nil) <= 0 {
			t.Errorf("%s: the Go runtime and process collectors are missing", url)
		}
	}
}
