package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// webPy answers by its "mode" parameter: the argument object itself, or
// one of the result shapes the web extensions render.
const webPy = `import base64
def main(a):
    m = a.get("mode", "echo")
    if m == "http":
        return {"statusCode": 201, "headers": {"X-A": ["1", "2"], "Content-Type": "text/plain"}, "body": "made"}
    if m == "png":
        return {"headers": {"Content-Type": "image/png"}, "body": base64.b64encode(b"\x89PNG").decode()}
    if m == "html":
        return {"body": "<p>hi</p>"}
    if m == "svg":
        return {"svg": "<svg/>"}
    if m == "text":
        return {"text": "plain"}
    if m == "inject":
        return {"headers": {"X-A": "1\r\nSet-Cookie: evil=1"}, "body": "x"}
    if m == "path":
        return {"body": "path=" + a["__ow_path"]}
    if m == "fail":
        return {"error": {"statusCode": 418, "body": "teapot"}}
    return a
`

type webResp struct {
	status int
	hdr    http.Header
	body   string
}

func webCall(t *testing.T, method, url, ctype, body string, hdr map[string]string) webResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return webResp{resp.StatusCode, resp.Header, string(b)}
}

func (r webResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("%d %q: %v", r.status, r.body, err)
	}
	return m
}

