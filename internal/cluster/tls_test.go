package cluster

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/eddy-faas/eddy/internal/pki"
)

// An embedded etcd with TLS serves clients presenting a certificate of its
// CA, and refuses a write from one without a certificate, from one whose
// certificate another CA issued, and over plaintext.
func TestEmbeddedTLSRequiresClientCert(t *testing.T) {
	t.Parallel()
	certs, other := t.TempDir(), t.TempDir()
	if _, err := pki.Generate(certs, []string{"etcd", "client"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Generate(other, []string{"client"}, nil); err != nil {
		t.Fatal(err)
	}
	etcdFiles := pki.In(certs, "etcd")
	e := startEtcdAt(t, EmbedConfig{Dir: t.TempDir(), TLS: &etcdFiles})
	ep := e.Endpoints()[0]
	if !strings.HasPrefix(ep, "https://") {
		t.Fatalf("endpoint %s, want https", ep)
	}
	ctx := ctxT(t)

	good, err := pki.In(certs, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	c, err := DialTLS(ctx, e.Endpoints(), good, testLog())
	if err != nil {
		t.Fatalf("a client with a certificate of the CA: %v", err)
	}
	defer c.Close()
	if _, err := c.etcd.Put(ctx, root+"test/tls", "ok"); err != nil {
		t.Fatalf("put with a client certificate: %v", err)
	}

	// etcd's HTTP gateway, as a process on the host would write a key.
	put := func(tc *tls.Config, url, key string) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := hc.Post(url+"/v3/kv/put", "application/json",
			strings.NewReader(`{"key":"`+base64.StdEncoding.EncodeToString([]byte(key))+`","value":"eA=="}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return &httpError{resp.StatusCode}
		}
		return nil
	}
	if err := put(good, ep, root+"test/allowed"); err != nil {
		t.Fatalf("the gateway refused a client with a certificate (the check below would prove nothing): %v", err)
	}
	noCert := &tls.Config{RootCAs: good.RootCAs}
	if err := put(noCert, ep, root+"test/stolen"); err == nil {
		t.Fatal("a write without a client certificate was accepted")
	}
	wrong, err := pki.In(other, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	wrong.RootCAs = good.RootCAs // it trusts the server; the server must not trust it
	// Present the certificate even though the server asks for its own CA's
	// (Go's client would otherwise send none).
	wrong.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrong.Certificates[0], nil }
	if err := put(wrong, ep, root+"test/stolen"); err == nil {
		t.Fatal("a write with a certificate of another CA was accepted")
	}
	if err := put(nil, "http://"+strings.TrimPrefix(ep, "https://"), root+"test/stolen"); err == nil {
		t.Fatal("a plaintext write was accepted")
	}
	for key, want := range map[string]int{root + "test/allowed": 1, root + "test/stolen": 0} {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != want {
			t.Errorf("%s: %d keys, want %d", key, len(resp.Kvs), want)
		}
	}
}

type httpError struct{ code int }

func (e *httpError) Error() string { return http.StatusText(e.code) }
