package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/testenv"
)

// A standalone's internal listeners (embedded etcd, the scheduler's gRPC)
// are on loopback and refuse a process without the data dir's
// credentials: a Fetch and an etcd write without a client certificate, or
// with one of another CA, fail; with the data dir's they are served.
func TestStandaloneRefusesUnauthenticatedInternalCalls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	var out testenv.Buffer
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

func TestAdminCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out strings.Builder
	if code := adminCertsCmd([]string{"--out", dir, "--hosts", "sched1.example,10.0.0.7"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want 0700", dir, st.Mode(), err)
	}
	for _, name := range append([]string{"ca"}, pki.Roles...) {
		for _, f := range []string{name + ".pem", name + "-key.pem"} {
			st, err := os.Stat(filepath.Join(dir, f))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, want a 0600 file", f, err)
			}
		}
	}
	// Each role's certificate serves the hosts given and loopback, and the
	// others accept it.
	srv, err := pki.In(dir, "scheduler").Config()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(srv.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"sched1.example", "10.0.0.7", "127.0.0.1", "localhost"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("scheduler certificate for %s: %v", h, err)
		}
	}
	if code := adminCertsCmd(nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("without --out: exit %d, want 2", code)
	}
}

func TestRoleTLSSettings(t *testing.T) {
	base := []string{"--etcd", "https://127.0.0.1:1", "--kafka", "k:1", "--postgres", "postgres://x@y/z", "--id", "s1"}
	env := func(string) string { return "" }
	cfg, err := parseRoleConfig("scheduler", append(base, "--tls-ca", "ca.pem"), io.Discard, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.security.load(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("--tls-ca alone: %v, want an error naming what is missing", err)
	}
	cfg, err = parseRoleConfig("scheduler", base, io.Discard, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.security.load(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.security.checkEtcdURLs([]string{"https://127.0.0.1:1"}); err == nil {
		t.Error("an https etcd URL without --tls-* was accepted")
	}
	dir := t.TempDir()
	if _, err := pki.Generate(dir, []string{"scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	f := pki.In(dir, "scheduler")
	getenv := func(k string) string {
		return map[string]string{"EDDY_TLS_CA": f.CA, "EDDY_TLS_CERT": f.Cert, "EDDY_TLS_KEY": f.Key,
			"EDDY_KAFKA_SASL_USER": "eddy", "EDDY_KAFKA_SASL_PASSWORD": "pw"}[k]
	}
	cfg, err = parseRoleConfig("scheduler", base, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.security.load(); err != nil || cfg.security.tls == nil {
		t.Fatalf("TLS from EDDY_TLS_*: %v", err)
	}
	if err := cfg.security.checkEtcdURLs([]string{"http://127.0.0.1:1"}); err == nil {
		t.Error("an http etcd URL with TLS on was accepted")
	}
	var kc kafka.Config
	if err := cfg.security.kafka(&kc); err != nil || kc.TLS == nil || kc.SASL == nil || kc.SASL.Name() != "SCRAM-SHA-256" {
		t.Fatalf("kafka settings: %v %+v", err, kc)
	}
	cfg.security.kafkaMech = "MD5"
	if err := cfg.security.kafka(&kc); err == nil {
		t.Error("an unknown SASL mechanism was accepted")
	}
}
