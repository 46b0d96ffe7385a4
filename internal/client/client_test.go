package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

const testAuth = whisk.GuestUUID + ":" + whisk.GuestKey

type seen struct {
	method, path, rawPath, query, body string
	header                             http.Header
}

// serve starts a server answering every request with status and body (and
// the activation-id header when id is set) and records what it saw.
func serve(t *testing.T, status int, body, id string) (*Client, *[]seen) {
	t.Helper()
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, string(b), r.Header.Clone()})
		if id != "" {
			w.Header().Set(HeaderActivationID, id)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{APIHost: srv.URL, Auth: testAuth, UserAgent: "test-agent"})
	if err != nil {
		t.Fatal(err)
	}
	return c, &got
}

func TestParseAPIHost(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:3233":  "http://127.0.0.1:3233",
		"http://127.0.0.1:3233/": "http://127.0.0.1:3233",
		"openwhisk.example.com":  "https://openwhisk.example.com",
		"10.0.0.1:443":           "https://10.0.0.1:443",
	} {
		u, err := ParseAPIHost(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseAPIHost(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := ParseAPIHost(bad); err == nil {
			t.Errorf("ParseAPIHost(%q) succeeded", bad)
		}
	}
	if _, err := New(Config{APIHost: "http://x", Auth: "nocolon"}); err == nil {
		t.Error("New accepted an auth key without ':'")
	}
}

func TestRequestHeadersAndPaths(t *testing.T) {
	c, got := serve(t, 200, `{"name":"a b","namespace":"guest"}`, "")
	ctx := context.Background()
	if _, err := c.GetAction(ctx, "a b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAction(ctx, "/other/pkg/x", true); err != nil {
		t.Fatal(err)
	}
	r := (*got)[0]
	if r.method != "GET" || r.path != "/api/v1/namespaces/_/actions/a b" || r.query != "code=false" {
		t.Errorf("request = %+v", r)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testAuth)); r.header.Get("Authorization") != want {
		t.Errorf("Authorization = %q", r.header.Get("Authorization"))
	}
	if r.header.Get("User-Agent") != "test-agent" {
		t.Errorf("User-Agent = %q", r.header.Get("User-Agent"))
	}
	if r.header.Get("Content-Type") != "" {
		t.Errorf("Content-Type on a GET without body: %q", r.header.Get("Content-Type"))
	}
	if r := (*got)[1]; r.path != "/api/v1/namespaces/other/actions/pkg/x" || r.query != "code=true" {
		t.Errorf("qualified request = %+v", r)
	}
}

func TestPutActionBody(t *testing.T) {
	c, got := serve(t, 200, `{"name":"hello"}`, "")
	code := "def main(a): return a"
	mem := int64(256)
	_, err := c.PutAction(context.Background(), "hello", &ActionPut{
		Namespace: "_", Name: "hello",
		Exec:   &ExecPut{Kind: "python:default", Code: &code},
		Limits: &LimitsPut{Memory: &mem},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	r := (*got)[0]
	if r.method != "PUT" || r.query != "overwrite=false" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("request = %+v", r)
	}
	want := `{"namespace":"_","name":"hello","exec":{"kind":"python:default","code":"def main(a): return a"},"limits":{"memory":256}}` + "\n"
	if r.body != want {
		t.Errorf("body = %s\nwant %s", r.body, want)
	}
}

func TestAPIError(t *testing.T) {
	c, _ := serve(t, 404, `{"error":"The requested resource does not exist.","code":"4f1c"}`, "")
	_, err := c.GetAction(context.Background(), "nope", false)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v", err, err)
	}
	if e.Status != 404 || e.Code != "4f1c" || e.Application || e.ExitCode() != 148 {
		t.Errorf("error = %+v exit %d", e, e.ExitCode())
	}
	if e.Error() != "The requested resource does not exist. (code 4f1c)" {
		t.Errorf("Error() = %q", e.Error())
	}
	if StatusOf(err) != 404 {
		t.Errorf("StatusOf = %d", StatusOf(err))
	}
}

