package cluster_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/pki"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/store/postgres"
)

// The cluster that cluster.sh starts (TLS on by default) serves internal
// calls only to clients presenting a certificate of its CA: a Fetch to
// each scheduler and an etcd write are refused in plaintext, without a
// client certificate and with another CA's; Kafka refuses a client
// without TLS or without SASL, PostgreSQL one without a client
// certificate. The same calls with the cluster's certificates succeed,
// so each refusal is the authentication's.
func TestInternalTrafficAuthenticated(t *testing.T) {
	c := startCluster(t)
	c.ctl1.must(200, "PUT", "/api/v1/namespaces/_/actions/victim", map[string]any{
		"exec": map[string]any{"kind": "python:3.11", "code": "def main(a):\n  return a\n"}})

	good := c.clientTLS()
	other := t.TempDir()
	if _, err := pki.Generate(other, []string{"client"}, nil); err != nil {
		t.Fatal(err)
	}
	wrong, err := pki.In(other, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	wrong.RootCAs = good.RootCAs // it trusts the cluster; the cluster must not trust it
	wrong.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrong.Certificates[0], nil }
	noCert := &tls.Config{RootCAs: good.RootCAs}

	// gRPC Fetch to every scheduler, as a thief of activations would.
	st := c.status()
	if len(st.Schedulers) != 3 {
		t.Fatalf("schedulers %+v", st.Schedulers)
	}
	fetch := func(addr string, creds credentials.TransportCredentials) error {
		cc, err := grpc.NewClient(addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(creds))...)
		if err != nil {
			return err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = rpc.NewClient(cc).Fetch(ctx, &rpc.FetchRequest{Namespace: "guest", Action: "victim", ContainerID: "thief"})
		return err
	}
	for _, s := range st.Schedulers {
		if err := fetch(s.Addr, credentials.NewTLS(good)); err != nil {
			t.Fatalf("Fetch from %s with the cluster's client certificate: %v", s.ID, err)
		}
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext": insecure.NewCredentials(), "no client certificate": credentials.NewTLS(noCert),
			"another CA": credentials.NewTLS(wrong),
		} {
			if err := fetch(s.Addr, creds); err == nil {
				t.Errorf("Fetch from %s (%s) was served", s.ID, name)
			}
		}
	}

	// etcd writes through each member's HTTP gateway.
	put := func(tc *tls.Config, url, key string) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		resp, err := hc.Post(url+"/v3/kv/put", "application/json",
			strings.NewReader(`{"key":"`+base64.StdEncoding.EncodeToString([]byte(key))+`","value":"eA=="}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	for _, ep := range strings.Split(c.etcdEPs, ",") {
		if err := put(good, ep, "eddy/test/allowed"); err != nil {
			t.Fatalf("etcd write at %s with the client certificate: %v", ep, err)
		}
		for name, tc := range map[string]*tls.Config{"no client certificate": noCert, "another CA": wrong} {
			if err := put(tc, ep, "eddy/test/stolen"); err == nil {
				t.Errorf("etcd write at %s (%s) was accepted", ep, name)
			}
		}
		if err := put(nil, "http://"+strings.TrimPrefix(ep, "https://"), "eddy/test/stolen"); err == nil {
			t.Errorf("etcd write at %s (plaintext) was accepted", ep)
		}
	}

	// Kafka: TLS and SASL both required.
	brokers := fmt.Sprintf("127.0.0.1:%d", c.base+21)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, cfg := range map[string]kafka.Config{
		"plaintext":        {Brokers: []string{brokers}, ConnectTimeout: 2 * time.Second},
		"TLS without SASL": {Brokers: []string{brokers}, TLS: good, ConnectTimeout: 2 * time.Second},
	} {
		if b, err := kafka.New(ctx, cfg); err == nil {
			b.Close()
			t.Errorf("Kafka (%s) accepted the client", name)
		}
	}

	// PostgreSQL: TLS with a client certificate of the CA.
	pgBase := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/eddy?connect_timeout=5", c.base+31)
	client := pki.In(c.tlsDir(), "client")
	ca := client.CA
	okURL := pgBase + "&sslmode=verify-full&sslrootcert=" + ca + "&sslcert=" + client.Cert + "&sslkey=" + client.Key
	s, err := postgres.Open(ctx, okURL, nil)
	if err != nil {
		t.Fatalf("PostgreSQL with the client certificate: %v", err)
	}
	s.Close()
	for name, url := range map[string]string{
		"plaintext":             pgBase + "&sslmode=disable",
		"no client certificate": pgBase + "&sslmode=verify-full&sslrootcert=" + ca,
	} {
		if s, err := postgres.Open(ctx, url, nil); err == nil {
			s.Close()
			t.Errorf("PostgreSQL (%s) accepted the client", name)
		}
	}
}
