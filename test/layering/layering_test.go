package layering

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eddy-faas/eddy/"

// roles are the packages that hold the platform's logic.
var roles = []string{
	"internal/api",
	"internal/controller",
	"internal/scheduler",
	"internal/invoker",
	"internal/queue",
}

// adapter reports whether pkg (a path inside the module) is an adapter or
// a test harness for one: an implementation below internal/store,
// internal/bus or internal/container, or the etcd package internal/cluster.
func adapter(pkg string) bool {
	for _, parent := range []string{"internal/store/", "internal/bus/", "internal/container/"} {
		if strings.HasPrefix(pkg, parent) {
			return true
		}
	}
	return pkg == "internal/cluster" || strings.HasPrefix(pkg, "internal/cluster/")
}

type listed struct {
	ImportPath string
	Deps       []string
}

// deps lists, with go list, every package pkg links (its non-test build).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", module+pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var l listed
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	if len(l.Deps) == 0 {
		t.Fatalf("go list %s: no dependencies listed", pkg)
	}
	return l.Deps
}

// TestRolesImportNoAdapter fails when a role package links an adapter,
// directly or through another package.
func TestRolesImportNoAdapter(t *testing.T) {
	for _, role := range roles {
		for _, d := range deps(t, role) {
			if p, ok := strings.CutPrefix(d, module); ok && adapter(p) {
				t.Errorf("%s links the adapter %s", role, p)
			}
		}
	}
}

// TestQueueLinksNoGRPC: the queue is one action's state machine; its fetch
// messages are its own, so it does not pull in the gRPC stack.
func TestQueueLinksNoGRPC(t *testing.T) {
	for _, d := range deps(t, "internal/queue") {
		if strings.HasPrefix(d, "google.golang.org/grpc") || d == module+"internal/rpc" {
			t.Errorf("internal/queue links %s", d)
		}
	}
}

// TestAdapterRule checks the classification the tests above rely on.
func TestAdapterRule(t *testing.T) {
	for pkg, want := range map[string]bool{
		"internal/store/sqlite":     true,
		"internal/bus/kafka":        true,
		"internal/container/docker": true,
		"internal/cluster":          true,
		"internal/store":            false,
		"internal/bus":              false,
		"internal/container":        false,
		"internal/whisk":            false,
	} {
		if got := adapter(pkg); got != want {
			t.Errorf("adapter(%q) = %v, want %v", pkg, got, want)
		}
	}
}
