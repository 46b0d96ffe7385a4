package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// FairnessResult is the fairness scenario (issue 17): on an Eddy of its own
// with standalone's default invoker (2048 MB = 8 containers of 256 MB, no
// stem cells), tenant A (guest) posts FloodN non-blocking calls of a 2 s
// python action at once; once A's containers run, tenant B (a namespace
// made with `eddy admin user create`) makes one blocking call of a fresh
// action. B's waitTime is compared with a cold start measured in the same
// run (a fresh action on the idle platform, waitTime + initTime).
type FairnessResult struct {
	FloodN      int     `json:"floodN"`
	FloodMs     int     `json:"floodMs"`
	ColdMs      int64   `json:"coldStartMs"` // the probe's waitTime + initTime
	BWaitMs     int64   `json:"bWaitTimeMs"` // B's first call, during A's flood
	BColdRatio  float64 `json:"bWaitOverColdStart"`
	AContainers int     `json:"aContainersWhenBCalled"`
	FloodSecs   float64 `json:"floodSeconds"` // A's calls all completed
	FloodFailed int     `json:"floodFailed"`
	FloodLost   int     `json:"floodLost"` // no record
}

const fairSleepPy = "import time\ndef main(args):\n    time.sleep(args.get('ms', 0) / 1000.0)\n    return {'ok': True}\n"

func (e *env) fairness(ctx context.Context) (*FairnessResult, error) {
	if e.cfg.apiHost != "" && !e.cfg.started {
		return nil, fmt.Errorf("fairness: needs an Eddy of its own (without --apihost): it makes a tenant with eddy admin")
	}
	res := &FairnessResult{FloodN: 60, FloodMs: 2000}
	s, err := startStandaloneWith(ctx, e.cfg, io.Discard, "--invoker-memory", "2048", "--prewarm", "0", "--namespace-containers", "100")
	if err != nil {
		return nil, err
	}
	defer s.stop(io.Discard)
	out, err := exec.CommandContext(ctx, e.cfg.eddyPath, "admin", "--data-dir", s.dataDir, "user", "create", "tenantb").Output()
	if err != nil {
		return nil, fmt.Errorf("fairness: eddy admin user create: %w", err)
	}
	keyB := strings.TrimSpace(string(out))
	mk := func(auth string) (*client.Client, error) {
		return client.New(client.Config{APIHost: s.url, Auth: auth, UserAgent: "eddy-bench"})
	}
	a, err := mk(whisk.GuestUUID + ":" + whisk.GuestKey)
	if err != nil {
		return nil, err
	}
	b, err := mk(keyB)
	if err != nil {
		return nil, err
	}
	code, mem, timeout := fairSleepPy, int64(256), int64(60000)
	put := func(c *client.Client, name string) error {
		_, err := c.PutAction(ctx, name, &client.ActionPut{
			Exec: &client.ExecPut{Kind: "python:3.11", Code: &code}, Limits: &client.LimitsPut{Memory: &mem, Timeout: &timeout},
		}, true)
		return err
	}
	for _, n := range []string{"fair-probe", "fair-flood"} {
		if err := put(a, n); err != nil {
			return nil, err
		}
	}
	// B's key is new: the identity cache may hold a miss for a moment.
	deadline := time.Now().Add(10 * time.Second)
	for put(b, "fair-meek") != nil {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fairness: tenant B cannot create its action")
		}
		time.Sleep(200 * time.Millisecond)
	}
	record := func(c *client.Client, name string, ms int) (whisk.Activation, error) {
		p, _ := json.Marshal(map[string]int{"ms": ms})
		inv, err := c.Invoke(ctx, name, p, client.InvokeOptions{Blocking: true})
		if err != nil {
			return whisk.Activation{}, err
		}
		var rec whisk.Activation
		if inv.Status != http.StatusOK || json.Unmarshal(inv.Body, &rec) != nil {
			return rec, fmt.Errorf("invoke %s: status %d", name, inv.Status)
		}
		return rec, nil
	}
	ann := func(r whisk.Activation, k string) int64 {
		v, _ := r.Annotations.Get(k)
		var n int64
		_ = json.Unmarshal(v, &n)
		return n
	}
	probe, err := record(a, "fair-probe", 1)
	if err != nil {
		return nil, err
	}
	res.ColdMs = ann(probe, whisk.AnnWaitTime) + ann(probe, whisk.AnnInitTime)

	began := time.Now()
	ids := make([]string, res.FloodN)
	var wg sync.WaitGroup
	p, _ := json.Marshal(map[string]int{"ms": res.FloodMs})
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if inv, err := a.Invoke(ctx, "fair-flood", p, client.InvokeOptions{}); err == nil {
				ids[i] = inv.ActivationID
			}
		}()
	}
	wg.Wait()
	// B calls once A's containers run (7 of 8: the headroom is B's).
	for i := 0; i < 100; i++ {
		st, err := a.Status(ctx)
		if err == nil {
			n := 0
			for _, q := range st.Queues {
				if q.Namespace == whisk.GuestNamespace && q.Action == "fair-flood" {
					n = q.Containers
				}
			}
			res.AContainers = n
			if n >= 7 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	rb, err := record(b, "fair-meek", 1)
	if err != nil {
		return nil, err
	}
	res.BWaitMs = ann(rb, whisk.AnnWaitTime)
	res.BColdRatio = ratio(float64(res.BWaitMs), float64(res.ColdMs))
	for _, id := range ids {
		if id == "" {
			res.FloodLost++
			continue
		}
		for {
			r, err := a.GetActivation(ctx, id)
			if err == nil {
				if !r.Response.Success {
					res.FloodFailed++
				}
				break
			}
			if time.Since(began) > 5*time.Minute {
				res.FloodLost++
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	res.FloodSecs = time.Since(began).Seconds()
	fmt.Fprintln(e.out, "== fairness: tenant B's first call while tenant A floods (invoker 2048 MB, 60 × 2 s)")
	fairnessTable(e.out, false, res)
	return res, nil
}

func fairnessTable(w io.Writer, md bool, r *FairnessResult) {
	table(w, md, [][]string{{"cold start (probe)", "B's waitTime", "÷ cold start", "A's containers", "A drained", "A failed", "A lost"},
		{fmt.Sprintf("%d ms", r.ColdMs), fmt.Sprintf("%d ms", r.BWaitMs), fmt.Sprintf("%.2f", r.BColdRatio),
			fmt.Sprint(r.AContainers), fmt.Sprintf("%.1f s", r.FloodSecs), fmt.Sprint(r.FloodFailed), fmt.Sprint(r.FloodLost)}})
	fmt.Fprintln(w)
}
