package cli

import (
	"strings"
	"testing"
)

const pkgsPath = "/api/v1/namespaces/_/packages"

// TestPackageCommands: the requests and output of wsk's package commands
// (reference §1.7).
func TestPackageCommands(t *testing.T) {
	p1 := `{"namespace":"guest","name":"p1","binding":{},"parameters":[{"key":"a","value":"b"}],"version":"0.0.1","publish":true,"annotations":[],"updated":1}`
	s := newStub(t, map[string]reply{
		"PUT " + pkgsPath + "/p1":                      {200, p1, ""},
		"PUT " + pkgsPath + "/b1":                      {200, p1, ""},
		"DELETE " + pkgsPath + "/p1":                   {200, p1, ""},
		"GET " + pkgsPath:                              {200, `[{"namespace":"guest","name":"p1","publish":true,"binding":false},{"namespace":"guest","name":"b1","publish":false,"binding":{"namespace":"guest","name":"p1"}}]`, ""},
		"GET /api/v1/namespaces/whisk.system/packages": {200, `[]`, ""},
		"GET " + pkgsPath + "/b1": {200, `{"namespace":"guest","name":"b1","binding":{"namespace":"guest","name":"p1"},` +
			`"parameters":[{"key":"c","value":"d"},{"key":"e","value":"f"}],"annotations":[],"version":"0.0.1","publish":false,"updated":1,` +
			`"actions":[{"name":"hello","version":"0.0.1","annotations":[{"key":"final","value":true},{"key":"description","value":"says hello"}]}],` +
			`"feeds":[{"name":"changes","version":"0.0.1","annotations":[{"key":"feed","value":true}]}]}`, ""},
		"GET " + actionsPath + "/p1/": {200, `[{"namespace":"guest/p1","name":"hello","publish":false,"annotations":[{"key":"exec","value":"python:3.11"}]}]`, ""},
	})
	steps := []struct {
		args                []string
		method, path, query string
		body, out           string
	}{
		{[]string{"package", "create", "p1", "-p", "a", "b", "-a", "desc", "x", "--shared", "yes"}, "PUT", pkgsPath + "/p1", "overwrite=false",
			`{"namespace":"_","name":"p1","publish":true,"annotations":[{"key":"desc","value":"x"}],"parameters":[{"key":"a","value":"b"}]}`,
			"ok: created package p1\n"},
		{[]string{"package", "update", "p1", "-p", "c", "d"}, "PUT", pkgsPath + "/p1", "overwrite=true",
			`{"namespace":"_","name":"p1","parameters":[{"key":"c","value":"d"}]}`, "ok: updated package p1\n"},
		{[]string{"package", "bind", "/whisk.system/alarms", "b1", "-p", "cron", "X"}, "PUT", pkgsPath + "/b1", "overwrite=false",
			`{"binding":{"namespace":"whisk.system","name":"alarms"},"parameters":[{"key":"cron","value":"X"}]}`, "ok: created binding b1\n"},
		{[]string{"package", "list"}, "GET", pkgsPath, "limit=30&skip=0", "",
			"packages\n" + pad("/guest/p1") + " shared\n" + pad("/guest/b1") + " private\n"},
		{[]string{"package", "list", "/whisk.system", "-n"}, "GET", "/api/v1/namespaces/whisk.system/packages", "limit=30&skip=0", "", "packages\n"},
		{[]string{"package", "get", "b1", "-s"}, "GET", pkgsPath + "/b1", "", "",
			"package /guest/b1: Returns a result based on parameters c and e\n   (parameters: *c, *e)\n" +
				" action /guest/b1/hello: says hello\n   (parameters: none defined)\n" +
				" feed   /guest/b1/changes\n   (parameters: none defined)\n"},
		{[]string{"package", "delete", "p1"}, "DELETE", pkgsPath + "/p1", "", "", "ok: deleted package p1\n"},
		{[]string{"action", "list", "p1"}, "GET", actionsPath + "/p1/", "limit=30&skip=0", "",
			"actions\n" + pad("/guest/p1/hello") + " private python:3.11\n"},
	}
	for i, st := range steps {
		out, errOut, code := s.run(st.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", st.args, code, errOut)
		}
		expect(t, strings.Join(st.args, " "), out, st.out)
		c := s.requests()[i]
		expectCall(t, c, st.method, st.path, st.query)
		if st.body != "" {
			jsonEq(t, c.Body, st.body)
		}
	}
	out, _, code := s.run("package", "get", "b1")
	if code != 0 || !strings.HasPrefix(out, "ok: got package b1\n{\n    \"namespace\": \"guest\",") {
		t.Errorf("package get: %d %q", code, out)
	}

	// Errors: wsk's wording, the API's message, the status's exit code.
	s.routes["PUT "+pkgsPath+"/p1"] = reply{409, `{"error":"resource already exists","code":"c1"}`, ""}
	_, errOut, code := s.run("package", "create", "p1")
	if code != 153 || errOut != "error: Unable to create package 'p1': resource already exists (code c1)\n" {
		t.Errorf("create conflict: %d %q", code, errOut)
	}
	s.routes["PUT "+pkgsPath+"/b2"] = reply{400, `{"error":"Cannot bind to another package binding.","code":"c2"}`, ""}
	_, errOut, code = s.run("package", "bind", "b1", "b2")
	if code != 144 || errOut != "error: Binding creation failed: Cannot bind to another package binding. (code c2)\n" {
		t.Errorf("bind to binding: %d %q", code, errOut)
	}
	_, errOut, code = s.run("package", "create", "p1", "--shared", "maybe")
	if code != exitUsage || !strings.Contains(errOut, "Cannot use value 'maybe' for shared.") {
		t.Errorf("bad --shared: %d %q", code, errOut)
	}
	_, errOut, code = s.run("package", "bind", "p1")
	if code != exitUsage || !strings.Contains(errOut, "A package name and binding name are required.") {
		t.Errorf("bind with one name: %d %q", code, errOut)
	}
}

