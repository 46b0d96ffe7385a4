package main

// Authentication of internal traffic (docs/cluster.md, "TLS"): the TLS
// settings of the role commands and `eddy etcd`, the credentials
// `eddy standalone` keeps in its data dir, and `eddy admin certs`.

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus/kafka"
	"github.com/eddy-faas/eddy/internal/pki"
)

// security is what a role is told about TLS and SASL.
type security struct {
	files                           pki.Files
	kafkaUser, kafkaPass, kafkaMech string
	tls                             *tls.Config // loaded by load; nil: plaintext
}

// registerTLS puts the TLS flags on fs (--tls-*; with kafka, --kafka-sasl-*).
func (s *security) registerTLS(fs *flag.FlagSet, kafka bool) {
	fs.StringVar(&s.files.CA, "tls-ca", "", "CA certificate file: with --tls-cert and --tls-key, internal traffic (etcd, scheduler gRPC, Kafka) uses mutual TLS, accepting only peers whose certificate this CA issued")
	fs.StringVar(&s.files.Cert, "tls-cert", "", "this process's certificate file (see --tls-ca)")
	fs.StringVar(&s.files.Key, "tls-key", "", "this process's private key file (see --tls-ca)")
	if kafka {
		fs.StringVar(&s.kafkaUser, "kafka-sasl-user", "", "authenticate to Kafka with SASL as this user")
		fs.StringVar(&s.kafkaPass, "kafka-sasl-password", "", "the Kafka SASL user's password (better in EDDY_KAFKA_SASL_PASSWORD or --config than on the command line)")
		fs.StringVar(&s.kafkaMech, "kafka-sasl-mechanism", "SCRAM-SHA-256", "SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN")
	}
}

// load reads the TLS files when they are given; it reports an error when
// only some are.
func (s *security) load() error {
	if s.files.Zero() {
		return nil
	}
	tc, err := s.files.Config()
	if err != nil {
		return fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
	}
	s.tls = tc
	return nil
}

// grpcCredentials secure the scheduler's gRPC server and its clients:
// TLS with tc, or plaintext when tc is nil.
func grpcCredentials(tc *tls.Config) credentials.TransportCredentials {
	if tc == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(tc)
}

// checkEtcdURLs refuses endpoints whose scheme does not match whether TLS
// is on: a plaintext client of a TLS etcd would only time out.
func (s *security) checkEtcdURLs(eps []string) error {
	for _, ep := range eps {
		switch {
		case s.tls != nil && !strings.HasPrefix(ep, "https://"):
			return fmt.Errorf("--etcd %s: with --tls-* the etcd endpoints are https:// URLs", ep)
		case s.tls == nil && strings.HasPrefix(ep, "https://"):
			return fmt.Errorf("--etcd %s: an https:// endpoint needs --tls-ca, --tls-cert and --tls-key", ep)
		}
	}
	return nil
}

// kafka puts TLS and SASL on a Kafka configuration.
func (s *security) kafka(c *kafka.Config) error {
	c.TLS = s.tls
	if s.kafkaUser == "" && s.kafkaPass == "" {
		return nil
	}
	if s.kafkaUser == "" || s.kafkaPass == "" {
		return errors.New("--kafka-sasl-user and --kafka-sasl-password go together")
	}
	var m sasl.Mechanism
	switch strings.ToUpper(s.kafkaMech) {
	case "SCRAM-SHA-256":
		m = scram.Auth{User: s.kafkaUser, Pass: s.kafkaPass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: s.kafkaUser, Pass: s.kafkaPass}.AsSha512Mechanism()
	case "PLAIN":
		m = plain.Auth{User: s.kafkaUser, Pass: s.kafkaPass}.AsMechanism()
	default:
		return fmt.Errorf("--kafka-sasl-mechanism %q: want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", s.kafkaMech)
	}
	c.SASL = m
	return nil
}

// warnPlaintext says at start that internal traffic is not authenticated.
func (s *security) warnPlaintext(log *slog.Logger) {
	if s.tls == nil {
		log.Warn("internal traffic is not authenticated: give --tls-ca, --tls-cert and --tls-key (docs/cluster.md, \"TLS\")")
	}
}

// standaloneTLS gives a standalone's data dir its credentials at first
// start (<data-dir>/tls, see pki.Ensure) and loads them: its embedded
// etcd and its scheduler's gRPC server accept only clients presenting
// them.
func standaloneTLS(dataDir string) (pki.Files, *tls.Config, error) {
	f, err := pki.Ensure(filepath.Join(dataDir, "tls"), "standalone")
	if err != nil {
		return f, nil, fmt.Errorf("internal TLS credentials: %w", err)
	}
	tc, err := f.Config()
	if err != nil {
		return f, nil, fmt.Errorf("internal TLS credentials: %w", err)
	}
	return f, tc, nil
}

// adminCertsCmd runs adminCerts with `eddy admin`'s exit codes.
func adminCertsCmd(args []string, stdout, stderr io.Writer) int {
	if err := adminCerts(args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eddy admin certs: %v\n", err)
		return 2
	}
	return 0
}

// adminCerts is `eddy admin certs --out DIR [--hosts h1,h2] [--names ...]`.
func adminCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eddy admin certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the CA and the certificates to (required; made 0700, files 0600)")
	hosts := fs.String("hosts", "", "host names and addresses the certificates are for, comma-separated (127.0.0.1, ::1 and localhost are always included)")
	names := fs.String("names", strings.Join(pki.Roles, ","), "certificates to make, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("missing --out")
	}
	wrote, err := pki.Generate(*out, splitList(*names), splitList(*hosts))
	if err != nil {
		return err
	}
	if len(wrote) == 0 {
		fmt.Fprintf(stdout, "%s: every certificate asked for is there already\n", *out)
		return nil
	}
	fmt.Fprintf(stdout, "%s: wrote %s (ca.pem is the CA; <name>.pem and <name>-key.pem each certificate)\n",
		*out, strings.Join(wrote, ", "))
	return nil
}

// tlsFromEnv loads the TLS files of EDDY_TLS_CA, EDDY_TLS_CERT and
// EDDY_TLS_KEY (nil when none is set), for the tools that reach a
// cluster's etcd (`eddy status --etcd`).
func tlsFromEnv(getenv func(string) string) (*tls.Config, error) {
	s := security{files: pki.Files{CA: getenv(envName("tls-ca")), Cert: getenv(envName("tls-cert")), Key: getenv(envName("tls-key"))}}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("EDDY_TLS_CA, EDDY_TLS_CERT, EDDY_TLS_KEY: %w", err)
	}
	return s.tls, nil
}
