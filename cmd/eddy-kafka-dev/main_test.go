package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--brokers", "2"}, &out, io.Discard) }()

	var addrs []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if line, ok := strings.CutSuffix(out.String(), "\n"); ok {
			addrs = strings.Split(line, ",")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no address printed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("printed %q, want two 127.0.0.1 addresses", addrs)
	}

	b, err := kafka.New(ctx, kafka.Config{Brokers: addrs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureTopic(ctx, "dev-check"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "dev-check", []byte("x")); err != nil {
		t.Fatal(err)
	}
	b.Close()

	cancel() // as SIGTERM does
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after the signal")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--listen", "nope"}, {"--brokers", "0"}, {"extra"}} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}
