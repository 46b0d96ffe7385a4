package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestPrewarm: with --prewarm, the status shows the invoker's stem cell;
// the first activation of a new action of that kind and memory says
// "start": "prewarm", its second "warm", and one of another memory "cold";
// the pool refills, so the next new action hits too.
func TestPrewarm(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		e := startEddy(t, backend, "", "--prewarm", "python:3.11:256:1")
		waitStemCell := func() {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for {
				var st whisk.ClusterStatus
				_ = json.Unmarshal(e.mustCall(200, "GET", "/eddy/v1/status", nil), &st)
				for _, inv := range st.Invokers {
					for _, c := range inv.StemCells {
						if c.Kind == "python:3.11" && c.MemoryMB == 256 && c.Count == 1 && inv.StemCellMemory == 256 {
							return
						}
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no stem cell in the status: %+v", st.Invokers)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		start := func(action string) string {
			t.Helper()
			_, hdr, out := e.call("POST", "/api/v1/namespaces/_/actions/"+action+"?blocking=true", map[string]any{})
			rec := e.activation(hdr.Get("x-openwhisk-activation-id"))
			if !rec.Response.Success {
				t.Fatalf("%s: %s", action, out)
			}
			raw, ok := rec.Annotations.Get(whisk.AnnStart)
			var s string
			if !ok || json.Unmarshal(raw, &s) != nil {
				t.Fatalf("%s: no start annotation in %s", action, rec.Annotations)
			}
			return s
		}

		waitStemCell()
		e.createAction("pw1", "python:3.11", helloPy, nil)
		if s := start("pw1"); s != whisk.StartPrewarm {
			t.Errorf("first activation: start %q, want prewarm", s)
		}
		if s := start("pw1"); s != whisk.StartWarm {
			t.Errorf("second activation: start %q, want warm", s)
		}
		e.createAction("small", "python:3.11", helloPy, map[string]any{"memory": 128})
		if s := start("small"); s != whisk.StartCold {
			t.Errorf("128 MB action: start %q, want cold", s)
		}
		waitStemCell()
		e.createAction("pw2", "python:3.11", helloPy, nil)
		if s := start("pw2"); s != whisk.StartPrewarm {
			t.Errorf("next new action: start %q, want prewarm", s)
		}
	})
}
