package whisk

import (
	"strings"
	"testing"
)

func TestHashKey(t *testing.T) {
	_, key := NewAuthKey()
	h1, h2 := HashKey(key), HashKey(key)
	if h1 == h2 {
		t.Fatalf("two hashes of one key are equal (%q): not salted", h1)
	}
	if strings.Contains(h1, key) || !IsKeyHash(h1) || IsKeyHash(key) {
		t.Fatalf("HashKey(%q) = %q", key, h1)
	}
	for _, h := range []string{h1, h2} {
		if !KeyMatches(h, key) {
			t.Fatalf("%q refuses its key", h)
		}
	}
	for _, k := range []string{"", key[1:], key + "a", strings.ToUpper(key)[:63] + "!"} {
		if KeyMatches(h1, k) {
			t.Fatalf("%q accepts %q", h1, k)
		}
	}
	// A stored value that is not a hash (a plain key, a damaged row)
	// matches nothing, not even itself.
	salt, _, _ := strings.Cut(strings.TrimPrefix(h1, "sha256$"), "$")
	for _, bad := range []string{"", key, "sha256$", "sha256$" + salt, "sha256$" + salt + "$zz", "sha256$" + salt + "$abcd", "md5$" + salt + "$00"} {
		if KeyMatches(bad, key) || KeyMatches(bad, bad) {
			t.Fatalf("malformed %q matches", bad)
		}
	}
}
