package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestAPIStatusCodes checks every documented error against a running
// standalone: status, the {"error","code"} shape, and the message.
func TestAPIStatusCodes(t *testing.T) {
	e := startEddy(t, "process", "")
	e.createAction("exists", "python:3.11", helloPy, nil)
	big := `{"x":"` + strings.Repeat("a", 1<<20+10) + `"}`

	cases := []struct {
		name, auth, method, path string
		body                     any
		status                   int
		msg                      string // substring of "error"
	}{
		{"no credentials", "", "GET", "/api/v1/namespaces/_/actions", nil, 401, whisk.MsgAuthMissing},
		{"bad key", whisk.GuestUUID + ":wrong", "GET", "/api/v1/namespaces/_/actions", nil, 401, whisk.MsgAuthInvalid},
		{"unknown uuid", "00000000-0000-0000-0000-000000000000:x", "GET", "/api/v1/namespaces/_/actions", nil, 401, whisk.MsgAuthInvalid},
		{"other namespace", guestAuth, "GET", "/api/v1/namespaces/someoneelse/actions", nil, 403, whisk.MsgNotAuthorized("someoneelse")},
		{"malformed json", guestAuth, "PUT", "/api/v1/namespaces/_/actions/x", `{"exec":`, 400, "The request content was malformed"},
		{"unknown kind", guestAuth, "PUT", "/api/v1/namespaces/_/actions/x", map[string]any{"exec": map[string]any{"kind": "cobol:85", "code": "x"}}, 400, "The specified runtime 'cobol:85' is not supported"},
		{"memory too big", guestAuth, "PUT", "/api/v1/namespaces/_/actions/x", map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": "x"}, "limits": map[string]any{"memory": 1024}}, 400, "memory 1024 MB exceeds allowed threshold of 512 MB"},
		{"timeout too small", guestAuth, "PUT", "/api/v1/namespaces/_/actions/x", map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": "x"}, "limits": map[string]any{"timeout": 1}}, 400, "timeout 1 milliseconds below allowed threshold"},
		{"exists", guestAuth, "PUT", "/api/v1/namespaces/_/actions/exists", map[string]any{"exec": map[string]any{"kind": "python:3.11", "code": "x"}}, 409, whisk.MsgExists},
		{"missing action", guestAuth, "GET", "/api/v1/namespaces/_/actions/nope", nil, 404, whisk.MsgNotFound},
		{"invoke missing", guestAuth, "POST", "/api/v1/namespaces/_/actions/nope", map[string]any{}, 404, whisk.MsgNotFound},
		{"delete missing", guestAuth, "DELETE", "/api/v1/namespaces/_/actions/nope", nil, 404, whisk.MsgNotFound},
		{"bad activation id", guestAuth, "GET", "/api/v1/namespaces/_/activations/xyz", nil, 400, whisk.MsgBadActivationID},
		{"missing activation", guestAuth, "GET", "/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef", nil, 404, whisk.MsgNotFound},
		{"payload too large", guestAuth, "POST", "/api/v1/namespaces/_/actions/exists", big, 413, "too large"},
		{"bad limit", guestAuth, "GET", "/api/v1/namespaces/_/actions?limit=201", nil, 400, "The value '201' is not in the range of 0 to 200 for actions."},
		{"bad blocking timeout", guestAuth, "POST", "/api/v1/namespaces/_/actions/exists?blocking=true&timeout=70000", map[string]any{}, 400, whisk.MsgBadTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, out := e.callAuth(c.auth, c.method, c.path, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, out)
			}
			var body struct {
				Error string `json:"error"`
				Code  any    `json:"code"`
			}
			if err := json.Unmarshal(out, &body); err != nil || body.Code == nil || body.Code == "" {
				t.Fatalf("error body %q is not {error, code}", out)
			}
			if !strings.Contains(body.Error, c.msg) {
				t.Fatalf("error %q does not contain %q", body.Error, c.msg)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}

	// Info routes.
	var info struct {
		Runtimes map[string][]struct {
			Kind    string `json:"kind"`
			Default bool   `json:"default"`
		} `json:"runtimes"`
	}
	code, _, out := e.callAuth("", "GET", "/", nil)
	if code != 200 || json.Unmarshal(out, &info) != nil || len(info.Runtimes["python"]) == 0 {
		t.Fatalf("GET / = %d %s", code, out)
	}
	out = e.mustCall(200, "GET", "/api/v1/namespaces", nil)
	if strings.TrimSpace(string(out)) != `["guest"]` {
		t.Errorf("namespaces = %s", out)
	}

	// overwrite=true merges and bumps the patch version.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/exists?overwrite=true", map[string]any{"limits": map[string]any{"memory": 128}})
	var a whisk.Action
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/actions/exists", nil), &a)
	if a.Version != "0.0.2" || a.Limits.Memory != 128 || a.Limits.Timeout != 60000 || !strings.Contains(a.Exec.Code, "def main") {
		t.Fatalf("after overwrite: %+v", a)
	}
	var cnt map[string]int
	_ = json.Unmarshal(e.mustCall(200, "GET", "/api/v1/namespaces/_/actions?count=true", nil), &cnt)
	if cnt["actions"] != 1 {
		t.Errorf("count = %v", cnt)
	}
	e.mustCall(200, "DELETE", "/api/v1/namespaces/_/actions/exists", nil)
	e.mustCall(404, "GET", "/api/v1/namespaces/_/actions/exists", nil)
}
