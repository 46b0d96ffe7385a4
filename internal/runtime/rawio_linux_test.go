package runtime

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Close returns while a sentinel write waits on a full stdout pipe (the
// log reader stopped reading): it closes the sentinels' files, which
// wakes that write, instead of waiting for it.
func TestCloseWithSentinelWriteParked(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s, err := NewServer(Config{Launcher: LauncherNative, WorkDir: t.TempDir(), Stdout: w, Stderr: w})
	if err != nil {
		t.Fatal(err)
	}
	if s.sent.Load() == nil || s.sent.Load().out == nil {
		t.Fatal("stdout is a pipe, yet the sentinels have no raw writer")
	}
	// Fill the pipe through a non-blocking descriptor of our own.
	fd, err := syscall.Open("/proc/self/fd/"+itoa(int(w.Fd())), syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := syscall.Write(fd, chunk); err != nil {
			break
		}
	}
	syscall.Close(fd)
	wrote := make(chan struct{})
	go func() {
		s.sentinels()
		close(wrote)
	}()
	time.Sleep(100 * time.Millisecond) // the write parks on the full pipe
	select {
	case <-wrote:
		t.Fatal("a sentinel write to a full pipe returned at once")
	default:
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a sentinel write parked on a full pipe")
	}
	// Let the fallback write (to the blocking stdout) through.
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the sentinel write never returned")
	}
}
