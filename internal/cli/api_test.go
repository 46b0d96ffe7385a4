package cli

import (
	"strings"
	"testing"
)

const mgmtPath = "/api/v1/web/whisk.system/apimgmt/"

var webHello = strings.Replace(helloAction, `{"key":"provide-api-key","value":false}`,
	`{"key":"provide-api-key","value":false},{"key":"web-export","value":true},{"key":"require-whisk-auth","value":1234567890123456789}`, 1)

func TestAPICommands(t *testing.T) {
	uuid, _, _ := strings.Cut(testAuth, ":")
	s := newStub(t, map[string]reply{
		"GET " + actionsPath + "/hello":       {200, webHello, ""},
		"GET " + actionsPath + "/plain":       {200, helloAction, ""},
		"POST " + mgmtPath + "createApi.http": {200, `{"gwApiUrl":"http://gw/api/` + uuid + `/hello","apidoc":{}}`, ""},
		"GET " + mgmtPath + "getApi.http": {200, `{"apis":[{"id":"x","key":"x","value":{"gwApiUrl":"http://gw/api/` + uuid + `/hello",` +
			`"apidoc":{"basePath":"/hello","info":{"title":"/hello"},"paths":{"/world":{"get":{"x-openwhisk":{"namespace":"guest","package":"","action":"hello"}}}}}}}]}`, ""},
		"DELETE " + mgmtPath + "deleteApi.http": {200, `{}`, ""},
	})
	out, errOut, code := s.run("api", "create", "/hello", "/world/{id}", "post", "hello", "--response-type", "http", "-n", "MyApi")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	expect(t, "stdout", out, "ok: created API /hello/world/{id} POST for action /_/hello\nhttp://gw/api/"+uuid+"/hello/world/{id}\n")
	reqs := s.requests()
	expectCall(t, reqs[0], "GET", actionsPath+"/hello", "code=false")
	expectCall(t, reqs[1], "POST", mgmtPath+"createApi.http", "accesstoken=DUMMY+TOKEN&responsetype=http&spaceguid="+uuid)
	jsonEq(t, reqs[1].Body, `{"apidoc":{"namespace":"_","apiName":"MyApi","gatewayBasePath":"/hello","gatewayPath":"/world/{id}",`+
		`"gatewayMethod":"POST","id":"API:_:/hello","action":{"name":"hello","namespace":"_","backendMethod":"POST",`+
		`"backendUrl":"`+s.srv.URL+`/api/v1/web/_/default/hello.http","authkey":"`+testAuth+`","secureKey":1234567890123456789},`+
		`"pathParameters":[{"name":"id","in":"path","description":"Default description for 'id'","required":true,"type":"string"}]}}`)
	if !strings.Contains(reqs[1].Body, `"secureKey":1234567890123456789`) {
		t.Errorf("secure key not exact: %s", reqs[1].Body)
	}

	if _, errOut, code = s.run("api", "create", "/hello", "/w", "get", "plain"); code == 0 || !strings.Contains(errOut, "is not a web action") {
		t.Fatalf("non-web action: %d %s", code, errOut)
	}
	if _, errOut, code = s.run("api", "create", "/hello", "/w/{id}", "get", "hello"); code == 0 || !strings.Contains(errOut, "response type of 'http'") {
		t.Fatalf("path parameter without http: %d %s", code, errOut)
	}

	out, errOut, code = s.run("api", "list")
	if code != 0 {
		t.Fatalf("list exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "/guest/hello") || !strings.Contains(out, "http://gw/api/"+uuid+"/hello/world") {
		t.Fatalf("list output %q", out)
	}
	reqs = s.requests()
	expectCall(t, reqs[len(reqs)-1], "GET", mgmtPath+"getApi.http", "accesstoken=DUMMY+TOKEN&limit=30&skip=0&spaceguid="+uuid)

	if out, errOut, code = s.run("api", "delete", "/hello", "/world", "get"); code != 0 {
		t.Fatalf("delete exit %d: %s", code, errOut)
	}
	expect(t, "stdout", out, "ok: deleted /world GET from /hello\n")
	reqs = s.requests()
	expectCall(t, reqs[len(reqs)-1], "DELETE", mgmtPath+"deleteApi.http", "accesstoken=DUMMY+TOKEN&basepath=%2Fhello&operation=GET&relpath=%2Fworld&spaceguid="+uuid)
}

func TestActionWebSecure(t *testing.T) {
	s := newStub(t, map[string]reply{
		"GET " + actionsPath + "/hello": {200, helloAction, ""},
		"PUT " + actionsPath + "/hello": {200, helloAction, ""},
	})
	file := s.home + "/hello.py"
	writeFile(t, file, "def main(a): return a")
	if _, errOut, code := s.run("action", "update", "hello", file, "--web", "true", "--web-secure", "s3cret"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	reqs := s.requests()
	body := reqs[len(reqs)-1].Body
	if !strings.Contains(body, `{"key":"require-whisk-auth","value":"s3cret"}`) || !strings.Contains(body, `{"key":"web-export","value":true}`) {
		t.Fatalf("body %s", body)
	}
	if _, errOut, code := s.run("action", "update", "hello", file, "--web-secure", "true"); code == 0 || !strings.Contains(errOut, "only valid when the --web option is enabled") {
		t.Fatalf("web-secure on a non-web action: %d %s", code, errOut)
	}
}
