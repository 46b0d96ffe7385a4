package pki

import (
	"bytes"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handshake serves one TLS connection with srv and dials it with cli; it
// returns the client's and the server's handshake errors.
func handshake(t *testing.T, srv, cli *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err == nil {
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		var b []byte
		b, err = io.ReadAll(c)
		if err == nil && string(b) != "ok" {
			err = io.ErrUnexpectedEOF
		}
		c.Close()
	}
	return err, <-done
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	wrote, err := Generate(dir, []string{"scheduler", "invoker"}, []string{"sched.example"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(wrote, ",") != "ca,scheduler,invoker" {
		t.Fatalf("wrote %v", wrote)
	}
	srv, err := In(dir, "scheduler").Config()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := In(dir, "invoker").Config()
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr := handshake(t, srv, cli); cerr != nil || serr != nil {
		t.Fatalf("same CA: client %v, server %v", cerr, serr)
	}
	// A certificate names the hosts given and loopback.
	for _, host := range []string{"sched.example", "localhost"} {
		c := cli.Clone()
		c.ServerName = host
		if cerr, serr := handshake(t, srv, c); cerr != nil || serr != nil {
			t.Fatalf("server name %s: client %v, server %v", host, cerr, serr)
		}
	}
	c := cli.Clone()
	c.ServerName = "other.example"
	if cerr, _ := handshake(t, srv, c); cerr == nil {
		t.Fatal("a server name the certificate does not list was accepted")
	}

	// A client without a certificate is refused by the server.
	bare := &tls.Config{RootCAs: cli.RootCAs}
	if _, serr := handshake(t, srv, bare); serr == nil {
		t.Fatal("server accepted a client without a certificate")
	}

	// A client whose certificate another CA issued is refused, and it
	// refuses the server too.
	other := t.TempDir()
	if _, err := Generate(other, []string{"client"}, nil); err != nil {
		t.Fatal(err)
	}
	wrong, err := In(other, "client").Config()
	if err != nil {
		t.Fatal(err)
	}
	if _, serr := handshake(t, srv, wrong); serr == nil {
		t.Fatal("server accepted a client certificate of another CA")
	}
	wrongCertOurCA := wrong.Clone()
	wrongCertOurCA.RootCAs = cli.RootCAs
	// Present the certificate even though the server asks for its own CA's
	// (Go's client would otherwise send none).
	wrongCertOurCA.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &wrongCertOurCA.Certificates[0], nil
	}
	if _, serr := handshake(t, srv, wrongCertOurCA); serr == nil {
		t.Fatal("server accepted a client certificate of another CA (client trusting ours)")
	}
	if cerr, _ := handshake(t, srv, wrong); cerr == nil {
		t.Fatal("client of another CA accepted our server")
	}
}

func TestGenerateKeepsWhatExists(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir, []string{"scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, CAFile))
	s1, _ := os.ReadFile(In(dir, "scheduler").Cert)
	wrote, err := Generate(dir, []string{"scheduler", "invoker"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(wrote, ",") != "invoker" {
		t.Fatalf("second run wrote %v, want only the new invoker", wrote)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, CAFile))
	s2, _ := os.ReadFile(In(dir, "scheduler").Cert)
	if !bytes.Equal(ca1, ca2) || !bytes.Equal(s1, s2) {
		t.Fatal("the CA or an existing certificate changed")
	}
	// The new certificate is issued by the same CA.
	a, err := In(dir, "scheduler").Config()
	if err != nil {
		t.Fatal(err)
	}
	b, err := In(dir, "invoker").Config()
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr := handshake(t, a, b); cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
}

func TestEnsurePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := Ensure(dir, "standalone")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("dir holds %d files, want 3 (no CA key)", len(entries))
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
		if e.Name() == CAKeyFile {
			t.Errorf("the CA key was kept")
		}
	}
	cert1, _ := os.ReadFile(f.Cert)
	// A second start keeps the credentials.
	if _, err := Ensure(dir, "standalone"); err != nil {
		t.Fatal(err)
	}
	cert2, _ := os.ReadFile(f.Cert)
	if !bytes.Equal(cert1, cert2) {
		t.Fatal("Ensure replaced valid credentials")
	}
	// A damaged set is made anew.
	if err := os.WriteFile(f.Key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, "standalone"); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config()
	if err != nil {
		t.Fatalf("after repair: %v", err)
	}
	if cerr, serr := handshake(t, cfg, cfg); cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
}

func TestFilesCheck(t *testing.T) {
	if err := (Files{CA: "a", Cert: "b"}).Check(); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := (Files{CA: "/nonexistent", Cert: "/nonexistent", Key: "/nonexistent"}).Config(); err == nil {
		t.Fatal("loading missing files succeeded")
	}
}
