// Package pki makes and loads the certificates that authenticate Eddy's
// internal traffic (docs/cluster.md, "TLS"): a private certificate
// authority, certificates it issues for the roles and the services they
// use (ECDSA P-256), and the tls.Config of each side of a mutually
// authenticated connection, where the server accepts only clients whose
// certificate the same CA issued.
//
// `eddy standalone` makes its own CA and one certificate in
// <data-dir>/tls at first start (Ensure); `eddy admin certs` makes a CA and
// one certificate per role for a cluster (Generate).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validity of what Generate and Ensure issue: the CA for ten years, the
// certificates it signs for two (docs/cluster.md says how to rotate them).
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 2 * 365 * 24 * time.Hour
)

// File names in a certificate directory: the CA's certificate and key, and
// <name>.pem with <name>-key.pem for each certificate.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// Roles are the certificates Generate makes by default: one per Eddy role,
// one per service Eddy uses, and one for tools and operators (client).
var Roles = []string{"controller", "scheduler", "invoker", "etcd", "kafka", "postgres", "client"}

// CA is a certificate authority that can issue certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a self-signed CA named name, valid for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Eddy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads a CA from its certificate and key files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: loading the CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: the CA key in %s is not an ECDSA key", keyFile)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: loading the CA: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certFile)
	}
	return &CA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", cert.Raw)}, nil
}

// CertPEM is the CA's certificate, PEM-encoded.
func (ca *CA) CertPEM() []byte { return slices.Clone(ca.pem) }

// KeyPEM is the CA's private key, PEM-encoded.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.key) }

// Issue makes a certificate named name (its common name) for hosts (DNS
// names or IP addresses, its subject alternative names), valid for
// validity, usable by both ends of a connection: a role is a server to
// some (a scheduler to invokers) and a client to others (of etcd). It
// returns the certificate and its key, PEM-encoded.
func (ca *CA) Issue(name string, hosts []string, validity time.Duration) (certPEM, keyPEMBytes []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: a certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key of %s: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Eddy"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate of %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), kp, nil
}

// Files names a CA certificate, and a certificate with its key that the CA
// issued: what one process needs for mutually authenticated connections.
type Files struct {
	CA, Cert, Key string
}

// In is the Files of certificate name in dir.
func In(dir, name string) Files {
	return Files{CA: filepath.Join(dir, CAFile), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
}

// Zero reports whether no file is named.
func (f Files) Zero() bool { return f == Files{} }

// Check reports an error unless all three files are named.
func (f Files) Check() error {
	var missing []string
	for _, m := range []struct{ what, v string }{{"CA certificate", f.CA}, {"certificate", f.Cert}, {"key", f.Key}} {
		if m.v == "" {
			missing = append(missing, m.what)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pki: TLS needs a CA certificate, a certificate and its key: missing the %s", strings.Join(missing, " and the "))
	}
	return nil
}

// load reads the key pair and the CA pool.
func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	if err := f.Check(); err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pki: %w", err)
	}
	b, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return tls.Certificate{}, nil, fmt.Errorf("pki: no certificate in %s", f.CA)
	}
	return pair, pool, nil
}

// Config is the tls.Config of a process on both ends: as a server it
// presents its certificate and requires a client certificate the CA
// issued; as a client it presents its certificate and accepts only a
// server certificate the CA issued (for the host dialed; a client sets
// ServerName when it dials an address its certificate does not name).
func (f Files) Config() (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// Generate writes a CA (unless dir has one: then it issues with that one)
// and a certificate for each name with hosts plus 127.0.0.1 and localhost
// as its subject alternative names into dir (made 0700; every file 0600).
// A certificate already in dir is kept. It returns the names it wrote.
func Generate(dir string, names, hosts []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var ca *CA
	var wrote []string
	caFile, caKey := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(caFile); err == nil {
		if ca, err = LoadCA(caFile, caKey); err != nil {
			return nil, err
		}
	} else {
		if ca, err = NewCA("Eddy CA", CAValidity); err != nil {
			return nil, err
		}
		kp, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		if err := writeSecret(caKey, kp); err != nil {
			return nil, err
		}
		if err := writeSecret(caFile, ca.CertPEM()); err != nil {
			return nil, err
		}
		wrote = append(wrote, "ca")
	}
	all := append(slices.Clone(hosts), "127.0.0.1", "::1", "localhost")
	slices.Sort(all)
	all = slices.Compact(all)
	for _, name := range names {
		f := In(dir, name)
		if _, err := os.Stat(f.Cert); err == nil {
			continue
		}
		cp, kp, err := ca.Issue(name, all, CertValidity)
		if err != nil {
			return nil, err
		}
		if err := writeSecret(f.Key, kp); err != nil {
			return nil, err
		}
		if err := writeSecret(f.Cert, cp); err != nil {
			return nil, err
		}
		wrote = append(wrote, name)
	}
	return wrote, nil
}

// Ensure gives the data dir of a standalone its credentials at first
// start: dir (0700) holds a CA certificate and one certificate for
// 127.0.0.1 and localhost, each 0600, and no CA key: nothing else can be
// issued later. When any file is missing or unreadable, all are made
// anew. It returns their Files.
func Ensure(dir, name string) (Files, error) {
	f := In(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return f, fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Config(); err == nil {
		return f, nil
	}
	ca, err := NewCA("Eddy standalone CA", CAValidity)
	if err != nil {
		return f, err
	}
	cp, kp, err := ca.Issue(name, []string{"127.0.0.1", "::1", "localhost"}, CAValidity)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		path string
		b    []byte
	}{{f.Key, kp}, {f.Cert, cp}, {f.CA, ca.CertPEM()}} {
		if err := writeSecret(w.path, w.b); err != nil {
			return f, err
		}
	}
	return f, nil
}

// writeSecret writes b to path readable by its owner only, atomically.
func writeSecret(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding a key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return s, nil
}
