package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/testenv"
)

// printedLine waits for run's first line of output (the brokers'
// addresses) and returns it.
func printedLine(t *testing.T, out *testenv.Buffer) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if line, ok := strings.CutSuffix(out.String(), "\n"); ok {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatal("no address printed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out testenv.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--brokers", "2"}, &out, io.Discard) }()

	addrs := strings.Split(printedLine(t, &out), ",")
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

// With --tls-* and --sasl-* the broker serves only clients with a
// certificate of the CA and the SASL password.
func TestTLSAndSASL(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Generate(dir, []string{"kafka", "client"}, nil); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "password")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := pki.In(dir, "kafka")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--tls-ca", k.CA, "--tls-cert", k.Cert, "--tls-key", k.Key,
			"--sasl-user", "eddy", "--sasl-password-file", pass}, &out, io.Discard)
	}()
	addr := printedLine(t, &out)
	tc, err := pki.In(dir, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	b, err := kafka.New(ctx, kafka.Config{Brokers: []string{addr}, TLS: tc,
		SASL: scram.Auth{User: "eddy", Pass: "s3cret"}.AsSha256Mechanism()})
	if err != nil {
		t.Fatalf("with TLS and SASL: %v", err)
	}
	b.Close()
	for name, c := range map[string]kafka.Config{
		"no SASL": {TLS: tc},
		"no TLS":  {SASL: scram.Auth{User: "eddy", Pass: "s3cret"}.AsSha256Mechanism()},
	} {
		c.Brokers, c.ConnectTimeout = []string{addr}, 2*time.Second
		if b, err := kafka.New(ctx, c); err == nil {
			b.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	cancel()
	<-done
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--listen", "nope"}, {"--brokers", "0"}, {"extra"},
		{"--tls-ca", "ca.pem"}, {"--sasl-user", "eddy"}} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}
