package admin

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCreates runs `user create` of one subject from several
// admins at once, each with its own connection to the one SQLite file (as
// separate processes are): exactly one succeeds, and the subject has
// exactly one key, the one printed.
func TestConcurrentCreates(t *testing.T) {
	h := newHarness(t)
	h.ok("user", "list") // create the database before the race
	const n = 6
	type result struct {
		code int
		out  string
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, out, _ := h.run("user", "create", "erika")
			res[i] = result{code, strings.TrimSpace(out)}
		})
	}
	wg.Wait()
	var won []string
	for _, r := range res {
		if r.code == 0 {
			won = append(won, r.out)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d creates succeeded, want 1: %+v", len(won), res)
	}
	uuid, _, _ := strings.Cut(won[0], ":")
	if got := h.ok("user", "get", "erika", "--all"); got != "erika\t"+uuid+"\n" {
		t.Fatalf("keys of erika: %q, want only the printed one %s", got, uuid)
	}
}
