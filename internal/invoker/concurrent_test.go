package invoker_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/whisk"
)

const concPy = `import sys, time
def main(args):
    m = args["m"]
    print("begin", m)
    time.sleep(0.5)
    print("middle", m, file=sys.stderr)
    time.sleep(0.5)
    print("end", m)
    return {"m": m}
`

const concJS = `const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main(args) {
  const m = args.m;
  console.log("begin", m);
  await sleep(500);
  console.error("middle", m);
  await sleep(500);
  console.log("end", m);
  return { m };
}
`

// One container of an action with limits.concurrency 4 runs 4 activations
// at once (fetching them itself), and every record's logs hold its own
// lines only.
func TestConcurrentActivationsShareAContainerWithTheirOwnLogs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, code string }{{"python:3.11", concPy}, {"nodejs:18", concJS}} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			testConcurrentActivations(t, tc.kind, tc.code)
		})
	}
}

func testConcurrentActivations(t *testing.T, kind, code string) {
	e := newEnv(t, invoker.Config{})
	a := e.putAction("conc-"+strings.ReplaceAll(kind, ":", ""), kind, code, whisk.Limits{Concurrency: 4})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	const n = 8
	for i := range n {
		e.enqueue(a, fmt.Sprintf(`{"m":"mark%d"}`, i))
	}
	recs := make([]whisk.Activation, 0, n)
	for range n {
		recs = append(recs, e.completion(60*time.Second))
	}
	for _, r := range recs {
		var m string
		if _, err := fmt.Sscanf(string(r.Response.Result), `{"m":%q}`, &m); err != nil || !r.Response.Success {
			t.Errorf("%s: result %s", r.ActivationID, r.Response.Result)
			continue
		}
		logs := strings.Join(r.Logs, "\n")
		for _, want := range []string{"stdout: begin " + m, "stderr: middle " + m, "stdout: end " + m} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s (%s): %q missing from %q", r.ActivationID, m, want, r.Logs)
			}
		}
		if len(r.Logs) != 3 || strings.Count(logs, "mark") != 3 {
			t.Errorf("%s (%s): logs not only its own: %q", r.ActivationID, m, r.Logs)
		}
	}
	if c := e.containers(a); c != 1 {
		t.Errorf("%d containers, want 1", c)
	}
	// At most 4 ran at once, and more than one did.
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, r := range recs {
		evs = append(evs, ev{r.Start, 1}, ev{r.End, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta
	})
	cur, peak := 0, 0
	for _, x := range evs {
		cur += x.delta
		peak = max(peak, cur)
	}
	if peak < 2 || peak > 4 {
		t.Errorf("%d activations ran at once, want 2..4", peak)
	}
}

// When /init fails, the activations the container's other slots already
// took fail with the init error (none is lost), and the container goes.
func TestConcurrentInitFailureFailsEveryTakenActivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, invoker.Config{})
	a := e.putAction("brokenconc", "python:3.11", "def main(args)\n    return {}\n", whisk.Limits{Concurrency: 4})
	e.create(a)
	const n = 4
	for range n {
		e.enqueue(a, "")
	}
	for range n {
		rec := e.completion(60 * time.Second)
		if rec.Response.Status != "action developer error" || !strings.Contains(errorOf(rec), "SyntaxError") && !strings.Contains(errorOf(rec), "initialization") {
			t.Errorf("%s: %+v %s", rec.ActivationID, rec.Response, rec.Response.Result)
		}
	}
	e.expectGone(a)
}
