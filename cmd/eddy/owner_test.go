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
