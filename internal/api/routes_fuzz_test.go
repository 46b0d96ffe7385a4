package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// routeBases are the prefixes FuzzRoutes puts before its path suffix: one
// per REST route family, so that the fuzzer reaches every handler rather
// than the 404 of a mistyped prefix.
var routeBases = []string{
	"",
	"/api/v1",
	"/api/v1/namespaces",
	"/api/v1/namespaces/_/limits",
	"/api/v1/namespaces/_/actions",
	"/api/v1/namespaces/_/actions/",
	"/api/v1/namespaces/guest/actions/pkg/",
	"/api/v1/namespaces/other/actions/",
	"/api/v1/namespaces/_/packages",
	"/api/v1/namespaces/_/packages/",
	"/api/v1/namespaces/_/triggers",
	"/api/v1/namespaces/_/triggers/",
	"/api/v1/namespaces/_/rules",
	"/api/v1/namespaces/_/rules/",
	"/api/v1/namespaces/_/activations",
	"/api/v1/namespaces/_/activations/",
	"/api/v1/namespaces/whisk.system/",
	"/api/v1/web/guest/default/",
	"/api/v1/web/whisk.system/apimgmt/",
	"/eddy/v1/status",
}

// FuzzRoutes sends arbitrary methods, paths, queries, credentials, headers
// and bodies to every REST route of a server wired as the platform wires
// it (a real SQLite store with an action, a package with an action, a
// trigger, a rule and an activation record; triggers and rules served;
// an invoker that always succeeds), and checks that every request is
// answered within 10 s, that nothing panics, that no answer is a 5xx (the
// one documented: routemgmt's 502 {"error"}), and that an error of the
// namespaces' routes has OpenWhisk's {"error", "code"} shape. Requests
// change the store as they go (PUT, DELETE), as a client's would.
func FuzzRoutes(f *testing.F) {
	r := newRig(f)
	r.srv.Close()
	actions := events.CatalogActions{Catalog: catalog.New(r.store)}
	svc := events.NewService(r.store, actions)
	firer := events.NewFirer(r.limits, events.FirerDeps{Triggers: svc, Records: r.store, Actions: actions, Invoker: r.inv})
	h := newHandler(f, Config{Build: "test", BuildNo: "1", Limits: r.limits}, Deps{
		Store: r.store, Invoker: r.inv, Runtimes: manifest.Default(), Topics: r.bus, APIDocs: StoreAPIDocs(r.store),
		Events: svc, Firer: firer, Status: &fakeStatus{st: whisk.ClusterStatus{Revision: 1}},
	})
	r.inv.set(func(req controller.Request) (controller.Result, error) {
		id := whisk.NewActivationID()
		a := record(id, req.Action.Name, 1, 0, `{"ok":true}`)
		return controller.Result{ActivationID: id, Activation: &a}, nil
	})
	serve := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	const action = `{"exec":{"kind":"python:3.11","code":"def main(a): return a"},"annotations":[{"key":"web-export","value":true}]}`
	for _, s := range []struct{ path, body string }{
		{"/api/v1/namespaces/_/actions/a", action},
		{"/api/v1/namespaces/_/packages/pkg", `{"parameters":[{"key":"p","value":1}]}`},
		{"/api/v1/namespaces/_/actions/pkg/b", action},
		{"/api/v1/namespaces/_/triggers/t", `{}`},
		{"/api/v1/namespaces/_/rules/r", `{"trigger":"/_/t","action":"/_/a"}`},
	} {
		if w := serve("PUT", s.path, s.body); w.Code != 200 {
			f.Fatalf("PUT %s: %d %s", s.path, w.Code, w.Body)
		}
	}
	rec := whisk.NewActivationID()
	if err := r.store.PutActivation(context.Background(), record(rec, "a", 1000, 0, `{"n":1}`)); err != nil {
		f.Fatal(err)
	}

	type seed struct {
		method      string
		base        int
		suffix      string
		query       string
		auth        uint8
		ctype       string
		hname, hval string
		body        string
	}
	for _, s := range []seed{
		{"GET", 2, "", "", 0, "", "", "", ""},
		{"GET", 3, "", "", 0, "", "", "", ""},
		{"GET", 4, "", "limit=200&skip=1&docs=true", 0, "", "", "", ""},
		{"GET", 5, "a", "code=true", 0, "", "", "", ""},
		{"POST", 5, "a", "blocking=true&result=true&timeout=100", 0, "application/json", "", "", `{"x":1}`},
		{"POST", 5, "a", "", 0, "application/json", "", "", `[1,2]`},
		{"PUT", 5, "n", "overwrite=true", 0, "application/json", "", "", `{"exec":{"kind":"sequence","components":["/_/a","/_/pkg/b"]}}`},
		{"PUT", 5, "z", "", 0, "application/json", "", "", `{"exec":{"kind":"nodejs:20","code":"x","main":"m"},"limits":{"timeout":100,"memory":128,"logs":1,"concurrency":2},"parameters":[{"key":"k","value":{"a":[1]}}]}`},
		{"DELETE", 5, "a", "", 0, "", "", "", ""},
		{"GET", 6, "b", "", 0, "", "", "", ""},
		{"POST", 6, "b", "blocking=true", 0, "application/json", "", "", `{}`},
		{"GET", 7, "x", "", 0, "", "", "", ""},
		{"GET", 8, "", "public=true", 0, "", "", "", ""},
		{"PUT", 9, "bound", "", 0, "application/json", "", "", `{"binding":{"namespace":"guest","name":"pkg"}}`},
		{"GET", 9, "pkg", "", 1, "", "", "", ""},
		{"PUT", 11, "t2", "overwrite=true", 0, "application/json", "", "", `{"annotations":[{"key":"feed","value":"/whisk.system/alarms/alarm"}],"parameters":[{"key":"cron","value":"* * * * *"}]}`},
		{"POST", 11, "t", "", 0, "application/json", "", "", `{"fired":true}`},
		{"GET", 10, "", "limit=0", 0, "", "", "", ""},
		{"POST", 13, "r", "", 0, "application/json", "", "", `{"status":"inactive"}`},
		{"PUT", 13, "r2", "", 0, "application/json", "", "", `{"trigger":"t","action":"pkg/b"}`},
		{"GET", 12, "", "", 0, "", "", "", ""},
		{"GET", 14, "", "docs=true&limit=200&since=1&upto=99999999999999&name=a", 0, "", "", "", ""},
		{"GET", 15, string(rec) + "/logs", "", 0, "", "", "", ""},
		{"GET", 15, string(rec) + "/result", "", 2, "", "", "", ""},
		{"GET", 16, "actions/alarms/alarm", "", 0, "", "", "", ""},
		{"GET", 17, "a.json", "p=1", 3, "", "Accept", "*/*", ""},
		{"GET", 18, "getApi.http", "", 0, "", "", "", ""},
		{"GET", 19, "", "", 0, "", "", "", ""},
		{"PATCH", 0, "/api/v1/namespaces/_/actions/a", "", 0, "text/plain", "Content-Length", "5", "hello"},
		{"GET", 0, "/api/v1/namespaces/%2e%2e/actions", "", 0, "", "Authorization", "Basic !!", ""},
	} {
		f.Add(s.method, uint8(s.base), s.suffix, s.query, s.auth, s.ctype, s.hname, s.hval, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method string, base uint8, suffix, query string, auth uint8, ctype, hname, hval string, body []byte) {
		path := routeBases[int(base)%len(routeBases)] + suffix
		if query != "" {
			path += "?" + query
		}
		req, err := http.NewRequest(method, "http://eddy"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		switch auth % 4 {
		case 0:
			req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
		case 1:
			req.SetBasicAuth(otherUUID, otherKey)
		case 2:
			req.SetBasicAuth(whisk.GuestUUID, "wrong")
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if hname != "" {
			req.Header.Set(hname, hval)
		}
		w := serveFuzz(t, h, req, method, path)
		if w.Code >= 500 && !mgmtError(w, req) {
			t.Fatalf("%s %s (%s %q): %d %s", method, path, ctype, body, w.Code, w.Body)
		}
		if w.Code >= 400 && strings.HasPrefix(req.URL.Path, "/api/v1/namespaces") && method != http.MethodHead {
			var e struct {
				Error *string `json:"error"`
				Code  *string `json:"code"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil || e.Code == nil {
				t.Fatalf("%s %s: %d with body %q, not {error, code}", method, path, w.Code, w.Body)
			}
		}
	})
}
