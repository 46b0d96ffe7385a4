package main

import (
	"sync"
	"testing"

	"github.com/eddy-faas/eddy/internal/store/postgres/pgtest"
)

// TestAdminConcurrentCreatesOnPostgres: several `eddy admin user create`
// of one subject at once against PostgreSQL: exactly one succeeds and the
// subject has exactly that key.
func TestAdminConcurrentCreatesOnPostgres(t *testing.T) {
	url := pgtest.Start(t)
	if code, _, errs := runAdmin(t, "--postgres", url, "user", "list"); code != 0 {
		t.Fatalf("list: exit %d, %q", code, errs)
	}
	const n = 6
	codes := make([]int, n)
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes[i], outs[i], _ = runAdmin(t, "--postgres", url, "user", "create", "frank", "--namespace", "crew")
		})
	}
	wg.Wait()
	won := ""
	for i, c := range codes {
		if c == 0 {
			if won != "" {
				t.Fatalf("two creates succeeded: %q and %q", won, outs[i])
			}
			won = outs[i]
		}
	}
	if won == "" {
		t.Fatalf("no create succeeded: %v", codes)
	}
	_, out, _ := runAdmin(t, "--postgres", url, "user", "get", "frank", "--all")
	if want := "crew\t" + won[:36]; out != want {
		t.Fatalf("keys of frank: %q, want %q", out, want)
	}
}
