package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

const (
	testAuth = whisk.GuestUUID + ":" + whisk.GuestKey
	actID    = "0123456789abcdef0123456789abcdef"
)

// call is one request the stub saw.
type call struct {
	Method, Path, Query, Body, Auth, ContentType string
}

type reply struct {
	status int
	body   string
	id     string // x-openwhisk-activation-id
}

// stub is an OpenWhisk API stand-in that records requests and answers from
// a route table keyed by "METHOD /path".
type stub struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []call
	routes map[string]reply
	props  string // path of the .wskprops file
	home   string
}

func newStub(t *testing.T, routes map[string]reply) *stub {
	t.Helper()
	s := &stub{t: t, routes: routes, home: t.TempDir()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.props = filepath.Join(s.home, "wskprops")
	writeFile(t, s.props, "APIHOST="+s.srv.URL+"\nAUTH="+testAuth+"\n")
	return s
}

func (s *stub) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls = append(s.calls, call{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type")})
	rep, ok := s.routes[r.Method+" "+r.URL.Path]
	s.mu.Unlock()
	if !ok {
		rep = reply{404, `{"error":"The requested resource does not exist.","code":"tid404"}`, ""}
	}
	if rep.id != "" {
		w.Header().Set("x-openwhisk-activation-id", rep.id)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (s *stub) requests() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// run runs the CLI with the stub's .wskprops.
func (s *stub) run(args ...string) (stdout, stderr string, code int) {
	return runEnv(map[string]string{"WSK_CONFIG_FILE": s.props}, s.home, args...)
}

func runEnv(env map[string]string, home string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }, HomeDir: home,
	})
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// jsonEq compares two JSON texts semantically.
func jsonEq(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

func expectCall(t *testing.T, c call, method, path, query string) {
	t.Helper()
	if c.Method != method || c.Path != path || c.Query != query {
		t.Errorf("request = %s %s?%s, want %s %s?%s", c.Method, c.Path, c.Query, method, path, query)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testAuth)); c.Auth != want {
		t.Errorf("Authorization = %q", c.Auth)
	}
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s =\n%q\nwant\n%q", what, got, want)
	}
}

const actionsPath = "/api/v1/namespaces/_/actions"

var helloAction = `{"namespace":"guest","name":"hello","version":"0.0.1","exec":{"kind":"python:3.11","binary":false},` +
	`"parameters":[],"annotations":[{"key":"exec","value":"python:3.11"},{"key":"provide-api-key","value":false}],` +
	`"limits":{"timeout":60000,"memory":256,"logs":10,"concurrency":1},"publish":false,"updated":1700000000000}`

func TestActionCreate(t *testing.T) {
	s := newStub(t, map[string]reply{"PUT " + actionsPath + "/hello": {200, helloAction, ""}})
	file := filepath.Join(s.home, "hello.py")
	writeFile(t, file, "def main(a):\n    return a\n")
	out, errOut, code := s.run("action", "create", "hello", file, "--kind", "python:3.11", "-m", "256", "-t", "30000",
		"-p", "k", "v", "-a", "a1", "x")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	expect(t, "stdout", out, "ok: created action hello\n")
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	expectCall(t, reqs[0], "PUT", actionsPath+"/hello", "overwrite=false")
	if reqs[0].ContentType != "application/json" {
		t.Errorf("Content-Type = %q", reqs[0].ContentType)
	}
	jsonEq(t, reqs[0].Body, `{"namespace":"_","name":"hello","exec":{"kind":"python:3.11","code":"def main(a):\n    return a\n"},`+
		`"annotations":[{"key":"a1","value":"x"}],"parameters":[{"key":"k","value":"v"}],"limits":{"timeout":30000,"memory":256}}`)
}

func TestActionCreateParamValuesAndFiles(t *testing.T) {
	s := newStub(t, map[string]reply{"PUT " + actionsPath + "/hello": {200, helloAction, ""}})
	file := filepath.Join(s.home, "hello.js")
	writeFile(t, file, "function main(a) { return a }")
	pfile := filepath.Join(s.home, "p.json")
	writeFile(t, pfile, `{"z": 1, "n": "from-file"}`)
	_, errOut, code := s.run("action", "create", "hello", file, "-P", pfile,
		"-p", "n", "5", "-p", "o", `{"a": [1, 2]}`, "-p", "b", "true", "--param", "s", "two words", "--main", "run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	jsonEq(t, s.requests()[0].Body, `{"namespace":"_","name":"hello","exec":{"kind":"nodejs:default","code":"function main(a) { return a }","main":"run"},`+
		`"parameters":[{"key":"z","value":1},{"key":"n","value":5},{"key":"o","value":{"a":[1,2]}},{"key":"b","value":true},{"key":"s","value":"two words"}]}`)
}

func TestActionCreateKinds(t *testing.T) {
	s := newStub(t, map[string]reply{
		"PUT " + actionsPath + "/n":   {200, `{}`, ""},
		"PUT " + actionsPath + "/seq": {200, `{}`, ""},
		"PUT " + actionsPath + "/d":   {200, `{}`, ""},
	})
	elf := append([]byte("\x7fELF\x02\x01\x01"), 0, 0, 1, 2, 0xff)
	exe := filepath.Join(s.home, "hello.bin")
	writeFile(t, exe, string(elf))
	script := filepath.Join(s.home, "run")
	writeFile(t, script, "#!/bin/sh\necho '{}'\n")
	zipFile := filepath.Join(s.home, "app.zip")
	writeFile(t, zipFile, "PK\x03\x04zipdata")
	b64 := base64.StdEncoding.EncodeToString

	cases := []struct {
		args []string
		body string
	}{
		{[]string{"n", exe}, `{"namespace":"_","name":"n","exec":{"kind":"native:default","code":"` + b64(elf) + `"}}`},
		{[]string{"n", script}, `{"namespace":"_","name":"n","exec":{"kind":"native:default","code":"#!/bin/sh\necho '{}'\n"}}`},
		{[]string{"n", zipFile, "--kind", "python:3.11"}, `{"namespace":"_","name":"n","exec":{"kind":"python:3.11","code":"` + b64([]byte("PK\x03\x04zipdata")) + `"}}`},
		{[]string{"n", zipFile, "--native"}, `{"namespace":"_","name":"n","exec":{"kind":"blackbox","code":"` + b64([]byte("PK\x03\x04zipdata")) + `","image":"openwhisk/dockerskeleton"}}`},
		{[]string{"d", "--docker", "img"}, `{"namespace":"_","name":"d","exec":{"kind":"blackbox","image":"img"}}`},
		{[]string{"seq", "--sequence", "a,/other/b"}, `{"namespace":"_","name":"seq","exec":{"kind":"sequence","components":["/_/a","/other/b"]}}`},
	}
	for _, tc := range cases {
		before := len(s.requests())
		_, errOut, code := s.run(append([]string{"action", "create"}, tc.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", tc.args, code, errOut)
			continue
		}
		reqs := s.requests()
		jsonEq(t, reqs[before].Body, tc.body)
	}

	// A zip without --kind, an unknown extension, a missing file: usage errors, no request.
	before := len(s.requests())
	for _, args := range [][]string{{"n", zipFile}, {"n", filepath.Join(s.home, "x.cobol")}, {"n", filepath.Join(s.home, "missing.py")}, {"n"}} {
		writeFile(t, filepath.Join(s.home, "x.cobol"), "x")
		_, errOut, code := s.run(append([]string{"action", "create"}, args...)...)
		if code == 0 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if n := len(s.requests()); n != before {
		t.Errorf("usage errors sent %d requests", n-before)
	}
}

func TestActionUpdateWeb(t *testing.T) {
	s := newStub(t, map[string]reply{
		"GET " + actionsPath + "/hello": {200, helloAction, ""},
		"PUT " + actionsPath + "/hello": {200, helloAction, ""},
	})
	file := filepath.Join(s.home, "hello.py")
	writeFile(t, file, "def main(a): return a")
	out, errOut, code := s.run("action", "update", "hello", file, "--web", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	expect(t, "stdout", out, "ok: updated action hello\n")
	reqs := s.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %+v", reqs)
	}
	expectCall(t, reqs[0], "GET", actionsPath+"/hello", "code=false")
	expectCall(t, reqs[1], "PUT", actionsPath+"/hello", "overwrite=true")
	jsonEq(t, reqs[1].Body, `{"namespace":"_","name":"hello","exec":{"kind":"python:default","code":"def main(a): return a"},`+
		`"annotations":[{"key":"exec","value":"python:3.11"},{"key":"provide-api-key","value":false},`+
		`{"key":"web-export","value":true},{"key":"raw-http","value":false},{"key":"final","value":true}]}`)
}

func TestActionUpdateOfMissingActionCreatesIt(t *testing.T) {
	s := newStub(t, map[string]reply{"PUT " + actionsPath + "/new": {200, `{}`, ""}})
	_, errOut, code := s.run("action", "update", "new", "-t", "1000", "--web", "raw", "--del-annotation", "x")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	reqs := s.requests()
	expectCall(t, reqs[0], "GET", actionsPath+"/new", "code=false")
	expectCall(t, reqs[1], "PUT", actionsPath+"/new", "overwrite=true")
	jsonEq(t, reqs[1].Body, `{"namespace":"_","name":"new","limits":{"timeout":1000},"delAnnotations":["x"],`+
		`"annotations":[{"key":"web-export","value":true},{"key":"raw-http","value":true},{"key":"final","value":true}]}`)
}

func TestActionGetListDelete(t *testing.T) {
	list := `[{"namespace":"guest","name":"hello","version":"0.0.1","exec":{"binary":false},"annotations":[{"key":"exec","value":"python:3.11"}],"publish":false},` +
		`{"namespace":"guest","name":"bye","version":"0.0.1","exec":{"binary":false},"annotations":[{"key":"exec","value":"nodejs:20"}],"publish":false}]`
	s := newStub(t, map[string]reply{
		"GET " + actionsPath + "/hello":    {200, helloAction, ""},
		"GET " + actionsPath:               {200, list, ""},
		"DELETE " + actionsPath + "/hello": {200, helloAction, ""},
	})
	out, _, code := s.run("action", "get", "hello")
	if code != 0 || !strings.HasPrefix(out, "ok: got action hello\n{\n    \"namespace\": \"guest\",\n    \"name\": \"hello\",") {
		t.Errorf("get: exit %d, out %q", code, out)
	}
	jsonEq(t, strings.TrimPrefix(out, "ok: got action hello\n"), helloAction)

	out, _, _ = s.run("action", "get", "hello", "--url")
	expect(t, "get --url", out, "ok: got action hello\n"+s.srv.URL+"/api/v1/namespaces/guest/actions/hello\n")

	out, _, _ = s.run("action", "get", "hello", "-s")
	expect(t, "get --summary", out, "action /guest/hello\n   (parameters: none defined)\n")

	out, _, code = s.run("action", "list")
	expect(t, "list", out, "actions\n"+
		fmt.Sprintf("%-70s private python:3.11\n", "/guest/hello")+
		fmt.Sprintf("%-70s private nodejs:20\n", "/guest/bye"))
	if code != 0 {
		t.Errorf("list exit %d", code)
	}
	_, _, _ = s.run("action", "list", "--limit", "5", "--skip", "10")

	out, _, code = s.run("action", "delete", "hello")
	expect(t, "delete", out, "ok: deleted action hello\n")
	if code != 0 {
		t.Errorf("delete exit %d", code)
	}

	reqs := s.requests()
	expectCall(t, reqs[0], "GET", actionsPath+"/hello", "code=false")
	expectCall(t, reqs[3], "GET", actionsPath, "limit=30&skip=0")
	expectCall(t, reqs[4], "GET", actionsPath, "limit=5&skip=10")
	expectCall(t, reqs[5], "DELETE", actionsPath+"/hello", "")
}

func TestActionInvoke(t *testing.T) {
	record := `{"namespace":"guest","name":"hello","activationId":"` + actID + `","response":{"status":"success","statusCode":0,"success":true,"result":{"greeting":"Hello Ada"}}}`
	s := newStub(t, map[string]reply{
		"POST " + actionsPath + "/hello": {202, `{"activationId":"` + actID + `"}`, actID},
	})
	out, errOut, code := s.run("action", "invoke", "hello", "-p", "name", "Ada")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	expect(t, "non-blocking", out, "ok: invoked /_/hello with id "+actID+"\n")
	r := s.requests()[0]
	expectCall(t, r, "POST", actionsPath+"/hello", "blocking=false&result=false")
	jsonEq(t, r.Body, `{"name":"Ada"}`)

	s.routes["POST "+actionsPath+"/hello"] = reply{200, record, actID}
	out, _, code = s.run("action", "invoke", "hello", "-b")
	if code != 0 {
		t.Errorf("blocking exit %d", code)
	}
	want := "ok: invoked /_/hello with id " + actID + "\n"
	if !strings.HasPrefix(out, want+"{\n    \"namespace\": \"guest\",") {
		t.Errorf("blocking out = %q", out)
	}
	jsonEq(t, strings.TrimPrefix(out, want), record)
	r = s.requests()[1]
	expectCall(t, r, "POST", actionsPath+"/hello", "blocking=true&result=false")
	jsonEq(t, r.Body, `{}`)

	s.routes["POST "+actionsPath+"/hello"] = reply{200, `{"greeting":"Hello Ada"}`, actID}
	out, _, code = s.run("action", "invoke", "hello", "--result", "-p", "name", "Ada")
	expect(t, "result", out, "{\n    \"greeting\": \"Hello Ada\"\n}\n")
	if code != 0 {
		t.Errorf("result exit %d", code)
	}
	expectCall(t, s.requests()[2], "POST", actionsPath+"/hello", "blocking=true&result=true")

	_, _, _ = s.run("action", "invoke", "/guest/hello", "-r", "--timeout", "500")
	expectCall(t, s.requests()[3], "POST", "/api/v1/namespaces/guest/actions/hello", "blocking=true&result=true&timeout=500")
}

func TestActionInvokeBlockingNotFinished(t *testing.T) {
	s := newStub(t, map[string]reply{"POST " + actionsPath + "/slow": {202, `{"activationId":"` + actID + `"}`, actID}})
	out, errOut, code := s.run("action", "invoke", "slow", "-b")
	expect(t, "stdout", out, "")
	expect(t, "stderr", errOut, "ok: invoked /_/slow, but the request has not yet finished, with id "+actID+"\n")
	if code != 202 {
		t.Errorf("exit %d, want 202", code)
	}
}

func TestActionInvokeApplicationError(t *testing.T) {
	record := `{"namespace":"guest","name":"bad","activationId":"` + actID + `","response":{"status":"application error","statusCode":1,"success":false,"result":{"error":"boom"}}}`
	s := newStub(t, map[string]reply{"POST " + actionsPath + "/bad": {502, record, actID}})
	out, errOut, code := s.run("action", "invoke", "bad", "-b")
	if code != 246 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	prefix := "ok: invoked /_/bad with id " + actID + "\n"
	if !strings.HasPrefix(errOut, prefix) {
		t.Fatalf("stderr = %q", errOut)
	}
	jsonEq(t, strings.TrimPrefix(errOut, prefix), record)

	s.routes["POST "+actionsPath+"/bad"] = reply{502, `{"error":"boom"}`, actID}
	out, errOut, code = s.run("action", "invoke", "bad", "-r")
	expect(t, "stderr", errOut, "{\n    \"error\": \"boom\"\n}\n")
	if code != 246 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestAPIErrors(t *testing.T) {
	s := newStub(t, map[string]reply{
		"PUT " + actionsPath + "/dup": {409, `{"error":"resource already exists","code":"tid409"}`, ""},
		"GET " + actionsPath:          {400, `{"error":"The value '500' is not in the range of 0 to 200 for actions.","code":"tid400"}`, ""},
		"GET /api/v1/namespaces":      {401, `{"error":"The supplied authentication is invalid.","code":"tid401"}`, ""},
		"POST " + actionsPath + "/x":  {500, `oops`, ""},
	})
	cases := []struct {
		args   []string
		stderr string
		code   int
	}{
		{[]string{"action", "get", "missing"}, "error: Unable to get action 'missing': The requested resource does not exist. (code tid404)\n", 148},
		{[]string{"action", "create", "dup", "--docker", "img"}, "error: Unable to create action 'dup': resource already exists (code tid409)\n", 153},
		{[]string{"action", "list", "-l", "500"}, "error: Unable to obtain the list of actions for namespace 'default': The value '500' is not in the range of 0 to 200 for actions. (code tid400)\n", 144},
		{[]string{"namespace", "list"}, "error: Unable to obtain the list of available namespaces: The supplied authentication is invalid. (code tid401)\n", 145},
		{[]string{"action", "invoke", "x"}, "error: Unable to invoke action 'x': The connection failed, or timed out. (HTTP status code 500)\n", 244},
		{[]string{"activation", "get", actID}, "error: Unable to get activation '" + actID + "': The requested resource does not exist. (code tid404)\n", 148},
	}
	for _, tc := range cases {
		out, errOut, code := s.run(tc.args...)
		if out != "" || errOut != tc.stderr || code != tc.code {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", tc.args, code, out, errOut, tc.code, tc.stderr)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "http://" + ln.Addr().String()
	ln.Close()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".wskprops"), "APIHOST="+host+"\nAUTH="+testAuth+"\n")
	_, errOut, code := runEnv(nil, home, "action", "list")
	if code != 1 || !strings.Contains(errOut, host) || !strings.Contains(errOut, "connection refused") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestMissingConfiguration(t *testing.T) {
	home := t.TempDir()
	_, errOut, code := runEnv(nil, home, "action", "list")
	if code != 1 || !strings.Contains(errOut, "eddy property set --apihost") {
		t.Errorf("no apihost: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runEnv(nil, home, "--apihost", "http://127.0.0.1:1", "action", "list")
	if code != 1 || !strings.Contains(errOut, "eddy property set --auth") {
		t.Errorf("no auth: exit %d, stderr %q", code, errOut)
	}
}

func TestGlobalOverridesAndEnv(t *testing.T) {
	s := newStub(t, map[string]reply{"GET /api/v1/namespaces": {200, `["guest"]`, ""}})
	// .wskprops points nowhere; the flag and the env var win.
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".wskprops"), "APIHOST=http://127.0.0.1:1\nAUTH=a:b\n")
	out, errOut, code := runEnv(nil, home, "namespace", "list", "--apihost", s.srv.URL, "-u", testAuth)
	if code != 0 {
		t.Fatalf("flags: exit %d: %s", code, errOut)
	}
	expect(t, "namespace list", out, "namespaces\nguest\n")
	out, _, code = runEnv(map[string]string{"EDDY_APIHOST": s.srv.URL, "EDDY_AUTH": testAuth}, home, "-i", "namespace", "list")
	if code != 0 || out != "namespaces\nguest\n" {
		t.Errorf("env: exit %d, out %q", code, out)
	}
	for _, r := range s.requests() {
		expectCall(t, r, "GET", "/api/v1/namespaces", "")
	}
}

func TestVerbose(t *testing.T) {
	s := newStub(t, map[string]reply{"GET /api/v1/namespaces": {200, `["guest"]`, ""}})
	out, _, code := s.run("namespace", "list", "-v")
	if code != 0 || !strings.Contains(out, "REQUEST:\n[GET]\t"+s.srv.URL+"/api/v1/namespaces") ||
		!strings.Contains(out, "Got response with code 200") || strings.Contains(out, whisk.GuestKey) {
		t.Errorf("verbose out = %q", out)
	}
}

func activationSummary(id, name, kind string, start, end int64, status int, cold bool) string {
	ann := `[{"key":"path","value":"guest/` + name + `"},{"key":"kind","value":"` + kind + `"}`
	if cold {
		ann += `,{"key":"initTime","value":80}`
	}
	ann += "]"
	return fmt.Sprintf(`{"namespace":"guest","name":%q,"version":"0.0.1","subject":"guest","activationId":%q,"start":%d,"end":%d,"duration":%d,"statusCode":%d,"annotations":%s,"publish":false}`,
		name, id, start, end, end-start, status, ann)
}

func TestActivationList(t *testing.T) {
	start := time.Date(2024, 3, 5, 7, 8, 9, 0, time.Local).UnixMilli()
	id2 := "fedcba9876543210fedcba9876543210"
	list := "[" + activationSummary(actID, "hello", "python:3.11", start, start+41, 0, true) + "," +
		activationSummary(id2, "bad", "nodejs:20", start, start+1500, 1, false) + "]"
	s := newStub(t, map[string]reply{"GET /api/v1/namespaces/_/activations": {200, list, ""}})
	out, errOut, code := s.run("activation", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "Datetime            Activation ID                    Kind        Start Duration   Status            Entity\n" +
		"2024-03-05 07:08:09 " + actID + " python:3.11 cold  41ms       success           guest/hello:0.0.1\n" +
		"2024-03-05 07:08:09 " + id2 + " nodejs:20   warm  1.5s       application error guest/bad:0.0.1\n"
	expect(t, "table", out, want)

	_, _, _ = s.run("activation", "list", "hello", "--since", "100", "--upto", "200", "-l", "5", "-s", "2")
	out, _, _ = s.run("activation", "list", "-f")
	if !strings.HasPrefix(out, "activations\n{\n    \"namespace\": \"guest\",") {
		t.Errorf("full out = %q", out)
	}
	reqs := s.requests()
	expectCall(t, reqs[0], "GET", "/api/v1/namespaces/_/activations", "limit=30&skip=0")
	expectCall(t, reqs[1], "GET", "/api/v1/namespaces/_/activations", "name=hello&limit=5&skip=2&since=100&upto=200")
	expectCall(t, reqs[2], "GET", "/api/v1/namespaces/_/activations", "limit=30&skip=0&docs=true")
}

func TestActivationGetLogsResult(t *testing.T) {
	record := `{"namespace":"guest","name":"hello","version":"0.0.1","subject":"guest","activationId":"` + actID + `","start":1700000000000,"end":1700000000005,"duration":5,"statusCode":0,` +
		`"response":{"status":"success","statusCode":0,"success":true,"result":{"ok":true}},"logs":["2024-01-01T00:00:00.123456789Z stdout: hello","2024-01-01T00:00:00.2Z  stderr: oops"],"annotations":[],"publish":false}`
	base := "/api/v1/namespaces/_/activations"
	s := newStub(t, map[string]reply{
		"GET " + base:                           {200, "[" + record + "]", ""},
		"GET " + base + "/" + actID:             {200, record, ""},
		"GET " + base + "/" + actID + "/logs":   {200, `{"logs":["2024-01-01T00:00:00.123456789Z stdout: hello","2024-01-01T00:00:00.2Z  stderr: oops"]}`, ""},
		"GET " + base + "/" + actID + "/result": {200, `{"result":{"ok":true},"status":"success","success":true}`, ""},
	})
	out, _, code := s.run("activation", "get", actID)
	if code != 0 || !strings.HasPrefix(out, "ok: got activation "+actID+"\n{\n") {
		t.Errorf("get: exit %d, out %q", code, out)
	}
	jsonEq(t, strings.TrimPrefix(out, "ok: got activation "+actID+"\n"), record)

	out, _, _ = s.run("activation", "get", "--summary", actID)
	if !strings.HasPrefix(out, "activation result for '/guest/hello' (success at ") || !strings.HasSuffix(out, ")\n{\n    \"ok\": true\n}\n") {
		t.Errorf("summary = %q", out)
	}

	out, _, _ = s.run("activation", "logs", actID)
	expect(t, "logs", out, "2024-01-01T00:00:00.123456789Z stdout: hello\n2024-01-01T00:00:00.2Z  stderr: oops\n")
	out, _, _ = s.run("activation", "logs", actID, "--strip")
	expect(t, "logs --strip", out, "hello\noops\n")

	out, _, _ = s.run("activation", "result", actID)
	expect(t, "result", out, "{\n    \"ok\": true\n}\n")

	out, _, code = s.run("activation", "result", "--last")
	expect(t, "result --last", out, "{\n    \"ok\": true\n}\n")
	if code != 0 {
		t.Errorf("--last exit %d", code)
	}
	_, _, _ = s.run("activation", "logs", "-l")
	_, _, _ = s.run("activation", "get", "--last")

	reqs := s.requests()
	paths := []struct{ path, query string }{
		{base + "/" + actID, ""}, {base + "/" + actID, ""},
		{base + "/" + actID + "/logs", ""}, {base + "/" + actID + "/logs", ""},
		{base + "/" + actID + "/result", ""},
		{base, "limit=1&skip=0"}, {base + "/" + actID + "/result", ""},
		{base, "limit=1&skip=0"}, {base + "/" + actID + "/logs", ""},
		{base, "limit=1&skip=0"}, {base + "/" + actID, ""},
	}
	if len(reqs) != len(paths) {
		t.Fatalf("%d requests, want %d: %+v", len(reqs), len(paths), reqs)
	}
	for i, p := range paths {
		expectCall(t, reqs[i], "GET", p.path, p.query)
	}
}

func TestActivationLastWithNoActivations(t *testing.T) {
	s := newStub(t, map[string]reply{"GET /api/v1/namespaces/_/activations": {200, `[]`, ""}})
	_, errOut, code := s.run("activation", "get", "--last")
	if code != 1 || errOut != "error: Activation list does not contain any activations.\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = s.run("activation", "get")
	if code == 0 || !strings.Contains(errOut, "An activation ID is required.") {
		t.Errorf("no id: exit %d, stderr %q", code, errOut)
	}
}

func TestProperties(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "props")
	writeFile(t, path, "# mine\nCERT=/x/cert.pem\nAPIHOST=old\n")
	env := map[string]string{"WSK_CONFIG_FILE": path}

	out, errOut, code := runEnv(env, "", "property", "set", "--apihost", "http://127.0.0.1:3233", "--auth", testAuth, "--namespace", "guest")
	if code != 0 {
		t.Fatalf("set: exit %d: %s", code, errOut)
	}
	expect(t, "set out", out, "ok: whisk auth set. Run 'eddy property get --auth' to see the new value.\n"+
		"ok: whisk API host set to http://127.0.0.1:3233\nok: whisk namespace set to guest\n")
	data, _ := os.ReadFile(path)
	expect(t, "file", string(data), "# mine\nCERT=/x/cert.pem\nAPIHOST=http://127.0.0.1:3233\nAUTH="+testAuth+"\nNAMESPACE=guest\n")
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode())
	}

	out, _, code = runEnv(env, "", "property", "get", "--apihost")
	expect(t, "get --apihost", out, "whisk API host\t\thttp://127.0.0.1:3233\n")
	out, _, _ = runEnv(env, "", "property", "get", "--auth", "--namespace")
	expect(t, "get --auth --namespace", out, "whisk auth\t\t"+testAuth+"\nwhisk namespace\t\tguest\n")
	if code != 0 {
		t.Errorf("get exit %d", code)
	}

	out, _, code = runEnv(env, "", "property", "unset", "--namespace", "--auth")
	expect(t, "unset out", out, "ok: whisk auth unset.\nok: whisk namespace unset; the default value of _ will be used.\n")
	data, _ = os.ReadFile(path)
	expect(t, "file after unset", string(data), "# mine\nCERT=/x/cert.pem\nAPIHOST=http://127.0.0.1:3233\n")
	if code != 0 {
		t.Errorf("unset exit %d", code)
	}

	// ~/.wskprops when WSK_CONFIG_FILE is not set.
	home := t.TempDir()
	if _, errOut, code := runEnv(nil, home, "property", "set", "--apihost", "example.com"); code != 0 {
		t.Fatalf("set in home: exit %d: %s", code, errOut)
	}
	data, _ = os.ReadFile(filepath.Join(home, ".wskprops"))
	expect(t, "home file", string(data), "APIHOST=example.com\n")

	if _, errOut, code := runEnv(env, "", "property", "set"); code != 2 || !strings.HasPrefix(errOut, "error: ") {
		t.Errorf("set without flags: exit %d, %q", code, errOut)
	}
}

func TestPropertyGetAll(t *testing.T) {
	s := newStub(t, map[string]reply{"GET /api/v1": {200, `{"description":"Eddy","api_version":"1.0.0","build":"2024-01-01","buildno":"abc"}`, ""}})
	out, errOut, code := s.run("property", "get")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "whisk auth\t\t" + testAuth + "\nwhisk API host\t\t" + s.srv.URL + "\nwhisk API version\tv1\nwhisk namespace\t\t_\n" +
		"whisk CLI version\t" + Version + "\nwhisk API build\t\t2024-01-01\nwhisk API build number\tabc\n"
	expect(t, "get", out, want)
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{}, {"help"}, {"-h"}, {"--help"}, {"help", "action"}, {"help", "action", "create"},
		{"action"}, {"action", "-h"}, {"action", "help"}, {"action", "create", "-h"}, {"action", "invoke", "--help"},
		{"activation", "logs", "-h"}, {"property", "set", "-h"}, {"namespace", "list", "-h"}, {"property"},
	} {
		out, errOut, code := runEnv(nil, "", args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: eddy") || errOut != "" {
			t.Errorf("%v: exit %d, out %.40q, stderr %q", args, code, out, errOut)
		}
	}
	out, _, _ := runEnv(nil, "", "action", "create", "--help")
	if !strings.Contains(out, "--kind KIND") {
		t.Errorf("action create help lacks flags: %q", out)
	}
	for _, args := range [][]string{{"bogus"}, {"action", "bogus"}, {"action", "list", "--bogus"}} {
		_, errOut, code := runEnv(nil, "", args...)
		if code != 2 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

func TestHandles(t *testing.T) {
	if !Handles("action") || !Handles("property") || Handles("standalone") {
		t.Error("Handles is wrong")
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"action", "bogus"}, {"action", "list", "--bogus"}, {"action", "invoke", "x", "-p", "k"}} {
		_, errOut, _ := runEnv(nil, "", args...)
		if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--help") {
			t.Errorf("%v: stderr %q", args, errOut)
		}
	}
}

// TestCombinedShortFlags: "-br" is "-b -r" as in wsk (it failed with
// "flag provided but not defined: -br"); the last letter may take a value
// ("-nl 5"); an unknown letter still fails.
func TestCombinedShortFlags(t *testing.T) {
	s := newStub(t, map[string]reply{
		"POST " + actionsPath + "/hello": {200, `{"greeting":"Hello"}`, actID},
	})
	for i, tc := range []struct {
		args  []string
		query string
	}{
		{[]string{"action", "invoke", "hello", "-br"}, "blocking=true&result=true"},
		{[]string{"action", "invoke", "-rb", "hello", "-p", "name", "Ada"}, "blocking=true&result=true"},
		{[]string{"action", "invoke", "hello", "-ib"}, "blocking=true&result=false"},
		{[]string{"-dv", "action", "invoke", "hello", "-b"}, "blocking=true&result=false"},
	} {
		_, errOut, code := s.run(tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		expectCall(t, s.requests()[i], "POST", actionsPath+"/hello", tc.query)
	}
	s.routes["GET "+actionsPath] = reply{200, `[]`, ""}
	if _, errOut, code := s.run("action", "list", "-nl", "5"); code != 0 {
		t.Fatalf("-nl 5: exit %d: %s", code, errOut)
	}
	expectCall(t, s.requests()[4], "GET", actionsPath, "limit=5&skip=0")
	n := len(s.requests())
	_, errOut, code := s.run("action", "invoke", "hello", "-bx")
	if code != exitUsage || !strings.Contains(errOut, "flag provided but not defined: -bx") {
		t.Errorf("-bx: exit %d, stderr %q", code, errOut)
	}
	if len(s.requests()) != n {
		t.Errorf("-bx sent a request")
	}
}
