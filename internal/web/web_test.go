package web

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestSplitName(t *testing.T) {
	for _, c := range []struct{ seg, name, ext string }{
		{"a.json", "a", "json"},
		{"a.http", "a", "http"},
		{"a.html", "a", "html"},
		{"a.svg", "a", "svg"},
		{"a.text", "a", "text"},
		{"a", "a", "http"},
		{"a.foo", "a.foo", "http"},
		{"a.b.json", "a.b", "json"},
		{".json", ".json", "http"},
		{"ajson", "ajson", "http"},
	} {
		n, e := SplitName(c.seg)
		if n != c.name || e != c.ext {
			t.Errorf("SplitName(%q) = %q, %q; want %q, %q", c.seg, n, e, c.name, c.ext)
		}
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("args %s: %v", b, err)
	}
	return m
}

func TestArgs(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	final := func(k string) bool { return k == "fixed" }
	for _, c := range []struct {
		name   string
		req    Request
		raw    bool
		want   map[string]any // subset of the args
		absent []string
		status int
	}{
		{name: "get with query", req: Request{Method: "GET", Header: hdr("X-A", "1"), Path: "/p/q", RawQuery: "a=1&b=x"},
			want: map[string]any{"__ow_method": "get", "__ow_path": "/p/q", "a": "1", "b": "x",
				"__ow_headers": map[string]any{"x-a": "1"}}, absent: []string{"__ow_user", "__ow_body", "__ow_query"}},
		{name: "user", req: Request{Method: "POST", Header: hdr(), User: "guest"}, want: map[string]any{"__ow_user": "guest", "__ow_path": ""}},
		{name: "json object merges over query", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), RawQuery: "a=q&c=3", Body: []byte(`{"a":1,"b":{"x":true}}`)},
			want: map[string]any{"a": 1.0, "b": map[string]any{"x": true}, "c": "3"}},
		{name: "+json object", req: Request{Method: "POST", Header: hdr("Content-Type", "application/vnd.api+json"), Body: []byte(`{"a":1}`)},
			want: map[string]any{"a": 1.0}},
		{name: "json array", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), Body: []byte(`[1,2]`)},
			want: map[string]any{"__ow_body": []any{1.0, 2.0}}},
		{name: "json string", req: Request{Method: "PUT", Header: hdr("Content-Type", "application/json"), Body: []byte(`"s"`)},
			want: map[string]any{"__ow_body": "s", "__ow_method": "put"}},
		{name: "empty json", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json")}, absent: []string{"__ow_body"}},
		{name: "invalid json", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), Body: []byte(`{"a":`)}, status: 400},
		{name: "form", req: Request{Method: "POST", Header: hdr("Content-Type", "application/x-www-form-urlencoded"), Body: []byte("a=1&b=two+words")},
			want: map[string]any{"a": "1", "b": "two words"}},
		{name: "text", req: Request{Method: "POST", Header: hdr("Content-Type", "text/plain"), Body: []byte("hello")},
			want: map[string]any{"__ow_body": "hello"}},
		{name: "binary", req: Request{Method: "POST", Header: hdr("Content-Type", "image/png"), Body: []byte{0, 1, 2}},
			want: map[string]any{"__ow_body": "AAEC"}},
		{name: "no content type", req: Request{Method: "POST", Header: hdr(), Body: []byte("xy")},
			want: map[string]any{"__ow_body": "eHk="}},
		{name: "reserved in query", req: Request{Method: "GET", Header: hdr(), RawQuery: "__ow_method=x"}, status: 400},
		{name: "reserved in body", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), Body: []byte(`{"__ow_user":"root"}`)}, status: 400},
		{name: "reserved in form", req: Request{Method: "POST", Header: hdr("Content-Type", "application/x-www-form-urlencoded"), Body: []byte(`__ow_body=1`)}, status: 400},
		{name: "final in query", req: Request{Method: "GET", Header: hdr(), RawQuery: "fixed=1"}, status: 400},
		{name: "final in body", req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), Body: []byte(`{"fixed":null}`)}, status: 400},
		{name: "raw json", raw: true, req: Request{Method: "POST", Header: hdr("Content-Type", "application/json"), RawQuery: "a=1&__ow_x=2", Body: []byte(`{"a":1}`)},
			want: map[string]any{"__ow_query": "a=1&__ow_x=2", "__ow_body": "eyJhIjoxfQ=="}, absent: []string{"a"}},
		{name: "raw +json is text", raw: true, req: Request{Method: "POST", Header: hdr("Content-Type", "application/x+json"), Body: []byte(`{"a":1}`)},
			want: map[string]any{"__ow_body": `{"a":1}`}},
		{name: "raw form", raw: true, req: Request{Method: "POST", Header: hdr("Content-Type", "application/x-www-form-urlencoded"), Body: []byte("a=1&fixed=2")},
			want: map[string]any{"__ow_body": "a=1&fixed=2", "__ow_query": ""}, absent: []string{"a"}},
		{name: "raw empty", raw: true, req: Request{Method: "GET", Header: hdr()}, want: map[string]any{"__ow_body": "", "__ow_query": ""}},
		{name: "raw binary", raw: true, req: Request{Method: "POST", Header: hdr("Content-Type", "application/octet-stream"), Body: []byte{0xff}},
			want: map[string]any{"__ow_body": "/w=="}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := Args(c.req, c.raw, final)
			if c.status != 0 {
				if err == nil || err.Status != c.status {
					t.Fatalf("Args = %s, %v; want status %d", b, err, c.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, b)
			for k, v := range c.want {
				if k == "__ow_headers" {
					got, _ := m[k].(map[string]any)
					for hk, hv := range v.(map[string]any) {
						if got[hk] != hv {
							t.Errorf("header %s = %v, want %v (%s)", hk, got[hk], hv, b)
						}
					}
					continue
				}
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("%s = %#v, want %#v (%s)", k, m[k], v, b)
				}
			}
			for _, k := range c.absent {
				if _, ok := m[k]; ok {
					t.Errorf("%s present: %s", k, b)
				}
			}
		})
	}
}

