package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

const statusBody = `{"revision":9,
 "schedulers":[{"id":"scheduler1","addr":"127.0.0.1:23041","queues":1}],
 "invokers":[{"id":"invoker1","status":"up","userMemory":2048,"freeMemory":1792,"stemCellMemory":256,"stemCells":[{"kind":"python:3.11","memory":256,"count":1}],"backend":"process"}],
 "queues":[{"namespace":"guest","action":"hello","leader":"scheduler1","followers":["scheduler2"],"containers":1,"idle":1,"creations":0}]}`

func TestStatusThroughAPI(t *testing.T) {
	s := newStub(t, map[string]reply{"GET /eddy/v1/status": {200, statusBody, ""}})
	out, errOut, code := s.run("status")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	expectCall(t, s.requests()[0], "GET", "/eddy/v1/status", "")
	for _, want := range []string{"SCHEDULERS (1)", "scheduler1  127.0.0.1:23041  1", "INVOKERS (1)", "1792", "python:3.11/256MB×1", "/guest/hello", "scheduler2", "IDLE"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	out, _, code = s.run("status", "--json")
	if code != 0 {
		t.Fatal(code)
	}
	jsonEq(t, out, statusBody)
}

func TestStatusFromEtcd(t *testing.T) {
	var gotEPs []string
	run := func(env map[string]string, fn func(context.Context, []string) (*whisk.ClusterStatus, error), args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, Env{
			Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }, HomeDir: t.TempDir(),
			EtcdStatus: fn,
		})
		return out.String(), errb.String(), code
	}
	ok := func(_ context.Context, eps []string) (*whisk.ClusterStatus, error) {
		gotEPs = eps
		return &whisk.ClusterStatus{Schedulers: []whisk.SchedulerInfo{{ID: "s9"}}}, nil
	}
	out, errOut, code := run(nil, ok, "status", "--etcd", "http://a:1, http://b:2")
	if code != 0 || !strings.Contains(out, "s9") || len(gotEPs) != 2 || gotEPs[1] != "http://b:2" {
		t.Fatalf("--etcd: %d %q %q %q", code, out, errOut, gotEPs)
	}
	// EDDY_ETCD is used when neither --etcd nor --apihost is given.
	if _, _, code := run(map[string]string{"EDDY_ETCD": "http://c:3"}, ok, "status"); code != 0 || gotEPs[0] != "http://c:3" {
		t.Fatalf("EDDY_ETCD: %d %q", code, gotEPs)
	}
	fail := func(context.Context, []string) (*whisk.ClusterStatus, error) {
		return nil, errors.New("etcd at http://a:1 unreachable")
	}
	if _, errOut, code := run(nil, fail, "status", "--etcd", "http://a:1"); code == 0 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("unreachable: %d %q", code, errOut)
	}
}
