package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// fuzzRig is a rig with web actions of every mode and an API, driven
// in-process (no sockets) so the fuzzer runs many inputs per second.
func fuzzRig(f *testing.F) (*rig, *fuzzResult) {
	r := newRig(f)
	h := r.srv.Config.Handler
	put := func(name, annotations string) {
		body := `{"exec":{"kind":"python:3.11","code":"x"},"parameters":[{"key":"fixed","value":1}],"annotations":` + annotations + `}`
		req := httptest.NewRequest("PUT", "/api/v1/namespaces/_/actions/"+name, strings.NewReader(body))
		req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			f.Fatalf("create %s: %d %s", name, w.Code, w.Body)
		}
	}
	put("w", `[{"key":"web-export","value":true},{"key":"final","value":true}]`)
	put("raw", `[{"key":"web-export","value":true},{"key":"raw-http","value":true}]`)
	put("sec", `[{"key":"web-export","value":true},{"key":"require-whisk-auth","value":"k"}]`)
	put("opt", `[{"key":"web-export","value":true},{"key":"web-custom-options","value":true}]`)
	req := httptest.NewRequest("POST", mgmt+"createApi.http"+mgmtQuery("&responsetype=http"), strings.NewReader(createBody("/b", "/x/{id}", "get", "w", "", "http://h", true)))
	req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		f.Fatalf("create API: %d %s", w.Code, w.Body)
	}
	res := &fuzzResult{}
	r.inv.set(func(req controller.Request) (controller.Result, error) {
		res.mu.Lock()
		result, code := res.result, res.code
		res.mu.Unlock()
		id := whisk.NewActivationID()
		a := record(id, req.Action.Name, 1, code, string(result))
		return controller.Result{ActivationID: id, Activation: &a}, nil
	})
	return r, res
}

// fuzzResult is what the fake invoker answers with for the current input.
type fuzzResult struct {
	mu     sync.Mutex
	result json.RawMessage
	code   int
}

// FuzzWeb sends arbitrary methods, paths, headers and bodies to the web
// and gateway routes, with arbitrary action results, and checks that every
// answer comes back (no hang), is not a 5xx (the fake invoker never fails;
// api management's 502 {"error"} is OpenWhisk's),
// and carries no header value with a control character.
func FuzzWeb(f *testing.F) {
	r, res := fuzzRig(f)
	h := r.srv.Config.Handler
	for _, s := range []struct {
		method, path, ctype, hname, hval string
		body, result                     string
		code                             uint8
	}{
		{"GET", "v1/web/guest/default/w.json?a=1", "", "", "", "", `{"a":1}`, 0},
		{"POST", "v1/web/guest/default/w.http/p", "application/json", "Accept", "text/html", `{"b":2}`, `{"statusCode":201,"headers":{"X":["1","2"]},"body":"ok"}`, 0},
		{"POST", "v1/web/guest/default/raw", "application/x-www-form-urlencoded", "", "", "a=1&b=2", `{"headers":{"X":"a\r\nb"},"body":"x"}`, 0},
		{"OPTIONS", "v1/web/guest/default/opt.text", "", "Access-Control-Request-Headers", "X-Y", "", `{"text":1}`, 1},
		{"GET", "v1/web/guest/default/sec.svg", "", "X-Require-Whisk-Auth", "k", "", `{"error":{"svg":"<svg/>"}}`, 1},
		{"GET", whisk.GuestUUID + "/b/x/42", "", "", "", "", `{"headers":{"Content-Type":"image/png"},"body":"!!"}`, 0},
		{"PATCH", "v1/web/guest/default/w.json", "application/json", "", "", `{"__ow_user":1}`, `[1]`, 2},
		{"DELETE", "v1/web/whisk.system/apimgmt/deleteApi.http?basepath=%2Fnope", "", "Authorization", "Basic eA==", "", `{}`, 0},
	} {
		f.Add(s.method, s.path, s.ctype, s.hname, s.hval, []byte(s.body), []byte(s.result), s.code)
	}
	f.Fuzz(func(t *testing.T, method, path, ctype, hname, hval string, body, result []byte, code uint8) {
		req, err := http.NewRequest(method, "http://eddy/api/"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if hname != "" {
			req.Header.Set(hname, hval)
		}
		if !json.Valid(result) {
			result = json.RawMessage(`{}`)
		}
		res.mu.Lock()
		res.result, res.code = result, int(code%4)
		res.mu.Unlock()
		w := serveFuzz(t, h, req, method, path)
		if w.Code >= 500 && !mgmtError(w, req) {
			t.Fatalf("%s %s (%s, %q): %d %s", method, path, ctype, result, w.Code, w.Body)
		}
		for k, vs := range w.Header() {
			for _, v := range vs {
				if strings.ContainsAny(k, "\r\n: ") || strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %q: %q", k, v)
				}
			}
		}
	})
}

// serveFuzz serves req with h, failing t when h gives no answer within
// 10 s (method and path name the input).
func serveFuzz(t *testing.T, h http.Handler, req *http.Request, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s %s: no answer within 10 s", method, path)
	}
	return w
}

// mgmtError reports whether w is the one documented 5xx: routemgmt's 502
// {"error"} from apimgmt.
func mgmtError(w *httptest.ResponseRecorder, req *http.Request) bool {
	return w.Code == http.StatusBadGateway && strings.HasPrefix(req.URL.Path, mgmt) &&
		strings.HasPrefix(w.Body.String(), "{\n  \"error\": ")
}