// TestWebActions drives web actions and the built-in API gateway over
// HTTP, with actions and APIs made by the eddy CLI as wsk makes them.
func TestWebActions(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		e := startEddy(t, backend, "")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		dir := t.TempDir()
		props := filepath.Join(dir, "wskprops")
		src := filepath.Join(dir, "web.py")
		if err := os.WriteFile(src, []byte(webPy), 0o644); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) string {
			t.Helper()
			so, se, code := e.runCLI(ctx, props, args...)
			if code != 0 {
				t.Fatalf("eddy %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, so, se)
			}
			return so
		}
		run("property", "set", "--apihost", e.URL, "--auth", guestAuth)
		run("action", "create", "web", src, "--kind", "python:3.11", "--web", "true")
		run("action", "create", "raw", src, "--kind", "python:3.11", "--web", "raw")
		run("action", "create", "secret", src, "--kind", "python:3.11", "--web", "true", "--web-secure", "s3cret")
		run("action", "create", "authed", src, "--kind", "python:3.11", "--web", "true", "-a", "require-whisk-auth", "true")
		run("action", "create", "private", src, "--kind", "python:3.11")
		if out := run("action", "get", "web", "--url"); !strings.Contains(out, e.URL+"/api/v1/web/guest/default/web") {
			t.Fatalf("--url: %s", out)
		}
		base := e.URL + "/api/v1/web/guest/default/"

		t.Run("json", func(t *testing.T) {
			r := webCall(t, "POST", base+"web.json/a/b?q=1", "application/json", `{"name":"Ada"}`, nil)
			m := r.json(t)
			if r.status != 200 || m["name"] != "Ada" || m["q"] != "1" || m["__ow_method"] != "post" || m["__ow_path"] != "/a/b" ||
				r.hdr.Get("X-Openwhisk-Activation-Id") == "" || r.hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("%d %v %s", r.status, r.hdr, r.body)
			}
		})
		for _, c := range []struct{ ext, mode, ctype, body string }{
			{".html", "html", "text/html; charset=UTF-8", "<p>hi</p>"},
			{".svg", "svg", "image/svg+xml", "<svg/>"},
			{".text", "text", "text/plain; charset=UTF-8", "plain"},
			{"", "html", "text/html; charset=UTF-8", "<p>hi</p>"},
			{".http", "png", "image/png", "\x89PNG"},
		} {
			t.Run("ext"+c.ext+"-"+c.mode, func(t *testing.T) {
				r := webCall(t, "GET", base+"web"+c.ext+"?mode="+c.mode, "", "", nil)
				if r.status != 200 || r.hdr.Get("Content-Type") != c.ctype || r.body != c.body {
					t.Fatalf("%d %v %q", r.status, r.hdr, r.body)
				}
			})
		}
		t.Run("http headers and status", func(t *testing.T) {
			r := webCall(t, "GET", base+"web.http?mode=http", "", "", nil)
			if r.status != 201 || r.body != "made" || strings.Join(r.hdr.Values("X-A"), ",") != "1,2" {
				t.Fatalf("%d %v %q", r.status, r.hdr, r.body)
			}
		})
		t.Run("application error as http", func(t *testing.T) {
			if r := webCall(t, "GET", base+"web.http?mode=fail", "", "", nil); r.status != 418 || r.body != "teapot" {
				t.Fatalf("%d %q", r.status, r.body)
			}
		})
		t.Run("header injection", func(t *testing.T) {
			r := webCall(t, "GET", base+"web.http?mode=inject", "", "", nil)
			if r.status != 400 || r.hdr.Get("Set-Cookie") != "" || !strings.Contains(r.body, "Response is not valid 'message/http'.") {
				t.Fatalf("%d %v %q", r.status, r.hdr, r.body)
			}
		})
		t.Run("raw form post", func(t *testing.T) {
			m := webCall(t, "POST", base+"raw.json?x=1", "application/x-www-form-urlencoded", "a=1&b=two", nil).json(t)
			if m["__ow_body"] != "a=1&b=two" || m["__ow_query"] != "x=1" || m["a"] != nil {
				t.Fatalf("%v", m)
			}
		})
		t.Run("form post", func(t *testing.T) {
			if m := webCall(t, "POST", base+"web.json", "application/x-www-form-urlencoded", "a=1&b=two", nil).json(t); m["a"] != "1" || m["b"] != "two" {
				t.Fatalf("%v", m)
			}
		})
		t.Run("secured", func(t *testing.T) {
			if r := webCall(t, "GET", base+"secret.json", "", "", nil); r.status != 401 {
				t.Fatalf("without header: %d %s", r.status, r.body)
			}
			if r := webCall(t, "GET", base+"secret.json", "", "", map[string]string{"X-Require-Whisk-Auth": "s3cret"}); r.status != 200 {
				t.Fatalf("with header: %d %s", r.status, r.body)
			}
			if r := webCall(t, "GET", base+"authed.json", "", "", nil); r.status != 401 {
				t.Fatalf("authed anonymous: %d %s", r.status, r.body)
			}
			req, _ := http.NewRequest("GET", base+"authed.json", nil)
			u, p, _ := strings.Cut(guestAuth, ":")
			req.SetBasicAuth(u, p)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"__ow_user": "guest"`) {
				t.Fatalf("authed with key: %d %s", resp.StatusCode, b)
			}
		})
		t.Run("cors preflight", func(t *testing.T) {
			r := webCall(t, "OPTIONS", base+"secret.json", "", "", map[string]string{"Access-Control-Request-Headers": "X-Custom"})
			if r.status != 200 || r.body != "" || r.hdr.Get("Access-Control-Allow-Headers") != "X-Custom" ||
				r.hdr.Get("Access-Control-Allow-Methods") != "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH" {
				t.Fatalf("%d %v %q", r.status, r.hdr, r.body)
			}
		})
		t.Run("refusals", func(t *testing.T) {
			for _, c := range []struct {
				method, path, ctype, body string
				status                    int
				msg                       string
			}{
				{"GET", "private.json", "", "", 404, "The requested resource does not exist."},
				{"GET", "nope.json", "", "", 404, "The requested resource does not exist."},
				{"GET", "web.json?__ow_method=x", "", "", 400, "Request defines parameters that are not allowed (e.g., reserved properties)."},
				{"POST", "web.json", "application/json", `{"a":`, 400, "The request content was malformed:"},
				{"GET", "web.json?mode=text", "", "", 200, ""},
				{"GET", "web.json?mode=http", "", "", 200, ""},
				{"POST", "web.json", "text/plain", strings.Repeat("x", 1<<20+1), 413, "Request larger than allowed: 1048577 > 1048576 bytes."},
			} {
				r := webCall(t, c.method, base+c.path, c.ctype, c.body, nil)
				if r.status != c.status || !strings.Contains(r.body, c.msg) {
					t.Fatalf("%s %s: %d %q, want %d %q", c.method, c.path, r.status, r.body, c.status, c.msg)
				}
			}
		})

		t.Run("api gateway", func(t *testing.T) {
			out := run("api", "create", "/e2e", "/item/{id}", "get", "web", "--response-type", "http")
			m := regexp.MustCompile(`(http://\S+/item/)\{id\}`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("create printed %q", out)
			}
			run("api", "create", "/e2e", "/hello", "post", "web")
			r := webCall(t, "GET", m[1]+"42?mode=echo", "", "", nil)
			if r.status != 204 {
				// An echo through .http has no body field: an empty 204.
				t.Fatalf("route: %d %q", r.status, r.body)
			}
			// The relative path reaches the action as __ow_path.
			if r := webCall(t, "GET", m[1]+"42?mode=path", "", "", nil); r.status != 200 || r.body != "path=/item/42" {
				t.Fatalf("route path: %d %v %q", r.status, r.hdr, r.body)
			}
			hello := strings.TrimSuffix(m[1], "item/") + "hello"
			j := webCall(t, "POST", hello, "application/json", `{"n":1}`, nil)
			if jm := j.json(t); j.status != 200 || jm["n"] != 1.0 || jm["__ow_method"] != "post" {
				t.Fatalf("json route: %d %s", j.status, j.body)
			}
			if r := webCall(t, "GET", hello, "", "", nil); r.status != 404 {
				t.Fatalf("wrong verb: %d %s", r.status, r.body)
			}
			if out := run("api", "list"); !strings.Contains(out, "/guest/web") || !strings.Contains(out, m[1]+"{id}") {
				t.Fatalf("list: %s", out)
			}
			if out := run("api", "get", "/e2e"); !strings.Contains(out, `"basePath": "/e2e"`) {
				t.Fatalf("get: %s", out)
			}
			run("api", "delete", "/e2e")
			if r := webCall(t, "GET", m[1]+"42", "", "", nil); r.status != 404 {
				t.Fatalf("after delete: %d %s", r.status, r.body)
			}
		})
	})
}