func TestTranscode(t *testing.T) {
	for _, c := range []struct {
		name, ext, result string
		status            int
		ctype             string
		body              string
		hdr               http.Header
		msg               string
	}{
		{name: "json object", ext: "json", result: `{"a":1,"b":[1,2]}`, status: 200, ctype: TypeJSON, body: "{\n  \"a\": 1,\n  \"b\": [1, 2]\n}"},
		{name: "json array", ext: "json", result: `[1]`, status: 200, ctype: TypeJSON, body: "[1]"},
		{name: "json string", ext: "json", result: `"x"`, status: 400, msg: "Response is not valid 'application/json'."},
		{name: "html body", ext: "html", result: `{"body":"<p>"}`, status: 200, ctype: TypeHTML, body: "<p>"},
		{name: "html field", ext: "html", result: `{"html":"<b>"}`, status: 200, ctype: TypeHTML, body: "<b>"},
		{name: "html missing", ext: "html", result: `{"x":1}`, status: 400, msg: "Response is not valid 'text/html'."},
		{name: "html number", ext: "html", result: `{"body":1}`, status: 400, msg: "Response is not valid 'text/html'."},
		{name: "svg", ext: "svg", result: `{"svg":"<svg/>"}`, status: 200, ctype: TypeSVG, body: "<svg/>"},
		{name: "svg missing", ext: "svg", result: `{}`, status: 400, msg: "Response is not valid 'image/svg+xml'."},
		{name: "text string", ext: "text", result: `{"text":"hi"}`, status: 200, ctype: TypeText, body: "hi"},
		{name: "text object", ext: "text", result: `{"body":{"a":1}}`, status: 200, ctype: TypeText, body: "{\n  \"a\": 1\n}"},
		{name: "text number", ext: "text", result: `{"text":4.5}`, status: 200, ctype: TypeText, body: "4.5"},
		{name: "text null", ext: "text", result: `{"text":null}`, status: 200, ctype: TypeText, body: "null"},
		{name: "text missing", ext: "text", result: `{"a":1}`, status: 404, msg: "Response does not include requested property."},
		{name: "http default", ext: "http", result: `{"body":"<h1>"}`, status: 200, ctype: TypeHTML, body: "<h1>"},
		{name: "http empty", ext: "http", result: `{}`, status: 204},
		{name: "http empty drops type", ext: "http", result: `{"headers":{"Content-Type":"text/plain"},"body":""}`, status: 204},
		{name: "http status string", ext: "http", result: `{"statusCode":"444","body":"x"}`, status: 444, ctype: TypeHTML, body: "x"},
		{name: "http status float", ext: "http", result: `{"statusCode":200.5}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http status bad", ext: "http", result: `{"statusCode":true}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http status 1xx", ext: "http", result: `{"statusCode":101}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http redirect", ext: "http", result: `{"statusCode":302,"headers":{"Location":"/x"}}`, status: 302, hdr: http.Header{"Location": {"/x"}}},
		{name: "http cookies", ext: "http", result: `{"headers":{"Set-Cookie":["a=1","b=2"],"X-N":5,"X-B":true},"body":"ok"}`, status: 200, ctype: TypeHTML, body: "ok",
			hdr: http.Header{"Set-Cookie": {"a=1", "b=2"}, "X-N": {"5"}, "X-B": {"true"}}},
		{name: "http json body", ext: "http", result: `{"body":{"a":1}}`, status: 200, ctype: TypeJSON, body: "{\n  \"a\": 1\n}"},
		{name: "http json number body", ext: "http", result: `{"body":42,"statusCode":201}`, status: 201, ctype: TypeJSON, body: "42"},
		{name: "http +json body", ext: "http", result: `{"headers":{"content-type":"application/hal+json"},"body":{"a":1}}`, status: 200, ctype: "application/hal+json", body: "{\n  \"a\": 1\n}"},
		{name: "http object as text", ext: "http", result: `{"headers":{"Content-Type":"text/plain"},"body":{"a":1}}`, status: 400, msg: MsgHTTPContentTypeDiff},
		{name: "http text type", ext: "http", result: `{"headers":{"Content-Type":"text/plain"},"body":"t"}`, status: 200, ctype: "text/plain; charset=UTF-8", body: "t"},
		{name: "http binary", ext: "http", result: `{"headers":{"Content-Type":"image/png"},"body":"AAEC"}`, status: 200, ctype: "image/png", body: "\x00\x01\x02"},
		{name: "http binary bad base64", ext: "http", result: `{"headers":{"Content-Type":"image/png"},"body":"!!"}`, status: 400, msg: MsgHTTPContentTypeDiff},
		{name: "http json base64 legacy", ext: "http", result: `{"headers":{"Content-Type":"application/json"},"body":"eyJhIjoxfQ=="}`, status: 200, ctype: "application/json", body: `{"a":1}`},
		{name: "http unknown type", ext: "http", result: `{"headers":{"Content-Type":"nonsense"},"body":"x"}`, status: 400, msg: MsgHTTPUnknownType},
		{name: "http not object", ext: "http", result: `"x"`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http array", ext: "http", result: `[1]`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http headers not object", ext: "http", result: `{"headers":"x"}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http header object value", ext: "http", result: `{"headers":{"X":{}}}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http header null", ext: "http", result: `{"headers":{"X":null}}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http CRLF value", ext: "http", result: `{"headers":{"X":"a\r\nSet-Cookie: evil=1"},"body":"x"}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http LF in array", ext: "http", result: `{"headers":{"X":["ok","a\nb"]}}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http bad name", ext: "http", result: `{"headers":{"X Y:\r\n":"1"}}`, status: 400, msg: "Response is not valid 'message/http'."},
		{name: "http framing dropped", ext: "http", result: `{"headers":{"Content-Length":"999","Transfer-Encoding":"chunked","X":"1"},"body":"x"}`, status: 200, ctype: TypeHTML, body: "x",
			hdr: http.Header{"X": {"1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := Transcode(c.ext, json.RawMessage(c.result))
			if c.msg != "" {
				if err == nil || err.Status != c.status || err.Msg != c.msg {
					t.Fatalf("Transcode = %+v, %v; want %d %q", out, err, c.status, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != c.status || out.ContentType != c.ctype || string(out.Body) != c.body {
				t.Fatalf("Transcode = %d %q %q; want %d %q %q", out.Status, out.ContentType, out.Body, c.status, c.ctype, c.body)
			}
			for k, v := range c.hdr {
				if !reflect.DeepEqual(out.Header.Values(k), v) {
					t.Errorf("header %s = %v, want %v", k, out.Header.Values(k), v)
				}
			}
			if c.hdr != nil && len(out.Header) != len(c.hdr) {
				t.Errorf("headers %v, want %v", out.Header, c.hdr)
			}
		})
	}
}

func TestTranscodeHugeHeaders(t *testing.T) {
	big := strings.Repeat("a", MaxResponseHeaderBytes)
	res, _ := json.Marshal(map[string]any{"headers": map[string]string{"X": big}, "body": "x"})
	if _, err := Transcode("http", res); err == nil || err.Status != 400 {
		t.Fatalf("huge header accepted: %v", err)
	}
	many := map[string]string{}
	for i := range MaxResponseHeaders + 1 {
		many["X-"+strings.Repeat("h", i+1)] = "1"
	}
	res, _ = json.Marshal(map[string]any{"headers": many})
	if _, err := Transcode("http", res); err == nil || err.Status != 400 {
		t.Fatalf("too many headers accepted: %v", err)
	}
}

func TestAuthorized(t *testing.T) {
	h := http.Header{}
	h.Set(RequireWhiskAuthHeader, "s3cret")
	none := http.Header{}
	for _, c := range []struct {
		ann    string
		authed bool
		hdr    http.Header
		want   bool
	}{
		{"", false, none, true},
		{"false", false, none, true},
		{"true", false, none, false},
		{"true", true, none, true},
		{`"s3cret"`, false, h, true},
		{`"s3cret"`, true, none, false},
		{`"other"`, false, h, false},
		{`42`, false, http.Header{"X-Require-Whisk-Auth": {"42"}}, true},
		{`42`, false, h, false},
		{`null`, true, h, false},
		{`{}`, true, h, false},
	} {
		var ann []byte
		if c.ann != "" {
			ann = []byte(c.ann)
		}
		if got := Authorized(ann, c.authed, c.hdr); got != c.want {
			t.Errorf("Authorized(%s, %v, %v) = %v, want %v", c.ann, c.authed, c.hdr, got, c.want)
		}
	}
}

func TestAcceptable(t *testing.T) {
	for _, c := range []struct {
		accept, ct string
		want       bool
	}{
		{"", TypeJSON, true},
		{"*/*", TypeJSON, true},
		{"application/json", TypeJSON, true},
		{"text/*", TypeHTML, true},
		{"text/html", TypeJSON, false},
		{"text/html, application/*;q=0.5", TypeJSON, true},
		{"application/json;q=0", TypeJSON, false},
	} {
		if got := Acceptable(c.accept, c.ct); got != c.want {
			t.Errorf("Acceptable(%q, %q) = %v", c.accept, c.ct, got)
		}
	}
}

func TestCORS(t *testing.T) {
	h := http.Header{}
	SetCORS(h, http.Header{})
	if h.Get("Access-Control-Allow-Headers") != AllowHeaders || h.Get("Access-Control-Allow-Methods") != AllowMethods || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("defaults: %v", h)
	}
	SetCORS(h, http.Header{"Access-Control-Request-Headers": {"X-Custom"}})
	if h.Get("Access-Control-Allow-Headers") != "X-Custom" {
		t.Fatalf("echo: %v", h)
	}
}

func TestPretty(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                         "{\n\n}",
		`{"a":{"b":[1,{"c":null}]}}`: "{\n  \"a\": {\n    \"b\": [1, {\n      \"c\": null\n    }]\n  }\n}",
		`"x"`:                        `"x"`,
		`bad`:                        `bad`,
	} {
		if got := string(Pretty(json.RawMessage(in))); got != want {
			t.Errorf("Pretty(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestPrettyKeepsHTML(t *testing.T) {
	if got := string(Pretty(json.RawMessage(`{"e":"1 \u003e 0 & <b>"}`))); got != "{\n  \"e\": \"1 > 0 & <b>\"\n}" {
		t.Fatalf("%q", got)
	}
}
