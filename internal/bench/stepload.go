package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// StepLoadResult is the step-load scenario (the over-provisioning
// anchor): a fresh action that sleeps StepMs is called at RatePerSec from
// the first instant, open loop (each call is sent at its scheduled time,
// whatever the earlier ones do), for Seconds. Eddy starts with no
// container, so the step includes the cold start and the backlog that
// piles up during it: a scaling rule that reacts to the backlog alone
// creates containers for calls that a few warm ones would have served
// moments later.
//
// Over-provisioning is the peak of the action's containers (from etcd,
// polled every 50 ms) ÷ the containers the load needs: ceil(rate ×
// duration ÷ 1), one activation per container at a time, with duration
// the mean run time of the activations' records (the action's sleep plus
// its runtime's cost on this machine). RatioNominal uses StepMs instead.
type StepLoadResult struct {
	Action     string  `json:"action"`
	StepMs     int64   `json:"stepMs"`
	RatePerSec int     `json:"ratePerSec"`
	Seconds    float64 `json:"seconds"`
	Sent       int     `json:"sent"`
	Errors     int     `json:"errors"`
	LastError  string  `json:"lastError,omitempty"`
	// Latency is from each call's scheduled time to its answer, so a
	// generator that fell behind does not hide the wait (no coordinated
	// omission).
	Latency Dist `json:"latency"`
	// Late is the calls sent more than 10 ms after their scheduled time
	// (every worker connection was busy).
	Late           int     `json:"late"`
	RunMs          Dist    `json:"runMs"` // the records' duration
	PeakContainers int     `json:"peakContainers"`
	EndContainers  int     `json:"endContainers"` // when the step ended
	Needed         int     `json:"needed"`        // ceil(rate × mean run time)
	NeededNominal  int     `json:"neededNominal"` // ceil(rate × StepMs)
	Ratio          float64 `json:"overProvisioning"`
	RatioNominal   float64 `json:"overProvisioningNominal"`
}

// stepWorkers bounds the calls in flight: the step's backlog during a cold
// start (rate × cold start) must fit, or the generator falls behind.
const stepWorkers = 256

func (e *env) stepLoad(ctx context.Context) (*StepLoadResult, error) {
	if e.etcd == nil {
		return nil, fmt.Errorf("stepload: needs etcd to count containers (--etcd, or an Eddy that bench starts)")
	}
	name := "bench-step-" + e.runID
	if err := e.createAction(ctx, name, e.code.step); err != nil {
		return nil, err
	}
	res := &StepLoadResult{Action: name, StepMs: stepSleep.Milliseconds(), RatePerSec: e.cfg.stepRate}
	addr, tlsCfg, req, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	fqn := whisk.FQN{Namespace: whisk.GuestNamespace, Name: name}

	peaks := e.watchContainers(ctx, fqn)
	defer peaks.stop()

	n := int(float64(e.cfg.stepRate) * e.cfg.stepDur.Seconds())
	interval := time.Second / time.Duration(e.cfg.stepRate)
	type call struct {
		due time.Time
	}
	calls := make(chan call, n)
	lat := make([]time.Duration, n)
	var errs, late atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	var idx atomic.Int64
	for range min(stepWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := newH1Conn(ctx, addr, tlsCfg)
			defer conn.close()
			for c := range calls {
				if time.Since(c.due) > 10*time.Millisecond {
					late.Add(1)
				}
				status, body, err := conn.do(req)
				d := time.Since(c.due)
				if err := checkRanBy("invoke "+name, status, body, err); err != nil {
					errs.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				lat[idx.Add(1)-1] = d
			}
		}()
	}
	start := time.Now()
	sinceMs := start.UnixMilli() - 1
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		calls <- call{due: due}
	}
	res.EndContainers = int(peaks.last.Load())
	close(calls)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	peaks.stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Sent, res.Errors, res.Late = n, int(errs.Load()), int(late.Load())
	if s, ok := lastErr.Load().(string); ok {
		res.LastError = s
	}
	res.Latency = dist(lat[:idx.Load()])
	res.PeakContainers = int(peaks.peak.Load())

	// Records are written off the response path: wait for them all.
	if _, err := e.awaitRecords(ctx, name, sinceMs, n-res.Errors, 30*time.Second); err != nil {
		return nil, err
	}
	var runs []int64
	err = e.eachRecord(ctx, name, sinceMs, func(r client.Activation) {
		if r.Response.Success {
			runs = append(runs, r.Duration)
		}
	})
	if err != nil {
		return nil, err
	}
	res.RunMs = distMs(runs)
	rate := float64(e.cfg.stepRate)
	res.Needed = max(1, int(math.Ceil(rate*res.RunMs.Mean/1000)))
	res.NeededNominal = max(1, int(math.Ceil(rate*float64(res.StepMs)/1000)))
	res.Ratio = ratio(float64(res.PeakContainers), float64(res.Needed))
	res.RatioNominal = ratio(float64(res.PeakContainers), float64(res.NeededNominal))
	fmt.Fprintf(e.out, "== stepload: a fresh %d ms action stepped from 0 to %d calls/s (blocking, open loop) for %s\n",
		res.StepMs, res.RatePerSec, e.cfg.stepDur)
	stepLoadTable(e.out, false, res)
	return res, nil
}

func stepLoadTable(w io.Writer, md bool, r *StepLoadResult) {
	table(w, md, [][]string{
		{"calls", "errors", "late", "latency p50 / p99", "run time mean", "needed", "peak containers", "at the end", "over-provisioning", "(nominal)"},
		{fmt.Sprint(r.Sent), fmt.Sprint(r.Errors), fmt.Sprint(r.Late),
			fmt.Sprintf("%.1f / %.1f ms", r.Latency.P50, r.Latency.P99), fmt.Sprintf("%.1f ms", r.RunMs.Mean),
			fmt.Sprint(r.Needed), fmt.Sprint(r.PeakContainers), fmt.Sprint(r.EndContainers),
			fmt.Sprintf("%.2f", r.Ratio), fmt.Sprintf("%.2f", r.RatioNominal)},
	})
	if r.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", strings.TrimSpace(r.LastError))
	}
	fmt.Fprintln(w)
}
