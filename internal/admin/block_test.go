package admin

import (
	"strings"
	"testing"
)

// TestUserBlock: block marks every key of the subject blocked (no key
// authenticates, whois does not recognize it, no namespace can be added),
// other subjects stay; unblock undoes it; an unknown subject fails with
// wskadmin's line while the others are still done.
func TestUserBlock(t *testing.T) {
	h := newHarness(t)
	k1 := strings.TrimSpace(h.ok("user", "create", "alice"))
	k2 := strings.TrimSpace(h.ok("user", "create", "alice", "--namespace", "team"))
	kb := strings.TrimSpace(h.ok("user", "create", "bobby", "--namespace", "team"))
	auth := func(key string) bool {
		t.Helper()
		uuid, secret, _ := strings.Cut(key, ":")
		id, err := h.identity(uuid)
		if err != nil {
			t.Fatal(err)
		}
		return id.Authenticate(secret)
	}
	if got := h.ok("user", "block", "alice"); got != "\"alice\" blocked successfully\n" {
		t.Fatalf("block = %q", got)
	}
	if auth(k1) || auth(k2) || !auth(kb) {
		t.Fatalf("after block: alice %v %v, bobby %v; want false false true", auth(k1), auth(k2), auth(kb))
	}
	if got := h.ok("user", "whois", k1); got != "Subject id is not recognized\n" {
		t.Fatalf("whois of a blocked key = %q", got)
	}
	h.fails(1, "blocked", "user", "create", "alice", "--namespace", "other")
	code, out, _ := h.run("user", "unblock", "nobody", "alice")
	if code != 1 || out != "Failed to unblock \"nobody\" (not found)\n\"alice\" unblocked successfully\n" {
		t.Fatalf("unblock nobody alice: exit %d, %q", code, out)
	}
	if !auth(k1) || !auth(k2) || !auth(kb) {
		t.Fatal("after unblock: a key does not authenticate")
	}
	if got := h.ok("user", "whois", k2); got != "subject: alice\nnamespace: team\n" {
		t.Fatalf("whois after unblock = %q", got)
	}
}
