package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/whisk"
	"github.com/eddy-faas/eddy/test/fixtures"
)

// BlackboxResult is the blackbox scenario (Docker backend only): an image
// that behaves as OpenWhisk's actionloop runtime images do (the
// test/fixtures actionloop image: no log sentinels after /init, sentinels
// after each /run) as a blackbox action, next to raw Docker running the
// same image in the same run: the backend creating the container, then
// /init and /run (cold), and /run straight to a warm one (warm).
type BlackboxResult struct {
	Image string `json:"image"`
	// Cold: first invocations of fresh blackbox actions, client-side.
	Cold      Dist    `json:"cold"`
	ColdFloor Dist    `json:"coldFloor"`
	ColdOver  float64 `json:"coldOverheadP50Ms"` // cold p50 − cold floor p50
	// Warm: sequential blocking invocations of one action (result=true).
	Warm      Dist    `json:"warm"`
	WarmFloor Dist    `json:"warmFloor"`
	WarmOver  float64 `json:"warmOverheadP50Ms"` // warm p50 − warm floor p50
	// KindWarmOver is the warm scenario's overhead (its kind, in the same
	// run; 0 when it did not run) and OverRatio WarmOver ÷ KindWarmOver.
	KindWarmOver float64 `json:"kindWarmOverheadP50Ms"`
	OverRatio    float64 `json:"overheadRatio"`
	Errors       int     `json:"errors"`
}

// blackboxCode is the action's code: the actionloop proxy needs some, the
// fixture runs its own action whatever it is.
const blackboxCode = "bench"

func (e *env) blackbox(ctx context.Context) (*BlackboxResult, error) {
	b, ok := e.floor.backend.(*docker.Backend)
	if !ok {
		return nil, errors.New("the blackbox scenario runs on the Docker backend only (--backend docker)")
	}
	// Built each run (the daemon's build cache makes an unchanged one
	// cheap), so that the image is the fixture of this source tree.
	image := fixtures.ActionloopImage
	if err := fixtures.Build(ctx, b.Client()); err != nil {
		missing, merr := docker.MissingImages(ctx, b.Client(), []string{image})
		if merr != nil || len(missing) > 0 {
			return nil, fmt.Errorf("building the fixture images (test/fixtures; needs the Go toolchain and Eddy's source tree): %w", err)
		}
		fmt.Fprintf(e.out, "blackbox: using %s as it is (rebuilding it failed: %v)\n", image, err)
	}
	res := &BlackboxResult{Image: image}
	put := func(name string) error {
		code, timeout, mem := blackboxCode, int64(60000), e.cfg.memoryMB
		_, err := e.api.PutAction(ctx, name, &client.ActionPut{
			Exec:   &client.ExecPut{Kind: whisk.KindBlackbox, Image: image, Code: &code},
			Limits: &client.LimitsPut{Memory: &mem, Timeout: &timeout},
		}, true)
		return err
	}

	// Cold, alternating with the floor so both meet the same background.
	var cold, coldFloor []time.Duration
	for i := 0; i < e.cfg.coldN; i++ {
		name := fmt.Sprintf("bench-bbcold-%s-%d", e.runID, i)
		if err := put(name); err != nil {
			return nil, err
		}
		t := time.Now()
		inv, err := e.api.Invoke(ctx, name, nil, client.InvokeOptions{Blocking: true, Result: true})
		d := time.Since(t)
		if err == nil {
			err = checkRanBy("invoke "+name, inv.Status, inv.Body, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("cold invocation %d: %w", i, err)
		}
		cold = append(cold, d)
		fd, p, err := e.floor.startImage(ctx, fmt.Sprintf("bench-bbfloor-%d", i), blackboxCode, whisk.KindBlackbox, image, "")
		if err != nil {
			return nil, err
		}
		fd.remove()
		coldFloor = append(coldFloor, p.Total)
	}
	res.Cold, res.ColdFloor = dist(cold), dist(coldFloor)
	res.ColdOver = res.Cold.P50 - res.ColdFloor.P50

	// Warm, with the load generator's client as the warm scenario.
	name := "bench-bbwarm-" + e.runID
	if err := put(name); err != nil {
		return nil, err
	}
	addr, tlsCfg, req, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	conn := newH1Conn(ctx, addr, tlsCfg)
	defer conn.close()
	lat := make([]time.Duration, 0, e.cfg.warmN)
	for i := 0; i < e.cfg.warmup+e.cfg.warmN; i++ {
		t := time.Now()
		status, body, err := conn.do(req)
		d := time.Since(t)
		if err := checkRanBy("invoke "+name, status, body, err); err != nil {
			if i < e.cfg.warmup {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
			res.Errors++
			if res.Errors > e.cfg.warmN/100+5 {
				return nil, fmt.Errorf("too many errors, the last: %w", err)
			}
			continue
		}
		if i >= e.cfg.warmup {
			lat = append(lat, d)
		}
	}
	res.Warm = dist(lat)
	d, _, err := e.floor.startImage(ctx, name, blackboxCode, whisk.KindBlackbox, image, "")
	if err != nil {
		return nil, err
	}
	defer d.remove()
	f := newFloorConn(ctx, d)
	defer f.conn.close()
	f.prepare(time.Now().Add(time.Hour))
	lat = lat[:0]
	for i := 0; i < e.cfg.warmup+e.cfg.warmN; i++ {
		t := time.Now()
		if _, err := f.run(); err != nil {
			return nil, err
		}
		if i >= e.cfg.warmup {
			lat = append(lat, time.Since(t))
		}
	}
	res.WarmFloor = dist(lat)
	res.WarmOver = res.Warm.P50 - res.WarmFloor.P50
	res.KindWarmOver = e.warmOverP50
	res.OverRatio = ratio(res.WarmOver, res.KindWarmOver)
	printBlackbox(e.out, res, e.cfg.kind)
	return res, nil
}

func printBlackbox(w io.Writer, r *BlackboxResult, kind string) {
	fmt.Fprintf(w, "== blackbox: %s as a blackbox action against raw Docker (create + /init + /run; /run)\n", r.Image)
	fmt.Fprintf(w, "  cold  p50 %8.1f ms  floor %8.1f ms  overhead %+7.1f ms (p99 %.1f / %.1f)\n", r.Cold.P50, r.ColdFloor.P50, r.ColdOver, r.Cold.P99, r.ColdFloor.P99)
	fmt.Fprintf(w, "  warm  p50 %8.3f ms  floor %8.3f ms  overhead %+7.3f ms (p99 %.3f / %.3f)\n", r.Warm.P50, r.WarmFloor.P50, r.WarmOver, r.Warm.P99, r.WarmFloor.P99)
	if r.KindWarmOver != 0 {
		fmt.Fprintf(w, "  warm overhead ÷ %s's (warm scenario): %.2f\n", kind, r.OverRatio)
	}
	fmt.Fprintln(w)
}