func pad(s string) string { return s + strings.Repeat(" ", 70-len(s)) }

// TestList: `eddy list` and `eddy namespace get` read every collection,
// then each rule for its status, and print them as wsk does.
func TestList(t *testing.T) {
	const ns = "/api/v1/namespaces/_/"
	s := newStub(t, map[string]reply{
		"GET " + ns + "actions":  {200, `[{"namespace":"guest","name":"hello","annotations":[{"key":"exec","value":"nodejs:18"}]}]`, ""},
		"GET " + ns + "packages": {200, `[{"namespace":"guest","name":"p1","publish":true,"binding":false}]`, ""},
		"GET " + ns + "triggers": {200, `[{"namespace":"guest","name":"t1"}]`, ""},
		"GET " + ns + "rules":    {200, `[{"namespace":"guest","name":"r1"}]`, ""},
		"GET " + ns + "rules/r1": {200, `{"namespace":"guest","name":"r1","status":"active"}`, ""},
	})
	want := "Entities in namespace: default\n" +
		"packages\n" + pad("/guest/p1") + " shared\n" +
		"actions\n" + pad("/guest/hello") + " private nodejs:18\n" +
		"triggers\n" + pad("/guest/t1") + " private\n" +
		"rules\n" + pad("/guest/r1") + " " + "private" + strings.Repeat(" ", 13) + " active\n"
	for _, args := range [][]string{{"list"}, {"namespace", "get"}} {
		n := len(s.requests())
		out, errOut, code := s.run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		expect(t, strings.Join(args, " "), out, want)
		reqs := s.requests()[n:]
		var got []string
		for _, r := range reqs {
			got = append(got, r.Path+"?"+r.Query)
		}
		wantReqs := []string{ns + "actions?limit=0&skip=0", ns + "packages?limit=0&skip=0", ns + "triggers?limit=0&skip=0",
			ns + "rules?limit=0&skip=0", ns + "rules/r1?"}
		if strings.Join(got, " ") != strings.Join(wantReqs, " ") {
			t.Errorf("%v requests %v, want %v", args, got, wantReqs)
		}
	}
	delete(s.routes, "GET "+ns+"triggers")
	_, errOut, code := s.run("list")
	if code != 148 || !strings.HasPrefix(errOut, "error: Unable to obtain the list of entities for namespace 'default': The requested resource does not exist.") {
		t.Errorf("list without triggers: %d %q", code, errOut)
	}
}
