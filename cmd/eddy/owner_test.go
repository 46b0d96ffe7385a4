package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerOwnerPerDataDir(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	oa, err := containerOwner(a)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := containerOwner(b)
	if err != nil {
		t.Fatal(err)
	}
	if oa == ob {
		t.Fatalf("two data dirs share the container owner %q", oa)
	}
	if !strings.HasPrefix(oa, invokerID+"-") {
		t.Errorf("owner %q does not name the invoker %q", oa, invokerID)
	}
	// The same dir, named another way, keeps its owner (a restart finds
	// what a killed run left), and the file says it.
	again, err := containerOwner(filepath.Join(a, ".", "x", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if again != oa {
		t.Errorf("owner of the same data dir changed: %q, then %q", oa, again)
	}
	f, err := os.ReadFile(filepath.Join(a, "container-owner"))
	if err != nil || strings.TrimSpace(string(f)) != oa {
		t.Errorf("container-owner file: %q, %v; want %q", f, err, oa)
	}
}

// TestDataDirPrivate: the data dir is made 0700, new or existing, and the
// container-owner file 0600.
func TestDataDirPrivate(t *testing.T) {
	fresh := filepath.Join(t.TempDir(), "new", "data")
	old := t.TempDir()
	if err := os.Chmod(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "container-owner"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{fresh, old} {
		if err := privateDataDir(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := containerOwner(dir); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "container-owner"): 0o600} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
		}
	}
}
