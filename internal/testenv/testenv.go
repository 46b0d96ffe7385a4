// Package testenv holds what Eddy's tests share to wait without fixed
// sleeps and to end clean: Eventually polls a condition until it holds,
// and Main runs a package's tests and then fails on goroutines they left
// running (go.uber.org/goleak); Buffer collects the output of a command
// a test runs in a goroutine. Only tests import it.
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Eventually polls cond, first every millisecond and then less often (up
// to every 50 ms), until it holds; it fails t (Fatalf) when timeout passes
// first, naming what it waited for. The timeout is a bound against a hang,
// never what the test measures: pick it generously for a loaded machine.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: the
// standard output of a command a test runs in a goroutine, read while it
// runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Main runs the package's tests and then fails when goroutines other
// than the runtime's and the ignored ones are still running: a goroutine a
// test started and did not end. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// ignore names functions of goroutines the package's dependencies keep
// by design (a client library's background loop): a goroutine with one of
// them anywhere on its stack is not counted.
func Main(m *testing.M, ignore ...string) { os.Exit(Run(m.Run, ignore...)) }

// EtcdPeerHTTP are the goroutines of the HTTP connections between
// embedded etcd members (rafthttp): a member stopped and restarted in a
// test can leave one open on both ends, the client's idle in its pool and
// the server's waiting for it (etcd's connection wrappers do not end a
// pending read on a deadline), for as long as the process lives. For
// packages that run multi-member clusters and make no HTTP calls of their
// own.
var EtcdPeerHTTP = []string{
	"net/http.(*persistConn).readLoop",
	"net/http.(*persistConn).writeLoop",
	"net/http.(*connReader).abortPendingRead",
	"go.etcd.io/etcd/client/pkg/v3/transport.timeoutConn.Read",
}

// Run is Main for a TestMain that sets up and tears down around the
// tests: run runs them (m.Run, with the set-up and the tear-down) and
// returns the exit code; Run then checks for goroutines left running and
// returns 1 when it finds some (after waiting a little for them to end).
func Run(run func() int, ignore ...string) int {
	code := run()
	if code != 0 {
		return code
	}
	var opts []goleak.Option
	for _, f := range ignore {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: goroutines left running after the tests: %v\n", err)
		return 1
	}
	return 0
}
