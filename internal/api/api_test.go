package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeInvoker answers Invoke with a configured result and remembers requests.
type fakeInvoker struct {
	mu   sync.Mutex
	reqs []controller.Request
	fn   func(controller.Request) (controller.Result, error)
}

func (f *fakeInvoker) Invoke(_ context.Context, req controller.Request) (controller.Result, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return controller.Result{ActivationID: whisk.NewActivationID()}, nil
	}
	return fn(req)
}

func (f *fakeInvoker) set(fn func(controller.Request) (controller.Result, error)) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *fakeInvoker) last() controller.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

// racyStore lets a test slip a write in between an update's read and its write.
type racyStore struct {
	*sqlite.Store
	mu     sync.Mutex
	before func()
}

func (s *racyStore) PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error) {
	s.mu.Lock()
	fn := s.before
	s.before = nil
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
	return s.Store.PutAction(ctx, a, expectRev)
}

type rig struct {
	srv    *httptest.Server
	store  *racyStore
	inv    *fakeInvoker
	bus    *memory.Bus
	limits whisk.SystemLimits
}

const (
	otherUUID = "11111111-2222-3333-4444-555555555555"
	otherKey  = "otherkey"
)

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "eddy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, id := range []whisk.Identity{
		{Subject: "guest", Namespace: "guest", UUID: whisk.GuestUUID, Key: whisk.GuestKey},
		{Subject: "other", Namespace: "other", UUID: otherUUID, Key: otherKey},
	} {
		if err := st.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	limits := whisk.DefaultSystemLimits()
	limits.MaxCode = 4096
	limits.MaxPayload = 1024
	r := &rig{store: &racyStore{Store: st}, inv: &fakeInvoker{}, bus: memory.New(nil), limits: limits}
	h := newHandler(t, Config{Build: "test", BuildNo: "1", Limits: limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, APIDocs: StoreAPIDocs(r.store),
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

type resp struct {
	status int
	hdr    http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// auth values for do.
const (
	asGuest = "guest"
	noAuth  = ""
)

func (r *rig) do(t *testing.T, method, path, body, who string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch who {
	case asGuest:
		req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
	case "other":
		req.SetBasicAuth(otherUUID, otherKey)
	case noAuth:
	default:
		req.Header.Set("Authorization", who)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, hdr: res.Header, body: b}
}

var tidRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// wantError checks an error response: status, message (exact, or prefix
// when it ends with "..."), and the {"error","code"} shape.
func wantError(t *testing.T, r resp, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e map[string]any
	if err := json.Unmarshal(r.body, &e); err != nil || len(e) != 2 {
		t.Fatalf("error body %q is not {error, code}", r.body)
	}
	code, _ := e["code"].(string)
	if !tidRE.MatchString(code) {
		t.Fatalf("code %q is not a transaction id", e["code"])
	}
	got, _ := e["error"].(string)
	if p, ok := strings.CutSuffix(msg, "..."); ok {
		if !strings.HasPrefix(got, p) {
			t.Fatalf("error %q, want prefix %q", got, p)
		}
	} else if got != msg {
		t.Fatalf("error %q, want %q", got, msg)
	}
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

const helloPut = `{"namespace":"_","name":"hello","exec":{"kind":"python:3.11","code":"def main(a):\n  return a"}}`

func TestAuthAndRoutes(t *testing.T) {
	r := newRig(t)
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest); res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	tests := []struct {
		name, method, path, who string
		status                  int
		msg                     string
	}{
		{"no credentials", "GET", "/api/v1/namespaces/_/actions", noAuth, 401, whisk.MsgAuthMissing},
		{"wrong key", "GET", "/api/v1/namespaces/_/actions", "Basic " + base64.StdEncoding.EncodeToString([]byte(whisk.GuestUUID+":nope")), 401, whisk.MsgAuthInvalid},
		{"unknown uuid", "GET", "/api/v1/namespaces/_/actions", "Basic " + base64.StdEncoding.EncodeToString([]byte("nobody:x")), 401, whisk.MsgAuthInvalid},
		{"not basic", "GET", "/api/v1/namespaces/_/actions", "Bearer abc", 401, whisk.MsgAuthInvalid},
		{"bad base64", "GET", "/api/v1/namespaces/_/actions", "Basic !!!", 401, whisk.MsgAuthInvalid},
		{"namespaces needs auth", "GET", "/api/v1/namespaces", noAuth, 401, whisk.MsgAuthMissing},
		{"another namespace", "GET", "/api/v1/namespaces/other/actions", asGuest, 403, whisk.MsgNotAuthorized("other")},
		{"another namespace's action", "GET", "/api/v1/namespaces/guest/actions/hello", "other", 403, whisk.MsgNotAuthorized("guest/hello")},
		{"another namespace's activations", "GET", "/api/v1/namespaces/guest/activations", "other", 403, whisk.MsgNotAuthorized("guest")},
		{"unknown route", "GET", "/api/v1/nothing", asGuest, 404, whisk.MsgNotFound},
		{"unknown collection", "GET", "/api/v1/namespaces/_/triggers", asGuest, 404, whisk.MsgNotFound},
		{"method on root", "POST", "/", noAuth, 405, whisk.MsgMethodNotAllowed},
		{"method on action", "PATCH", "/api/v1/namespaces/_/actions/hello", asGuest, 405, whisk.MsgMethodNotAllowed},
		{"method on list", "DELETE", "/api/v1/namespaces/_/actions", asGuest, 405, whisk.MsgMethodNotAllowed},
		{"method on activation", "PUT", "/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef", asGuest, 405, whisk.MsgMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := r.do(t, tc.method, tc.path, "", tc.who)
			wantError(t, res, tc.status, tc.msg)
			if tc.status == 401 && res.hdr.Get("WWW-Authenticate") != `Basic realm="OpenWhisk secure realm"` {
				t.Fatalf("WWW-Authenticate %q", res.hdr.Get("WWW-Authenticate"))
			}
			if res.hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatal("no CORS header on an error")
			}
		})
	}

	t.Run("own namespace by name", func(t *testing.T) {
		if res := r.do(t, "GET", "/api/v1/namespaces/guest/actions/hello", "", asGuest); res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("options", func(t *testing.T) {
		res := r.do(t, "OPTIONS", "/api/v1/namespaces/_/actions/hello", "", noAuth)
		if res.status != 200 || res.hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%d %v", res.status, res.hdr)
		}
	})
	t.Run("root", func(t *testing.T) {
		res := r.do(t, "GET", "/", "", noAuth)
		m := res.json(t)
		if res.status != 200 || res.hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%d", res.status)
		}
		if p, _ := m["api_paths"].([]any); len(p) != 1 || p[0] != "/api/v1" {
			t.Fatalf("api_paths %v", m["api_paths"])
		}
		lim, _ := m["limits"].(map[string]any)
		if lim["actions_per_minute"] != float64(r.limits.InvocationsPerMinute) || lim["max_action_memory"] != float64(512*1024*1024) {
			t.Fatalf("limits %v", lim)
		}
		rts, _ := m["runtimes"].(map[string]any)
		if _, ok := rts["python"]; !ok {
			t.Fatalf("runtimes %v", m["runtimes"])
		}
	})
	t.Run("api info", func(t *testing.T) {
		res := r.do(t, "GET", "/api/v1", "", noAuth)
		if m := res.json(t); res.status != 200 || m["api_version_path"] != "v1" || m["build"] != "test" {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("head", func(t *testing.T) {
		// HEAD answers as GET does (akka-http's transparent HEAD), without
		// the body; a route without GET still answers 405.
		get := r.do(t, "GET", "/api/v1/namespaces/_/actions/hello", "", asGuest)
		res := r.do(t, "HEAD", "/api/v1/namespaces/_/actions/hello", "", asGuest)
		if res.status != 200 || len(res.body) != 0 || res.hdr.Get("Content-Type") != get.hdr.Get("Content-Type") || res.hdr.Get("Content-Length") != strconv.Itoa(len(get.body)) {
			t.Fatalf("HEAD: %d %v %q (GET: %d bytes)", res.status, res.hdr, res.body, len(get.body))
		}
		if res := r.do(t, "HEAD", "/api/v1/namespaces/_/actions/missing", "", asGuest); res.status != 404 || len(res.body) != 0 {
			t.Fatalf("HEAD of a missing action: %d %q", res.status, res.body)
		}
		if res := r.do(t, "HEAD", "/api/v1/namespaces/_/actions/hello", "", noAuth); res.status != 401 {
			t.Fatalf("HEAD without credentials: %d", res.status)
		}
		if res := r.do(t, "HEAD", "/api/v1", "", noAuth); res.status != 200 || len(res.body) != 0 {
			t.Fatalf("HEAD /api/v1: %d", res.status)
		}
	})
	t.Run("namespaces", func(t *testing.T) {
		res := r.do(t, "GET", "/api/v1/namespaces", "", asGuest)
		if res.status != 200 || string(res.body) != `["guest"]` {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("namespace limits", func(t *testing.T) {
		res := r.do(t, "GET", "/api/v1/namespaces/_/limits", "", asGuest)
		if m := res.json(t); res.status != 200 || m["invocationsPerMinute"] != float64(r.limits.InvocationsPerMinute) {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
}

func decodeAction(t *testing.T, b []byte) whisk.Action {
	t.Helper()
	var a whisk.Action
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return a
}

func annotation(a whisk.Action, key string) string {
	v, _ := a.Annotations.Get(key)
	return string(v)
}

func TestActionLifecycle(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	const path = "/api/v1/namespaces/_/actions/hello"

	res := r.do(t, "PUT", path+"?overwrite=false",
		`{"exec":{"kind":"python:default","code":"def main(a): return a","binary":true},
		  "parameters":[{"key":"p","value":"v"}],"annotations":[{"key":"a1","value":"x"}],
		  "limits":{"timeout":30000}}`, asGuest)
	if res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	a := decodeAction(t, res.body)
	switch {
	case a.Namespace != "guest" || a.Name != "hello" || a.Version != "0.0.1":
		t.Fatalf("identity fields %+v", a)
	case a.Exec.Kind != "python:3.11" || a.Exec.Binary || a.Exec.Code == "":
		t.Fatalf("exec %+v (kind resolved, binary never trusted)", a.Exec)
	case a.Limits != (whisk.Limits{Timeout: 30000, Memory: 256, Logs: 10, Concurrency: 1}):
		t.Fatalf("limits %+v", a.Limits)
	case annotation(a, "exec") != `"python:3.11"` || annotation(a, "provide-api-key") != "false" || annotation(a, "a1") != `"x"`:
		t.Fatalf("annotations %s", a.Annotations)
	case a.Updated == 0:
		t.Fatal("updated not set")
	}
	if err := r.bus.Publish(ctx, whisk.ActionTopic(whisk.FQN{Namespace: "guest", Name: "hello"}), []byte("x")); err != nil {
		t.Fatalf("action topic not created: %v", err)
	}

	wantError(t, r.do(t, "PUT", path, helloPut, asGuest), 409, whisk.MsgExists)
	wantError(t, r.do(t, "PUT", path+"?overwrite=false", helloPut, asGuest), 409, whisk.MsgExists)

	// Update: merges, bumps the patch, keeps what is not given.
	res = r.do(t, "PUT", path+"?overwrite=true",
		`{"annotations":[{"key":"web-export","value":true}],"delAnnotations":["a1"],"limits":{"memory":512}}`, asGuest)
	if res.status != 200 {
		t.Fatalf("update: %d %s", res.status, res.body)
	}
	u := decodeAction(t, res.body)
	switch {
	case u.Version != "0.0.2":
		t.Fatalf("version %s", u.Version)
	case u.Exec.Kind != a.Exec.Kind || u.Exec.Code != a.Exec.Code || string(u.Parameters[0].Value) != `"v"`:
		t.Fatalf("exec or parameters lost: %+v %s", u.Exec, u.Parameters)
	case u.Limits != (whisk.Limits{Timeout: 30000, Memory: 512, Logs: 10, Concurrency: 1}):
		t.Fatalf("limits %+v", u.Limits)
	case annotation(u, "web-export") != "true" || annotation(u, "a1") != "" || annotation(u, "exec") != `"python:3.11"`:
		t.Fatalf("annotations %s", u.Annotations)
	}
	res = r.do(t, "PUT", path+"?overwrite=true", `{"exec":{"kind":"native","code":"UEsDBA=="}}`, asGuest)
	if u = decodeAction(t, res.body); res.status != 200 || u.Version != "0.0.3" || !u.Exec.Binary || annotation(u, "exec") != `"native"` {
		t.Fatalf("update exec: %d %s", res.status, res.body)
	}

	// Concurrent modification between the read and the write of an update.
	r.store.mu.Lock()
	r.store.before = func() {
		cur, err := r.store.Store.GetAction(ctx, "guest", "hello")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := r.store.Store.PutAction(ctx, cur, cur.Rev); err != nil {
			t.Error(err)
		}
	}
	r.store.mu.Unlock()
	wantError(t, r.do(t, "PUT", path+"?overwrite=true", `{"publish":true}`, asGuest), 409, whisk.MsgConcurrentUpdate)

	// Get with and without code.
	res = r.do(t, "GET", path, "", asGuest)
	if g := decodeAction(t, res.body); res.status != 200 || g.Exec.Code != "UEsDBA==" {
		t.Fatalf("get: %d %s", res.status, res.body)
	}
	res = r.do(t, "GET", path+"?code=false", "", asGuest)
	if res.status != 200 || bytes.Contains(res.body, []byte(`"code"`)) {
		t.Fatalf("get code=false: %d %s", res.status, res.body)
	}

	// Delete: 200 with the entity, then 404; the topic goes.
	res = r.do(t, "DELETE", path, "", asGuest)
	if d := decodeAction(t, res.body); res.status != 200 || d.Name != "hello" || d.Exec.Code == "" {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	if err := r.bus.Publish(ctx, whisk.ActionTopic(whisk.FQN{Namespace: "guest", Name: "hello"}), []byte("x")); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("action topic not deleted: %v", err)
	}
	wantError(t, r.do(t, "GET", path, "", asGuest), 404, whisk.MsgNotFound)
	wantError(t, r.do(t, "DELETE", path, "", asGuest), 404, whisk.MsgNotFound)
	wantError(t, r.do(t, "PUT", path+"?overwrite=true", `{"publish":true}`, asGuest), 400, whisk.MsgMalformed+"exec undefined")
}

func TestActionPutErrors(t *testing.T) {
	r := newRig(t)
	const path = "/api/v1/namespaces/_/actions/"
	big := strings.Repeat("a", 5000)
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"malformed json", "x", `{"exec":`, 400, whisk.MsgMalformed + "..."},
		{"wrong type", "x", `{"exec":{"kind":1}}`, 400, whisk.MsgMalformed + "..."},
		{"no exec", "x", `{}`, 400, whisk.MsgMalformed + "..."},
		{"no kind", "x", `{"exec":{"code":"x"}}`, 400, whisk.MsgMalformed + "..."},
		{"unknown kind", "x", `{"exec":{"kind":"cobol:1","code":"x"}}`, 400,
			whisk.MsgMalformed + whisk.MsgUnsupportedKind("cobol:1", manifest.Default().Kinds())},
		{"sequence of a missing action", "x", `{"exec":{"kind":"sequence","components":["/_/a"]}}`, 400,
			whisk.MsgSequenceComponentGone},
		{"no code", "x", `{"exec":{"kind":"python:3.11"}}`, 400, whisk.MsgMalformed + "..."},
		{"blackbox without image", "x", `{"exec":{"kind":"blackbox"}}`, 400, whisk.MsgMalformed + "..."},
		{"memory too high", "x", `{"exec":{"kind":"python:3.11","code":"x"},"limits":{"memory":1024}}`, 400,
			"memory 1024 MB exceeds allowed threshold of 512 MB"},
		{"timeout too low", "x", `{"exec":{"kind":"python:3.11","code":"x"},"limits":{"timeout":10}}`, 400,
			"timeout 10 milliseconds below allowed threshold of 100 milliseconds"},
		{"logs too high", "x", `{"exec":{"kind":"python:3.11","code":"x"},"limits":{"logs":11}}`, 400,
			"logs 11 MB exceeds allowed threshold of 10 MB"},
		{"concurrency too high", "x", `{"exec":{"kind":"python:3.11","code":"x"},"limits":{"concurrency":2}}`, 400,
			"concurrency 2 exceeds allowed threshold of 1"},
		{"bad version", "x", `{"exec":{"kind":"python:3.11","code":"x"},"version":"one"}`, 400, whisk.MsgMalformed + "..."},
		{"bad name", "-bad", `{"exec":{"kind":"python:3.11","code":"x"}}`, 400, whisk.MsgBadEntityName},
		{"name ends in space", "bad%20", `{"exec":{"kind":"python:3.11","code":"x"}}`, 400, whisk.MsgBadEntityName},
		{"package missing", "pkg/x", `{"exec":{"kind":"python:3.11","code":"x"}}`, 404, whisk.MsgNotFound},
		{"bad overwrite", "x?overwrite=maybe", `{"exec":{"kind":"python:3.11","code":"x"}}`, 400,
			"The query parameter 'overwrite' was malformed:\n..."},
		{"code over MaxCode", "x", `{"exec":{"kind":"python:3.11","code":"` + big + `"}}`, 413,
			whisk.MsgPayloadTooLarge(5000, 4096)},
		{"parameters over MaxPayload", "x", `{"exec":{"kind":"python:3.11","code":"x"},"parameters":[{"key":"k","value":"` + strings.Repeat("p", 2000) + `"}]}`, 413,
			"The request content was too large..."},
		{"body over the PUT bound", "x", `{"exec":{"kind":"python:3.11","code":"` + strings.Repeat("a", 4096+1024+putSlack) + `"}}`, 413,
			"The request content was too large..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, r.do(t, "PUT", path+tc.path, tc.body, asGuest), tc.status, tc.msg)
		})
	}

	t.Run("blackbox and native", func(t *testing.T) {
		res := r.do(t, "PUT", path+"d", `{"exec":{"kind":"blackbox","image":"img"}}`, asGuest)
		if a := decodeAction(t, res.body); res.status != 200 || a.Exec.Image != "img" || a.Exec.Binary {
			t.Fatalf("docker: %d %s", res.status, res.body)
		}
		res = r.do(t, "PUT", path+"n", `{"exec":{"kind":"blackbox","image":"openwhisk/dockerskeleton","code":"UEsDBBQAAAAIAA=="}}`, asGuest)
		if a := decodeAction(t, res.body); res.status != 200 || !a.Exec.Binary || a.Exec.Code == "" {
			t.Fatalf("native: %d %s", res.status, res.body)
		}
	})
	t.Run("provide-api-key kept when given", func(t *testing.T) {
		res := r.do(t, "PUT", path+"k", `{"exec":{"kind":"python:3.11","code":"x"},"annotations":[{"key":"provide-api-key","value":true}]}`, asGuest)
		if a := decodeAction(t, res.body); res.status != 200 || annotation(a, "provide-api-key") != "true" {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
}

func TestActionList(t *testing.T) {
	r := newRig(t)
	for _, n := range []string{"a", "b", "c"} {
		if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/"+n, helloPut, asGuest); res.status != 200 {
			t.Fatalf("create %s: %d %s", n, res.status, res.body)
		}
	}
	const path = "/api/v1/namespaces/_/actions"
	list := func(t *testing.T, q string) []map[string]any {
		t.Helper()
		res := r.do(t, "GET", path+q, "", asGuest)
		if res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		var out []map[string]any
		if err := json.Unmarshal(res.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list(t, "?limit=30&skip=0"); len(got) != 3 {
		t.Fatalf("%d actions", len(got))
	} else {
		exec, _ := got[0]["exec"].(map[string]any)
		if len(exec) != 1 || exec["binary"] != false || got[0]["name"] != "a" || got[0]["annotations"] == nil || got[0]["limits"] == nil {
			t.Fatalf("summary %v", got[0])
		}
	}
	if got := list(t, "?limit=1&skip=1"); len(got) != 1 || got[0]["name"] != "b" {
		t.Fatalf("paging %v", got)
	}
	if got := list(t, "?limit=0"); len(got) != 3 {
		t.Fatalf("limit=0: %d", len(got))
	}
	if got := list(t, "/"); len(got) != 3 {
		t.Fatalf("trailing slash: %d", len(got))
	}
	res := r.do(t, "GET", path+"?count=true", "", asGuest)
	if res.status != 200 || string(res.body) != `{"actions":3}` {
		t.Fatalf("count: %d %s", res.status, res.body)
	}
	tests := []struct{ q, msg string }{
		{"?limit=201", "The value '201' is not in the range of 0 to 200 for actions."},
		{"?limit=-1", "The value '-1' is not in the range of 0 to 200 for actions."},
		{"?limit=abc", "The query parameter 'limit' was malformed:\n..."},
		{"?skip=-1", "The value '-1' is not greater than or equal to 0 for actions."},
		{"?skip=x", "The query parameter 'skip' was malformed:\n..."},
		{"?count=yes", "The query parameter 'count' was malformed:\n..."},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) { wantError(t, r.do(t, "GET", path+tc.q, "", asGuest), 400, tc.msg) })
	}
}

func record(id whisk.ActivationID, name string, start int64, code int, result string) whisk.Activation {
	return whisk.Activation{
		Namespace: "guest", Name: name, Version: "0.0.1", Subject: "guest", ActivationID: id,
		Start: start, End: start + 5, Duration: 5, StatusCode: code,
		Response:    whisk.NewResponse(code, json.RawMessage(result)),
		Logs:        []string{"2025-01-01T00:00:00.000000000Z stdout: hi"},
		Annotations: whisk.Params{{Key: "path", Value: json.RawMessage(`"guest/` + name + `"`)}},
	}
}

func TestInvoke(t *testing.T) {
	r := newRig(t)
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest); res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	const path = "/api/v1/namespaces/_/actions/hello"
	id := whisk.NewActivationID()
	finished := func(code int, result string) func(controller.Request) (controller.Result, error) {
		return func(controller.Request) (controller.Result, error) {
			a := record(id, "hello", 1, code, result)
			return controller.Result{ActivationID: id, Activation: &a}, nil
		}
	}
	fails := func(kind whisk.Kind, msg string) func(controller.Request) (controller.Result, error) {
		return func(controller.Request) (controller.Result, error) {
			return controller.Result{}, whisk.E("fake", kind, msg, nil)
		}
	}
	accepted := func(controller.Request) (controller.Result, error) { return controller.Result{ActivationID: id}, nil }

	tests := []struct {
		name, query, body string
		fn                func(controller.Request) (controller.Result, error)
		status            int
		want              string // exact body (JSON) or, with errMsg, ignored
		errMsg            string
	}{
		{name: "non-blocking", query: "?blocking=false&result=false", body: `{"name":"Ada"}`, fn: accepted, status: 202,
			want: `{"activationId":"` + string(id) + `"}`},
		{name: "blocking not finished", query: "?blocking=true", fn: accepted, status: 202,
			want: `{"activationId":"` + string(id) + `"}`},
		{name: "blocking result", query: "?blocking=true&result=true", fn: finished(0, `{"ok":true}`), status: 200, want: `{"ok":true}`},
		{name: "blocking array result", query: "?blocking=true&result=true", fn: finished(0, `[1,2]`), status: 200, want: `[1,2]`},
		{name: "application error result", query: "?blocking=true&result=true", fn: finished(1, `{"error":"boom"}`), status: 502, want: `{"error":"boom"}`},
		{name: "developer error", query: "?blocking=true", fn: finished(2, `{"error":"bad"}`), status: 502},
		{name: "whisk error", query: "?blocking=true", fn: finished(3, `{"error":"oops"}`), status: 500},
		{name: "blocking record", query: "?blocking=true", fn: finished(0, `{"ok":true}`), status: 200},
		{name: "throttled", fn: fails(whisk.Throttled, whisk.MsgTooManyPerMinute(61, 60)), status: 429, errMsg: whisk.MsgTooManyPerMinute(61, 60)},
		{name: "no scheduler", fn: fails(whisk.Unavailable, whisk.MsgNoSchedulers), status: 503, errMsg: whisk.MsgNoSchedulers},
		{name: "final parameter", fn: fails(whisk.Invalid, whisk.MsgReservedParams), status: 400, errMsg: whisk.MsgReservedParams},
		{name: "timeout not a number", query: "?blocking=true&timeout=abc", status: 400, errMsg: whisk.MsgBadTimeout},
		{name: "timeout zero", query: "?blocking=true&timeout=0", status: 400, errMsg: whisk.MsgBadTimeout},
		{name: "timeout too long", query: "?blocking=true&timeout=60001", status: 400, errMsg: whisk.MsgBadTimeout},
		{name: "bad blocking", query: "?blocking=perhaps", status: 400, errMsg: "The query parameter 'blocking' was malformed:\n..."},
		{name: "malformed body", body: `{"a":`, status: 400, errMsg: whisk.MsgMalformed + "..."},
		{name: "array body", body: `[1]`, status: 400, errMsg: whisk.MsgMalformed + "..."},
		{name: "body too large", body: `{"a":"` + strings.Repeat("x", 1100) + `"}`, status: 413, errMsg: "The request content was too large..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.inv.set(tc.fn)
			res := r.do(t, "POST", path+tc.query, tc.body, asGuest)
			if tc.errMsg != "" {
				wantError(t, res, tc.status, tc.errMsg)
				return
			}
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if res.hdr.Get("x-openwhisk-activation-id") != string(id) {
				t.Fatalf("activation id header %q", res.hdr.Get("x-openwhisk-activation-id"))
			}
			if tc.want != "" && string(res.body) != tc.want {
				t.Fatalf("body %s, want %s", res.body, tc.want)
			}
			if tc.want == "" {
				m := res.json(t)
				if m["activationId"] != string(id) || m["code"] != nil || m["response"] == nil {
					t.Fatalf("record %s", res.body)
				}
			}
		})
	}

	t.Run("request passed to the controller", func(t *testing.T) {
		r.inv.set(accepted)
		r.do(t, "POST", path+"?blocking=true&timeout=1500", `{"name":"Ada"}`, asGuest)
		req := r.inv.last()
		if !req.Blocking || req.Wait != 1500*time.Millisecond || string(req.Params) != `{"name":"Ada"}` ||
			req.Identity.Namespace != "guest" || req.Action.Name != "hello" || req.Action.Rev == 0 || !tidRE.MatchString(req.TransactionID) {
			t.Fatalf("request %+v", req)
		}
	})
	t.Run("missing action", func(t *testing.T) {
		wantError(t, r.do(t, "POST", "/api/v1/namespaces/_/actions/nope", "", asGuest), 404, whisk.MsgNotFound)
	})
	t.Run("panic", func(t *testing.T) {
		r.inv.set(func(controller.Request) (controller.Result, error) { panic("boom") })
		wantError(t, r.do(t, "POST", path, "", asGuest), 500, whisk.MsgInternal)
	})
}

func TestActivations(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	ids := make([]whisk.ActivationID, 4)
	for i := range ids {
		ids[i] = whisk.NewActivationID()
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		if err := r.store.PutActivation(ctx, record(ids[i], name, int64(1000*(i+1)), i%2, `{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	const path = "/api/v1/namespaces/_/activations"
	list := func(t *testing.T, q string) []map[string]any {
		t.Helper()
		res := r.do(t, "GET", path+q, "", asGuest)
		if res.status != 200 {
			t.Fatalf("%d %s", res.status, res.body)
		}
		var out []map[string]any
		if err := json.Unmarshal(res.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := list(t, "?limit=30&skip=0")
	if len(got) != 4 || got[0]["activationId"] != string(ids[3]) {
		t.Fatalf("list %v", got)
	}
	if _, ok := got[0]["response"]; ok {
		t.Fatalf("summary has a response: %v", got[0])
	}
	if _, ok := got[0]["logs"]; ok || got[0]["statusCode"] != float64(1) || got[0]["annotations"] == nil {
		t.Fatalf("summary %v", got[0])
	}
	if got = list(t, "?docs=true&limit=1"); len(got) != 1 || got[0]["response"] == nil || got[0]["logs"] == nil {
		t.Fatalf("docs %v", got)
	}
	if got = list(t, "?name=a"); len(got) != 2 || got[0]["name"] != "a" {
		t.Fatalf("name filter %v", got)
	}
	if got = list(t, "?since=2000&upto=3000"); len(got) != 2 {
		t.Fatalf("since/upto %v", got)
	}
	if got = list(t, "?limit=1&skip=1"); len(got) != 1 || got[0]["activationId"] != string(ids[2]) {
		t.Fatalf("paging %v", got)
	}
	res := r.do(t, "GET", path+"?count=true&name=b", "", asGuest)
	if res.status != 200 || string(res.body) != `{"activations":2}` {
		t.Fatalf("count %d %s", res.status, res.body)
	}

	res = r.do(t, "GET", path+"/"+string(ids[0]), "", asGuest)
	if m := res.json(t); res.status != 200 || m["activationId"] != string(ids[0]) || m["response"] == nil {
		t.Fatalf("get %d %s", res.status, res.body)
	}
	res = r.do(t, "GET", path+"/"+string(ids[0])+"/logs", "", asGuest)
	if res.status != 200 || string(res.body) != `{"logs":["2025-01-01T00:00:00.000000000Z stdout: hi"]}` {
		t.Fatalf("logs %d %s", res.status, res.body)
	}
	res = r.do(t, "GET", path+"/"+string(ids[1])+"/result", "", asGuest)
	if m := res.json(t); res.status != 200 || m["status"] != "application error" || m["success"] != false ||
		m["result"].(map[string]any)["n"] != float64(1) {
		t.Fatalf("result %d %s", res.status, res.body)
	}

	tests := []struct {
		name, q string
		status  int
		msg     string
	}{
		{"limit range", "?limit=500", 400, "The value '500' is not in the range of 0 to 200 for activations."},
		{"skip range", "?skip=-3", 400, "The value '-3' is not greater than or equal to 0 for activations."},
		{"count with docs", "?count=true&docs=true", 400, msgDocsWithCount},
		{"bad since", "?since=yesterday", 400, "The query parameter 'since' was malformed:\n..."},
		{"bad upto", "?upto=1.5", 400, "The query parameter 'upto' was malformed:\n..."},
		{"bad docs", "?docs=1x", 400, "The query parameter 'docs' was malformed:\n..."},
		{"bad name", "?name=-x", 400, whisk.MsgBadEntityName},
		{"bad id", "/xyz", 400, whisk.MsgBadActivationID},
		{"bad id upper case", "/" + strings.ToUpper(string(ids[0])), 400, whisk.MsgBadActivationID},
		{"bad id logs", "/xyz/logs", 400, whisk.MsgBadActivationID},
		{"missing", "/0123456789abcdef0123456789abcdef", 404, whisk.MsgNotFound},
		{"missing result", "/0123456789abcdef0123456789abcdef/result", 404, whisk.MsgNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantError(t, r.do(t, "GET", path+tc.q, "", asGuest), tc.status, tc.msg) })
	}
	t.Run("other namespace sees none", func(t *testing.T) {
		res := r.do(t, "GET", "/api/v1/namespaces/_/activations/"+string(ids[0]), "", "other")
		wantError(t, res, 404, whisk.MsgNotFound)
	})
}

// TestInvokeThrottled checks a 429's status, message, Retry-After header and
// "limit" field for both limits, through the API's one error writer.
func TestInvokeThrottled(t *testing.T) {
	r := newRig(t)
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest); res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	const path = "/api/v1/namespaces/_/actions/hello?blocking=true"
	tests := []struct {
		name       string
		throttle   *whisk.Throttle
		msg, limit string
		retryAfter string
	}{
		{name: "per minute", throttle: &whisk.Throttle{Limit: whisk.LimitInvocationsPerMinute, RetryAfter: 12300 * time.Millisecond, Count: 61, Allowed: 60},
			msg: whisk.MsgTooManyPerMinute(61, 60), limit: "invocationsPerMinute", retryAfter: "13"},
		{name: "per minute at the boundary", throttle: &whisk.Throttle{Limit: whisk.LimitInvocationsPerMinute, RetryAfter: 0, Count: 3, Allowed: 2},
			msg: whisk.MsgTooManyPerMinute(3, 2), limit: "invocationsPerMinute", retryAfter: "1"},
		{name: "concurrent", throttle: &whisk.Throttle{Limit: whisk.LimitConcurrentContainers, RetryAfter: time.Second, Count: 100, Allowed: 100},
			msg: whisk.MsgTooManyConcurrent(100, 100), limit: "concurrentContainers", retryAfter: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.inv.set(func(controller.Request) (controller.Result, error) {
				// Wrapped once more, as a caller adding context would.
				return controller.Result{}, fmt.Errorf("invoke: %w", whisk.ThrottledError("fake", tc.throttle))
			})
			res := r.do(t, "POST", path, "", asGuest)
			if res.status != http.StatusTooManyRequests {
				t.Fatalf("status %d, want 429: %s", res.status, res.body)
			}
			if got := res.hdr.Get("Retry-After"); got != tc.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			var e map[string]any
			if err := json.Unmarshal(res.body, &e); err != nil || len(e) != 3 {
				t.Fatalf("body %s is not {error, code, limit}", res.body)
			}
			if e["error"] != tc.msg || e["limit"] != tc.limit {
				t.Fatalf("body %s, want error %q limit %q", res.body, tc.msg, tc.limit)
			}
			if code, _ := e["code"].(string); !tidRE.MatchString(code) {
				t.Fatalf("code %q is not a transaction id", e["code"])
			}
		})
	}
	t.Run("other errors carry neither", func(t *testing.T) {
		r.inv.set(func(controller.Request) (controller.Result, error) {
			return controller.Result{}, whisk.E("fake", whisk.Unavailable, whisk.MsgNoSchedulers, nil)
		})
		res := r.do(t, "POST", path, "", asGuest)
		wantError(t, res, 503, whisk.MsgNoSchedulers)
		if res.hdr.Get("Retry-After") != "" {
			t.Fatalf("Retry-After on a 503: %q", res.hdr.Get("Retry-After"))
		}
	})
}

// TestInvokeCarriesCallersKey: the store keeps only key hashes, so the key
// an invocation carries (for provide-api-key, __OW_API_KEY) is the one the
// caller authenticated with; a wrong key of a known UUID is refused.
func TestInvokeCarriesCallersKey(t *testing.T) {
	r := newRig(t)
	if res := r.do(t, "PUT", "/api/v1/namespaces/_/actions/hello", helloPut, asGuest); res.status != 200 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	if res := r.do(t, "POST", "/api/v1/namespaces/_/actions/hello", "", asGuest); res.status != 202 {
		t.Fatalf("invoke: %d %s", res.status, res.body)
	}
	if got, want := r.inv.last().Identity.AuthKey(), whisk.GuestUUID+":"+whisk.GuestKey; got != want {
		t.Fatalf("invocation carries key %q, want the caller's %q", got, want)
	}
	if id, err := r.store.IdentityByUUID(t.Context(), whisk.GuestUUID); err != nil || id.Key != "" {
		t.Fatalf("stored identity %+v, %v: the plain key is readable back", id, err)
	}
	req, err := http.NewRequest("GET", r.srv.URL+"/api/v1/namespaces/_/actions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey[:63]+"x")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong key: status %d, want 401", res.StatusCode)
	}
}
