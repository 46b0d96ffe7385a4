package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
)

// SequenceResult is the sequence scenario: what a sequence step costs
// beyond the activation it runs. A 2-step sequence of the no-op, invoked
// blocking, is timed against 2 sequential blocking invocations of the same
// no-op (one connection, the same load generator client), interleaved
// call by call so that both see the same machine.
type SequenceResult struct {
	Action string `json:"action"`
	// Sequence: one blocking invocation of the 2-step sequence.
	Sequence Dist `json:"sequence"`
	// TwoInvokes: two sequential blocking invocations, timed together.
	TwoInvokes Dist `json:"twoInvokes"`
	// Single: one blocking invocation (the first of each pair).
	Single Dist `json:"single"`
	// HandOffP50: Sequence p50 − TwoInvokes p50, ms: what the chain adds
	// to its two activations (its record, its own API call's share).
	HandOffP50 float64 `json:"handOffP50Ms"`
	// RatioP50: Sequence p50 ÷ TwoInvokes p50 (≤ 1: a step costs no more
	// than a warm invocation through the API).
	RatioP50 float64 `json:"ratioP50"`
	Errors   int     `json:"errors"`
}

func (e *env) sequence(ctx context.Context) (*SequenceResult, error) {
	name := "bench-seq-noop"
	if err := e.createAction(ctx, name, e.code.noop); err != nil {
		return nil, err
	}
	seq := "bench-seq"
	comp := "/_/" + name
	if _, err := e.api.PutAction(ctx, seq, &client.ActionPut{
		Exec: &client.ExecPut{Kind: "sequence", Components: []string{comp, comp}},
	}, true); err != nil {
		return nil, fmt.Errorf("creating sequence %s: %w", seq, err)
	}
	res := &SequenceResult{Action: name}
	addr, tlsCfg, one, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	_, _, chain, err := e.invokeRequest(seq)
	if err != nil {
		return nil, err
	}
	conn := newH1Conn(ctx, addr, tlsCfg)
	defer conn.close()
	call := func(what string, req []byte) error {
		status, body, err := conn.do(req)
		return checkRanBy("invoke "+what, status, body, err)
	}
	n := max(e.cfg.warmN/5, 50)
	for i := 0; i < e.cfg.warmup; i++ {
		if err := call(seq, chain); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if err := call(name, one); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	seqLat := make([]time.Duration, 0, n)
	twoLat := make([]time.Duration, 0, n)
	oneLat := make([]time.Duration, 0, n)
	failed := func(err error) error {
		res.Errors++
		if res.Errors > n/100+5 {
			return fmt.Errorf("too many errors, the last: %w", err)
		}
		return nil
	}
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := call(seq, chain); err != nil {
			if err := failed(err); err != nil {
				return nil, err
			}
		} else {
			seqLat = append(seqLat, time.Since(t))
		}
		t = time.Now()
		err := call(name, one)
		first := time.Since(t)
		if err == nil {
			err = call(name, one)
		}
		if err != nil {
			if err := failed(err); err != nil {
				return nil, err
			}
			continue
		}
		twoLat = append(twoLat, time.Since(t))
		oneLat = append(oneLat, first)
	}
	res.Sequence, res.TwoInvokes, res.Single = dist(seqLat), dist(twoLat), dist(oneLat)
	res.HandOffP50 = res.Sequence.P50 - res.TwoInvokes.P50
	res.RatioP50 = ratio(res.Sequence.P50, res.TwoInvokes.P50)
	fmt.Fprintln(e.out, "== sequence: a 2-step sequence of no-ops against 2 sequential warm invocations")
	sequenceTable(e.out, false, res)
	return res, nil
}

func sequenceTable(w io.Writer, md bool, r *SequenceResult) {
	table(w, md, [][]string{distHead,
		distRow("sequence of 2 no-ops (blocking, result=true)", r.Sequence),
		distRow("2 sequential blocking invocations", r.TwoInvokes),
		distRow("1 blocking invocation", r.Single),
	})
	fmt.Fprintf(w, "sequence − 2 invocations p50 %s ms; sequence ÷ 2 invocations p50 = %.2f; errors %d\n\n",
		f3(r.HandOffP50), r.RatioP50, r.Errors)
}
