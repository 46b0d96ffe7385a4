package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// attacker reads what it should not and leaves a process in a session of
// its own behind.
const attacker = `import os, subprocess
def main(args):
    out = {"uid": os.getuid()}
    for p in args["paths"]:
        try:
            open(p, "rb").read(1)
            out[p] = "read"
        except Exception as e:
            out[p] = type(e).__name__
    p = subprocess.Popen(["sleep", "1000"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out["sleeper"] = p.pid
    return out
`

// TestProcessIsolation: on the process backend of a root eddy standalone,
// an action reads neither the database nor /etc/shadow, and what it starts
// with setsid does not outlive a kill -9 of eddy and the restart after
// it, nor a clean stop (docs/tenants.md).
func TestProcessIsolation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process backend isolates actions only when eddy runs as root")
	}
	dataDir := t.TempDir()
	e := startEddy(t, "process", dataDir)
	e.createAction("attacker", "python:3.11", attacker, nil)
	db := filepath.Join(dataDir, "eddy.db")
	paths := []string{db, "/etc/shadow"}
	run := func(e *eddy) (uid, sleeper int) {
		out := e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/attacker?blocking=true&result=true", map[string]any{"paths": paths})
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("result %s: %v", out, err)
		}
		for _, p := range paths {
			if res[p] != "PermissionError" {
				t.Errorf("reading %s: %v, want PermissionError", p, res[p])
			}
		}
		uid, sleeper = int(res["uid"].(float64)), int(res["sleeper"].(float64))
		if uid == 0 || !pidAlive(sleeper) {
			t.Fatalf("result %s", out)
		}
		return uid, sleeper
	}
	_, sleeper := run(e)

	// kill -9: the sleeper outlives eddy, until the restart.
	_ = syscall.Kill(e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.done
	if !pidAlive(sleeper) {
		t.Fatalf("the sleeper died with eddy: nothing for the restart to clean up")
	}
	e = startEddy(t, "process", dataDir)
	if pidAlive(sleeper) {
		t.Errorf("the sleeper %d outlived the restart after kill -9", sleeper)
	}

	// A clean stop removes the containers and everything they started.
	_, sleeper = run(e)
	e.stop()
	if pidAlive(sleeper) {
		t.Errorf("the sleeper %d outlived eddy's stop", sleeper)
	}
}