func TestNonJSONError(t *testing.T) {
	c, _ := serve(t, 503, `<html>down</html>`, "")
	_, err := c.ListNamespaces(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Message != "The connection failed, or timed out. (HTTP status code 503)" || e.ExitCode() != 247 {
		t.Errorf("err = %v", err)
	}
}

func TestInvokeApplicationError(t *testing.T) {
	rec := `{"activationId":"0123456789abcdef0123456789abcdef","response":{"status":"application error","success":false,"result":{"error":"boom"}}}`
	c, got := serve(t, 502, rec, "0123456789abcdef0123456789abcdef")
	inv, err := c.Invoke(context.Background(), "hello", json.RawMessage(`{"a":1}`), InvokeOptions{Blocking: true})
	var e *Error
	if !errors.As(err, &e) || !e.Application || e.ExitCode() != 246 {
		t.Fatalf("err = %v", err)
	}
	if inv == nil || inv.ActivationID != "0123456789abcdef0123456789abcdef" || string(inv.Body) != rec {
		t.Errorf("invocation = %+v", inv)
	}
	if !strings.Contains(e.Message, `{"error":"boom"}`) {
		t.Errorf("message = %q", e.Message)
	}
	if r := (*got)[0]; r.query != "blocking=true&result=false" || r.body != `{"a":1}`+"\n" {
		t.Errorf("request = %+v", r)
	}
}

func TestInvokeResultApplicationError(t *testing.T) {
	c, _ := serve(t, 502, `{"error":"boom"}`, "")
	_, err := c.Invoke(context.Background(), "hello", nil, InvokeOptions{Blocking: true, Result: true, Timeout: 5000})
	var e *Error
	if !errors.As(err, &e) || !e.Application || e.Message != "boom" {
		t.Fatalf("err = %v", err)
	}
}

func TestInvokeAccepted(t *testing.T) {
	c, got := serve(t, 202, `{"activationId":"abc"}`, "")
	inv, err := c.Invoke(context.Background(), "hello", nil, InvokeOptions{Blocking: true, Timeout: 100})
	if err != nil || inv.Finished() || inv.ActivationID != "abc" {
		t.Fatalf("inv = %+v, err = %v", inv, err)
	}
	if r := (*got)[0]; r.query != "blocking=true&result=false&timeout=100" || r.body != "{}\n" {
		t.Errorf("request = %+v", r)
	}
}

func TestInvokeSuccessFalseIsApplicationError(t *testing.T) {
	c, _ := serve(t, 200, `{"activationId":"x","response":{"success":false,"result":{"error":"e"}}}`, "")
	inv, err := c.Invoke(context.Background(), "hello", nil, InvokeOptions{Blocking: true})
	var e *Error
	if !errors.As(err, &e) || !e.Application || inv == nil || e.ExitCode() != 200 {
		t.Fatalf("inv = %+v, err = %v", inv, err)
	}
}

func TestActivationCalls(t *testing.T) {
	c, got := serve(t, 200, `[]`, "")
	ctx := context.Background()
	_, _ = c.ListActivations(ctx, ActivationListOptions{Name: "hello", Limit: 30, Since: 5, Upto: 9, Docs: true})
	_, _ = c.ListActivations(ctx, ActivationListOptions{Limit: 1})
	if r := (*got)[0]; r.path != "/api/v1/namespaces/_/activations" || r.query != "name=hello&limit=30&skip=0&since=5&upto=9&docs=true" {
		t.Errorf("list = %+v", r)
	}
	if r := (*got)[1]; r.query != "limit=1&skip=0" {
		t.Errorf("last = %+v", r)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New(Config{APIHost: "http://" + addr, Auth: testAuth})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListNamespaces(context.Background())
	var ce *ConnError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "http://"+addr) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v", err)
	}
}

func TestExitCodeForStatus(t *testing.T) {
	for status, want := range map[int]int{404: 148, 409: 153, 400: 144, 502: 246, 202: 202, 401: 145, 500: 244} {
		if got := ExitCodeForStatus(status); got != want {
			t.Errorf("ExitCodeForStatus(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestSplitName(t *testing.T) {
	for _, tc := range []struct{ in, ns, entity string }{
		{"hello", "_", "hello"},
		{"/guest/hello", "guest", "hello"},
		{"/guest/pkg/hello", "guest", "pkg/hello"},
		{"pkg/hello", "_", "pkg/hello"},
	} {
		ns, e := SplitName(tc.in, "_")
		if ns != tc.ns || e != tc.entity {
			t.Errorf("SplitName(%q) = %q, %q", tc.in, ns, e)
		}
	}
}
