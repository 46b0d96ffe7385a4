package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
)

// lockedBuffer is standard output shared with the standalone goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A standalone's internal listeners (embedded etcd, the scheduler's gRPC)
// are on loopback and refuse a process without the data dir's
// credentials: a Fetch and an etcd write without a client certificate, or
// with one of another CA, fail; with the data dir's they are served.
func TestStandaloneRefusesUnauthenticatedInternalCalls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- standalone(ctx, []string{"--port", "0", "--data-dir", dir, "--backend", "process",
			"--prewarm", "0", "--log-level", "error"}, &out, os.Stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("standalone: %v", err)
		}
	}()
	testenv.Eventually(t, 90*time.Second, "standalone serving", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("standalone stopped: %v", err)
		default:
		}
		return strings.Contains(out.String(), "API at")
	})

	// The data dir's credentials: 0600 files in a 0700 dir.
	tlsDir := filepath.Join(dir, "tls")
	if st, err := os.Stat(tlsDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want a 0700 dir", tlsDir, st.Mode(), err)
	}
	files := pki.In(tlsDir, "standalone")
	for _, f := range []string{files.CA, files.Cert, files.Key} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a 0600 file", f, st.Mode(), err)
		}
	}
	good, err := files.Config()
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.Generate(other, []string{"client"}, nil); err != nil {
		t.Fatal(err)
	}
	wrong, err := pki.In(other, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	wrong.RootCAs = good.RootCAs // it trusts the server; the server must not trust it
	// Present the certificate even though the server asks for its own CA's
	// (Go's client would otherwise send none).
	wrong.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrong.Certificates[0], nil }
	noCert := &tls.Config{RootCAs: good.RootCAs}

	b, err := os.ReadFile(filepath.Join(dir, "etcd", "endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	ep := strings.TrimSpace(string(b))
	if !strings.HasPrefix(ep, "https://127.0.0.1:") {
		t.Fatalf("etcd endpoint %s, want https on loopback", ep)
	}
	etcd, err := cluster.DialTLS(ctx, []string{ep}, good, nil)
	if err != nil {
		t.Fatalf("etcd with the data dir's credentials: %v", err)
	}
	defer etcd.Close()
	scheds, err := etcd.Schedulers(ctx)
	if err != nil || len(scheds) != 1 {
		t.Fatalf("schedulers: %v %v", scheds, err)
	}
	addr := scheds[0].Addr
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("scheduler gRPC at %s, want loopback", addr)
	}

	// gRPC Fetch, as an action's process would steal activations.
	fetch := func(creds credentials.TransportCredentials) error {
		cc, err := grpc.NewClient(addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(creds))...)
		if err != nil {
			return err
		}
		defer cc.Close()
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		defer fcancel()
		_, err = rpc.NewClient(cc).Fetch(fctx, &rpc.FetchRequest{Namespace: "guest", Action: "victim", ContainerID: "thief"})
		return err
	}
	if err := fetch(credentials.NewTLS(good)); err != nil {
		t.Fatalf("Fetch with the data dir's credentials: %v (the refusals below would prove nothing)", err)
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":             insecure.NewCredentials(),
		"no client certificate": credentials.NewTLS(noCert),
		"another CA":            credentials.NewTLS(wrong),
	} {
		if err := fetch(creds); err == nil {
			t.Errorf("Fetch (%s) was served", name)
		} else {
			t.Logf("Fetch (%s) refused: %v", name, err)
		}
	}

	// etcd writes through its HTTP gateway, as `curl` from an action would.
	put := func(tc *tls.Config, url, key string) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := hc.Post(url+"/v3/kv/put", "application/json",
			strings.NewReader(`{"key":"`+base64.StdEncoding.EncodeToString([]byte(key))+`","value":"eA=="}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &putError{resp.Status}
		}
		return nil
	}
	if err := put(good, ep, "eddy/test/allowed"); err != nil {
		t.Fatalf("etcd write with the data dir's credentials: %v", err)
	}
	for name, tc := range map[string]*tls.Config{"no client certificate": noCert, "another CA": wrong} {
		if err := put(tc, ep, "eddy/test/stolen"); err == nil {
			t.Errorf("etcd write (%s) was accepted", name)
		}
	}
	if err := put(nil, "http://"+strings.TrimPrefix(ep, "https://"), "eddy/test/stolen"); err == nil {
		t.Error("etcd write (plaintext) was accepted")
	}
	for key, want := range map[string]string{"eddy/test/allowed": `"count":"1"`, "eddy/test/stolen": `"count"`} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: good}}
		resp, err := hc.Post(ep+"/v3/kv/range", "application/json",
			strings.NewReader(`{"key":"`+base64.StdEncoding.EncodeToString([]byte(key))+`","count_only":true}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// etcd's gateway leaves a zero count out.
		if has := strings.Contains(string(body), want); has != (key == "eddy/test/allowed") {
			t.Errorf("%s after the writes: %s", key, body)
		}
	}
}

type putError struct{ status string }

func (e *putError) Error() string { return e.status }
