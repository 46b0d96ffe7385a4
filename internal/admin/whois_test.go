package admin

import (
	"strings"
	"testing"
)

// TestUserWhois: whois prints wskadmin's "subject: …" and "namespace: …"
// lines for a key, and "Subject id is not recognized" (exit 0, as
// wskadmin) for an unknown UUID or a wrong secret; a malformed key is a
// usage error.
func TestUserWhois(t *testing.T) {
	h := newHarness(t)
	key := strings.TrimSpace(h.ok("user", "create", "alice", "--namespace", "team"))
	if got := h.ok("user", "whois", key); got != "subject: alice\nnamespace: team\n" {
		t.Fatalf("whois = %q", got)
	}
	uuid, _, _ := strings.Cut(key, ":")
	for _, k := range []string{uuid + ":" + strings.Repeat("x", 64), "11111111-2222-4333-8444-555555555555:" + strings.Repeat("k", 64)} {
		if got := h.ok("user", "whois", k); got != "Subject id is not recognized\n" {
			t.Fatalf("whois %s = %q", k, got)
		}
	}
	h.fails(2, "UUID:KEY", "user", "whois", "no-colon")
}
