package main

import (
	"testing"

	"github.com/eddy-faas/eddy/internal/store/postgres"
	"github.com/eddy-faas/eddy/internal/store/postgres/pgtest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// TestAdminBlockOnPostgres: user block and unblock on a cluster's
// PostgreSQL: the blocked subject's key authenticates nothing, whois does
// not recognize it, and unblock restores it.
func TestAdminBlockOnPostgres(t *testing.T) {
	url := pgtest.Start(t)
	code, key, errs := runAdmin(t, "--postgres", url, "user", "create", "carol")
	if code != 0 {
		t.Fatalf("create: exit %d, %q", code, errs)
	}
	uuid, secret, _ := whisk.ParseAuthKey(key)
	s, err := postgres.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	authenticates := func() bool {
		t.Helper()
		id, err := s.IdentityByUUID(t.Context(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		return id.Authenticate(secret)
	}
	if code, out, errs := runAdmin(t, "--postgres", url, "user", "block", "carol"); code != 0 || out != `"carol" blocked successfully` {
		t.Fatalf("block: exit %d, %q, %q", code, out, errs)
	}
	if authenticates() {
		t.Fatal("a blocked subject's key authenticates")
	}
	if _, out, _ := runAdmin(t, "--postgres", url, "user", "whois", key); out != "Subject id is not recognized" {
		t.Fatalf("whois of a blocked key: %q", out)
	}
	if code, out, _ := runAdmin(t, "--postgres", url, "user", "unblock", "carol"); code != 0 || out != `"carol" unblocked successfully` {
		t.Fatalf("unblock: exit %d, %q", code, out)
	}
	if !authenticates() {
		t.Fatal("an unblocked subject's key does not authenticate")
	}
	if _, out, _ := runAdmin(t, "--postgres", url, "user", "whois", key); out != "subject: carol\nnamespace: carol" {
		t.Fatalf("whois: %q", out)
	}
}
