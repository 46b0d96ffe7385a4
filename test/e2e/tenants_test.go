package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// cacheBound is how soon a change made with `eddy admin` must be seen by a
// running standalone: its identity cache's TTL (2 s), with slack for a
// loaded machine.
const cacheBound = 2*time.Second + 2*time.Second

// admin runs `eddy admin --data-dir <e's> args…` and returns its trimmed
// stdout; it fails the test on a non-zero exit.
func (e *eddy) admin(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(eddyBin, append([]string{"admin", "--data-dir", e.DataDir}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("eddy admin %v: %v; stderr %s", args, err, se.String())
	}
	return strings.TrimSpace(so.String())
}

// waitTook polls cond until it holds or bound passes, and returns how long it took.
func waitTook(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// echoPy returns its owner parameter and the key it was given (with the
// provide-api-key annotation).
const echoPy = "import os\ndef main(args):\n    return {'owner': args.get('owner', ''), 'key': os.environ.get('__OW_API_KEY', '')}\n"

// TestTenantIsolation creates two tenants with `eddy admin user create` on
// a running standalone and tries every action and activation route of each
// with the other's key: naming the other's namespace is 403 with
// OpenWhisk's message, "_" finds nothing of the other's (404, empty lists).
// Keys are stored hashed: user get prints the UUID only, and an action
// with provide-api-key gets its caller's key from the request.
func TestTenantIsolation(t *testing.T) {
	e := startEddy(t, "process", "")
	keys := map[string]string{}
	for _, ns := range []string{"alice", "bobby"} {
		keys[ns] = e.admin("user", "create", ns)
		if _, _, err := whisk.ParseAuthKey(keys[ns]); err != nil {
			t.Fatalf("user create printed %q: %v", keys[ns], err)
		}
	}
	// The key is printed once, by create: get prints its UUID only.
	if uuid, _, _ := strings.Cut(keys["alice"], ":"); e.admin("user", "get", "alice") != uuid {
		t.Fatalf("user get alice = %q, want the UUID %q", e.admin("user", "get", "alice"), uuid)
	}
	if got := e.admin("user", "list"); !strings.Contains(got, "alice\talice") || !strings.Contains(got, "bobby\tbobby") {
		t.Fatalf("user list = %q", got)
	}

	// Each tenant has an action and an activation of the same name.
	ids := map[string]string{}
	for ns, key := range keys {
		body := map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": echoPy},
			"annotations": []map[string]any{{"key": "provide-api-key", "value": true}}}
		var code int
		var out []byte
		// The key is new: standalone may have cached a miss for up to 1 s.
		waitTook(t, cacheBound, "new key accepted", func() bool {
			code, _, out = e.callAuth(key, "PUT", "/api/v1/namespaces/_/actions/echo", body)
			return code != 401
		})
		if code != 200 {
			t.Fatalf("%s creates echo: %d %s", ns, code, out)
		}
		code, hdr, out := e.callAuth(key, "POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true", map[string]any{"owner": ns})
		if code != 200 || !strings.Contains(string(out), ns) {
			t.Fatalf("%s invokes echo: %d %s", ns, code, out)
		}
		// The store keeps only the key's hash: the action gets the
		// caller's key from the request.
		var res struct{ Key string }
		if err := json.Unmarshal(out, &res); err != nil || res.Key != key {
			t.Fatalf("%s's action got __OW_API_KEY %q (%v), want the caller's key %q", ns, res.Key, err, key)
		}
		ids[ns] = hdr.Get("x-openwhisk-activation-id")
		// The record is stored before the tests read it.
		waitTook(t, 30*time.Second, "record stored", func() bool {
			c, _, _ := e.callAuth(key, "GET", "/api/v1/namespaces/_/activations/"+ids[ns], nil)
			return c == 200
		})
	}

	for _, pair := range [][2]string{{"alice", "bobby"}, {"bobby", "alice"}} {
		me, victim := pair[0], pair[1]
		key, vid := keys[me], ids[victim]
		t.Run(me+" against "+victim, func(t *testing.T) {
			put := `{"exec":{"kind":"python:3.11","code":"def main(a):\n  return {}"}}`
			for _, r := range []struct {
				method, path, body string
				status             int
			}{
				{"GET", "/namespaces/" + victim + "/actions", "", 403},
				{"GET", "/namespaces/" + victim + "/actions/echo", "", 403},
				{"PUT", "/namespaces/" + victim + "/actions/echo?overwrite=true", put, 403},
				{"PUT", "/namespaces/" + victim + "/actions/intruder", put, 403},
				{"POST", "/namespaces/" + victim + "/actions/echo?blocking=true", "{}", 403},
				{"POST", "/namespaces/" + victim + "/actions/echo", "{}", 403},
				{"DELETE", "/namespaces/" + victim + "/actions/echo", "", 403},
				{"GET", "/namespaces/" + victim + "/activations", "", 403},
				{"GET", "/namespaces/" + victim + "/activations/" + vid, "", 403},
				{"GET", "/namespaces/" + victim + "/activations/" + vid + "/logs", "", 403},
				{"GET", "/namespaces/" + victim + "/activations/" + vid + "/result", "", 403},
				{"GET", "/namespaces/" + victim + "/limits", "", 403},
				{"GET", "/namespaces/_/activations/" + vid, "", 404},
				{"GET", "/namespaces/_/activations/" + vid + "/logs", "", 404},
				{"GET", "/namespaces/_/activations/" + vid + "/result", "", 404},
				{"GET", "/namespaces/" + me + "/activations/" + vid, "", 404},
			} {
				var body any
				if r.body != "" {
					body = r.body
				}
				code, _, out := e.callAuth(key, r.method, "/api/v1"+r.path, body)
				var msg struct{ Error string }
				_ = json.Unmarshal(out, &msg)
				// OpenWhisk names the resource refused: 'ns' or 'ns/entity'.
				p, _, _ := strings.Cut(strings.TrimPrefix(r.path, "/namespaces/"), "?")
				parts := strings.Split(p, "/")
				res := parts[0]
				if len(parts) >= 3 {
					res += "/" + parts[2]
				}
				want := whisk.MsgNotAuthorized(res)
				if r.status == 404 {
					want = whisk.MsgNotFound
				}
				if code != r.status || msg.Error != want {
					t.Errorf("%s %s with %s's key: %d %s; want %d %q", r.method, r.path, me, code, out, r.status, want)
				}
			}
			// Under "_", echo is the caller's own, and lists hold only the caller's.
			code, _, out := e.callAuth(key, "GET", "/api/v1/namespaces/_/actions/echo?code=false", nil)
			var a whisk.Action
			if _ = json.Unmarshal(out, &a); code != 200 || a.Namespace != me {
				t.Errorf("GET _/actions/echo as %s: %d %s", me, code, out)
			}
			code, _, out = e.callAuth(key, "GET", "/api/v1/namespaces/_/activations?docs=true", nil)
			var recs []whisk.Activation
			if err := json.Unmarshal(out, &recs); code != 200 || err != nil || len(recs) != 1 || recs[0].ActivationID != whisk.ActivationID(ids[me]) {
				t.Errorf("activation list as %s: %d %s", me, code, out)
			}
			code, _, out = e.callAuth(key, "GET", "/api/v1/namespaces", nil)
			if code != 200 || string(bytes.TrimSpace(out)) != fmt.Sprintf("[%q]", me) {
				t.Errorf("namespaces as %s: %d %s", me, code, out)
			}
			// The status route lists the caller's queues only (both
			// tenants' echo queues exist: each invoked it).
			code, _, out = e.callAuth(key, "GET", "/eddy/v1/status", nil)
			var st whisk.ClusterStatus
			if err := json.Unmarshal(out, &st); code != 200 || err != nil || len(st.Queues) != 1 || st.Queues[0].Namespace != me {
				t.Errorf("status as %s: %d %s", me, code, out)
			}
		})
	}
	// The victim's action survived the other's attempts.
	code, _, out := e.callAuth(keys["alice"], "POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true", map[string]any{"owner": "alice"})
	if code != 200 || !strings.Contains(string(out), "alice") {
		t.Fatalf("alice's echo after bobby's attempts: %d %s", code, out)
	}
	// The guest namespace stays.
	if code, _, out := e.call("GET", "/api/v1/namespaces", nil); code != 200 || !strings.Contains(string(out), "guest") {
		t.Fatalf("guest: %d %s", code, out)
	}

	// A deleted key stops working within the cache's bound.
	if got := e.admin("user", "delete", "bobby"); got != "Subject deleted" {
		t.Fatalf("user delete = %q", got)
	}
	took := waitTook(t, cacheBound, "deleted key refused", func() bool {
		code, _, _ := e.callAuth(keys["bobby"], "GET", "/api/v1/namespaces/_/actions", nil)
		return code == 401
	})
	t.Logf("deleted key refused after %v", took)
}

// TestTenantLimits shows `eddy admin limits set` changing a running
// standalone's 429s: the per-minute rate and the concurrent-containers
// limit of one namespace, leaving another namespace alone.
func TestTenantLimits(t *testing.T) {
	e := startEddy(t, "process", "", "--container-idle-timeout", "5m")
	key := e.admin("user", "create", "carol")
	body := map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": sleepPy}}
	for _, name := range []string{"first", "second"} {
		waitTook(t, cacheBound, "new key accepted", func() bool {
			code, _, _ := e.callAuth(key, "PUT", "/api/v1/namespaces/_/actions/"+name, body)
			return code == 200
		})
	}
	invoke := func(name string) (int, string, []byte) {
		code, hdr, out := e.callAuth(key, "POST", "/api/v1/namespaces/_/actions/"+name+"?blocking=true&result=true", map[string]any{})
		return code, hdr.Get("Retry-After"), out
	}
	if code, _, out := invoke("first"); code != 200 {
		t.Fatalf("first invoke: %d %s", code, out)
	}

	// The rate: 3 a minute. Some invocation past the third is refused.
	e.admin("limits", "set", "carol", "--invocationsPerMinute", "3")
	if got := e.admin("limits", "get", "carol"); got != "invocationsPerMinute = 3" {
		t.Fatalf("limits get = %q", got)
	}
	var last []byte
	took := waitTook(t, cacheBound, "per-minute 429", func() bool {
		code, retry, out := invoke("first")
		last = out
		return code == 429 && retry != ""
	})
	var th struct{ Error, Limit string }
	if err := json.Unmarshal(last, &th); err != nil || th.Limit != whisk.LimitInvocationsPerMinute ||
		!strings.HasPrefix(th.Error, "Too many requests in the last minute") || !strings.HasSuffix(th.Error, "allowed: 3).") {
		t.Fatalf("429 body %s", last)
	}
	t.Logf("rate limit 3/min in force after %v", took)
	// Another namespace is not throttled.
	e.createAction("guestecho", "python:3.11", echoPy, nil)
	e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/guestecho?blocking=true&result=true", map[string]any{})

	// Raised: carol's invocations pass again.
	e.admin("limits", "set", "carol", "--invocationsPerMinute", "1000")
	waitTook(t, cacheBound, "raised rate admits", func() bool {
		code, _, _ := invoke("first")
		return code == 200
	})

	// One container for the namespace: "first" holds it, busy, so
	// "second" cannot have one: 429 on the concurrent-containers limit.
	// (An idle one would be given up to "second": a namespace at its
	// limit reclaims its own idle containers for its waiting actions.)
	busy := make(chan int, 1)
	go func() {
		code, _, _ := e.callAuth(key, "POST", "/api/v1/namespaces/_/actions/first?blocking=true&result=true", map[string]any{"ms": 20000})
		busy <- code
	}()
	e.admin("limits", "set", "carol", "--concurrentInvocations", "1")
	if got := e.admin("limits", "get", "carol"); got != "invocationsPerMinute = 1000\nconcurrentInvocations = 1" {
		t.Fatalf("limits get = %q", got)
	}
	took = waitTook(t, cacheBound+10*time.Second, "concurrent-containers 429", func() bool {
		code, retry, out := invoke("second")
		last = out
		return code == 429 && retry != ""
	})
	if err := json.Unmarshal(last, &th); err != nil || th.Limit != whisk.LimitConcurrentContainers ||
		!strings.HasPrefix(th.Error, "Too many concurrent requests in flight") {
		t.Fatalf("429 body %s", last)
	}
	t.Logf("concurrent limit 1 in force after %v", took)
	if code := <-busy; code != 200 {
		t.Fatalf("first, busy in the namespace's one container: %d", code)
	}
	if code, _, out := invoke("first"); code != 200 {
		t.Fatalf("first, which has the namespace's one container: %d %s", code, out)
	}

	// Back to the defaults: "second" runs.
	if got := e.admin("limits", "delete", "carol"); got != "Limits deleted" {
		t.Fatalf("limits delete = %q", got)
	}
	waitTook(t, cacheBound+10*time.Second, "defaults admit second", func() bool {
		code, _, _ := invoke("second")
		return code == 200
	})
	if got := e.admin("limits", "get", "carol"); !slices.Contains([]string{"No limits found, default system limits apply"}, got) {
		t.Fatalf("limits get after delete = %q", got)
	}
}
