package admin

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// harness runs `eddy admin` commands against one real SQLite file.
type harness struct {
	t    *testing.T
	path string
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, path: filepath.Join(t.TempDir(), "eddy.db")}
}

func (h *harness) run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(h.t.Context(), args, Config{
		Stdout: &out, Stderr: &errb, DefaultDataDir: "unused",
		Open: func(ctx context.Context, dataDir, pg string) (Store, error) {
			return sqlite.Open(ctx, h.path, nil)
		},
	})
	return code, out.String(), errb.String()
}

// ok runs a command that must succeed and returns its output.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	code, out, errs := h.run(args...)
	if code != 0 {
		h.t.Fatalf("eddy admin %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs a command that must fail with code and stderr matching re.
func (h *harness) fails(code int, re string, args ...string) {
	h.t.Helper()
	got, out, errs := h.run(args...)
	if got != code || !regexp.MustCompile(re).MatchString(errs) {
		h.t.Fatalf("eddy admin %s: exit %d, stdout %q, stderr %q; want exit %d and stderr matching %q",
			strings.Join(args, " "), got, out, errs, code, re)
	}
}

func (h *harness) identity(uuid string) (whisk.Identity, error) {
	s, err := sqlite.Open(h.t.Context(), h.path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	return s.IdentityByUUID(h.t.Context(), uuid)
}

func TestUserLifecycle(t *testing.T) {
	h := newHarness(t)
	key := strings.TrimSpace(h.ok("user", "create", "alice"))
	uuid, secret, err := whisk.ParseAuthKey(key)
	if err != nil {
		t.Fatalf("create printed %q: %v", key, err)
	}
	id, err := h.identity(uuid)
	if err != nil || id.Namespace != "alice" || id.Subject != "alice" || id.Key != secret {
		t.Fatalf("stored identity = %+v, %v", id, err)
	}
	if got := strings.TrimSpace(h.ok("user", "get", "alice")); got != key {
		t.Fatalf("get = %q, want %q", got, key)
	}
	h.fails(1, "already exists", "user", "create", "alice")

	// A second namespace for alice, with a given key; flags before or after the subject.
	given := "11111111-2222-4333-8444-555555555555:" + strings.Repeat("k", 64)
	if got := strings.TrimSpace(h.ok("user", "create", "--namespace", "team", "alice", "--auth", given)); got != given {
		t.Fatalf("create with --auth printed %q", got)
	}
	h.fails(1, `namespace "team" already exists`, "user", "create", "alice", "--namespace", "team")
	h.fails(1, "UUID is already used", "user", "create", "bobby", "--auth", given)
	h.ok("user", "create", "bobby", "--namespace", "team")
	if got := h.ok("user", "get", "alice", "--all"); got != "alice\t"+key+"\nteam\t"+given+"\n" {
		t.Fatalf("get --all = %q", got)
	}
	if got := strings.TrimSpace(h.ok("user", "get", "alice", "--namespace", "team")); got != given {
		t.Fatalf("get --namespace team = %q", got)
	}
	if got := h.ok("user", "list", "team"); got != "alice\nbobby\n" {
		t.Fatalf("list team = %q", got)
	}
	if got := h.ok("user", "list"); got != "alice\talice\nalice\tteam\nbobby\tteam\n" {
		t.Fatalf("list = %q", got)
	}
	if got := h.ok("user", "list", "alice", "-k"); got != key+"\talice\n" {
		t.Fatalf("list alice -k = %q", got)
	}

	// Delete one namespace, then the subject.
	if got := h.ok("user", "delete", "alice", "--namespace", "team"); got != "Namespace deleted\n" {
		t.Fatalf("delete ns = %q", got)
	}
	if _, err := h.identity("11111111-2222-4333-8444-555555555555"); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("deleted key still there: %v", err)
	}
	h.fails(1, "not found", "user", "delete", "alice", "--namespace", "team")
	if got := h.ok("user", "delete", "alice"); got != "Subject deleted\n" {
		t.Fatalf("delete = %q", got)
	}
	if _, err := h.identity(uuid); !whisk.IsKind(err, whisk.NotFound) {
		t.Fatalf("deleted key still there: %v", err)
	}
	h.fails(1, "not found", "user", "get", "alice")
	if got := h.ok("user", "list"); got != "bobby\tteam\n" {
		t.Fatalf("list after deletes = %q", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t)
	key := strings.TrimSpace(h.ok("user", "create", "carol"))
	uuid, _, _ := whisk.ParseAuthKey(key)
	if got := h.ok("limits", "get", "carol"); got != "No limits found, default system limits apply\n" {
		t.Fatalf("get unset = %q", got)
	}
	if got := h.ok("limits", "set", "carol", "--invocationsPerMinute", "7"); got != "Limits successfully set for \"carol\"\n" {
		t.Fatalf("set = %q", got)
	}
	// set merges: the rate stays when the concurrency is set (either name).
	h.ok("limits", "set", "carol", "--concurrentContainers", "3")
	if got := h.ok("limits", "get", "carol"); got != "invocationsPerMinute = 7\nconcurrentInvocations = 3\n" {
		t.Fatalf("get = %q", got)
	}
	h.ok("limits", "set", "carol", "--firesPerMinute", "9")
	if got := h.ok("limits", "get", "carol"); got != "invocationsPerMinute = 7\nconcurrentInvocations = 3\nfiresPerMinute = 9\n" {
		t.Fatalf("get with fires = %q", got)
	}
	h.ok("limits", "set", "carol", "--concurrentInvocations", "4")
	id, err := h.identity(uuid)
	if err != nil || id.Limits != (whisk.NamespaceLimits{InvocationsPerMinute: 7, ConcurrentContainers: 4, FiresPerMinute: 9}) {
		t.Fatalf("identity limits = %+v, %v", id.Limits, err)
	}
	if got := h.ok("limits", "delete", "carol"); got != "Limits deleted\n" {
		t.Fatalf("delete = %q", got)
	}
	h.fails(1, "no limits set", "limits", "delete", "carol")
	if id, _ := h.identity(uuid); id.Limits != (whisk.NamespaceLimits{}) {
		t.Fatalf("after delete: %+v", id.Limits)
	}
}

func TestUsageErrors(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		re   string
		args []string
	}{
		{"want a command", nil},
		{"unknown command", []string{"user", "frobnicate", "x"}},
		{"at least 5 characters", []string{"user", "create", "bob"}},
		{"invalid namespace", []string{"user", "create", "alice", "--namespace", "_"}},
		{"must be a UUID", []string{"user", "create", "alice", "--auth", "nope:" + strings.Repeat("k", 64)}},
		{"at least 64", []string{"user", "create", "alice", "--auth", "11111111-2222-4333-8444-555555555555:short"}},
		{"want 1 argument", []string{"user", "create"}},
		{"give --invocationsPerMinute", []string{"limits", "set", "ns"}},
		{"want a positive number", []string{"limits", "set", "ns", "--invocationsPerMinute", "0"}},
		{"same limit", []string{"limits", "set", "ns", "--concurrentInvocations", "1", "--concurrentContainers", "2"}},
		{"allowedKinds is a wskadmin limit", []string{"limits", "set", "ns", "--allowedKinds", "python"}},
		{"flag provided but not defined", []string{"user", "list", "--bogus"}},
		{"belong to 'limits set'", []string{"user", "create", "alice", "--invocationsPerMinute", "3"}},
	} {
		h.fails(2, tc.re, tc.args...)
	}
	if code, out, _ := h.run("help"); code != 0 || !strings.Contains(out, "limits set NAMESPACE") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

// Admin writes while another store (standalone, in the real case another
// process) keeps writing the same file: SQLite's WAL and busy timeout make
// both succeed.
func TestWhileAnotherWriterRuns(t *testing.T) {
	h := newHarness(t)
	other, err := sqlite.Open(t.Context(), h.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			n++
			err := other.PutActivation(t.Context(), whisk.Activation{Namespace: "ns", Name: "a",
				ActivationID: whisk.NewActivationID(), Start: int64(n), End: int64(n)})
			if err != nil {
				done <- err
				return
			}
		}
	}()
	for i := range 20 {
		subject := "user" + strings.Repeat("x", 3) + string(rune('a'+i))
		h.ok("user", "create", subject)
		h.ok("limits", "set", subject, "--invocationsPerMinute", "5")
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the other writer failed: %v", err)
	}
	if got := strings.Count(h.ok("user", "list"), "\n"); got != 20 {
		t.Fatalf("listed %d users, want 20", got)
	}
}
