package kafka

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/eddy-faas/eddy/internal/pki"
)

// A broker with TLS (client certificates required) and SASL/SCRAM
// serves a client with both, and refuses one missing either or with the
// wrong password or another CA's certificate.
func TestTLSAndSASL(t *testing.T) {
	certs, other := t.TempDir(), t.TempDir()
	if _, err := pki.Generate(certs, []string{"kafka", "scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Generate(other, []string{"scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	srvTLS, err := pki.In(certs, "kafka").Config()
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srvTLS),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "eddy", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cliTLS, err := pki.In(certs, "scheduler").Config()
	if err != nil {
		t.Fatal(err)
	}
	wrongTLS, err := pki.In(other, "scheduler").Config()
	if err != nil {
		t.Fatal(err)
	}
	wrongTLS.RootCAs = cliTLS.RootCAs
	// Present the certificate even though the server asks for its own CA's
	// (Go's client would otherwise send none).
	wrongTLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrongTLS.Certificates[0], nil }
	cfg := func(tc *tls.Config, auth scram.Auth) Config {
		c := Config{Brokers: cluster.ListenAddrs(), ClientID: "eddy-tls-test", TLS: tc, ConnectTimeout: 2 * time.Second}
		if auth.User != "" {
			c.SASL = auth.AsSha256Mechanism()
		}
		return c
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, cfg(cliTLS, scram.Auth{User: "eddy", Pass: "secret"}))
	if err != nil {
		t.Fatalf("TLS and SASL: %v", err)
	}
	defer b.Close()
	if err := b.EnsureTopic(ctx, "tls-test"); err != nil {
		t.Fatalf("EnsureTopic over TLS and SASL: %v", err)
	}
	if err := b.Publish(ctx, "tls-test", []byte("hello")); err != nil {
		t.Fatalf("Publish over TLS and SASL: %v", err)
	}

	for name, c := range map[string]Config{
		"no SASL":               cfg(cliTLS, scram.Auth{}),
		"wrong password":        cfg(cliTLS, scram.Auth{User: "eddy", Pass: "guess"}),
		"no TLS":                cfg(nil, scram.Auth{User: "eddy", Pass: "secret"}),
		"no client certificate": cfg(&tls.Config{RootCAs: cliTLS.RootCAs}, scram.Auth{User: "eddy", Pass: "secret"}),
		"another CA":            cfg(wrongTLS, scram.Auth{User: "eddy", Pass: "secret"}),
	} {
		b, err := New(ctx, c)
		if err == nil {
			b.Close()
			t.Errorf("%s: the broker accepted the client", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
}
