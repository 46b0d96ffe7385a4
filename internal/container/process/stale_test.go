package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/testenv"
)

// A backend (not isolating: isolated ones clean their uid slot) on a work
// root a killed predecessor used kills the processes
// left running in its work directories (a runtime's child in a session of
// its own included) and removes the directories.
func TestNewRemovesWhatAPredecessorLeft(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "proc-dead-1-123")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	left := exec.Command("sleep", "600")
	left.Dir = dir
	left.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = left.Wait(); close(exited) }()
	t.Cleanup(func() { _ = left.Process.Kill() })

	first, err := New(Config{Command: []string{"true"}, WorkRoot: root, RemoveStale: true, Isolation: Isolation{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the left process killed", func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the left work dir is still there: %v", err)
	}
	_ = first.Close(context.Background())
}
