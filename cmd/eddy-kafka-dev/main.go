// Command eddy-kafka-dev runs a Kafka-protocol broker for development and
// local clusters: franz-go's kfake, in memory (or persisted with -data-dir),
// since no Kafka package is available on our machines. It is not Kafka: use
// real Kafka in production.
//
//	eddy-kafka-dev --listen 127.0.0.1:9092 [--brokers 3] [--data-dir DIR]
//
// It prints the brokers' addresses, comma-separated, on one line of standard
// output once they accept connections (the value for Eddy's Kafka brokers
// setting), logs to standard error, and stops on SIGTERM or SIGINT. With
// --brokers N the brokers listen on N consecutive ports from --listen's
// (random ports when that port is 0). Groups accept session timeouts from
// --min-session-timeout (default 1s, below Kafka's 6s, so that local
// clusters can fail over quickly).
//
// With --tls-ca, --tls-cert and --tls-key the brokers speak TLS only and
// require a client certificate the CA issued; with --sasl-user and
// --sasl-password-file they require SASL/SCRAM-SHA-256 authentication as
// that user (docs/cluster.md, "TLS").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddy-faas/eddy/internal/pki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eddy-kafka-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "`host:port` of the first broker")
	n := fs.Int("brokers", 1, "number of brokers, on consecutive ports")
	dataDir := fs.String("data-dir", "", "persist topics and offsets in `dir` (default: memory only)")
	minSession := fs.Duration("min-session-timeout", time.Second, "smallest consumer-group session timeout accepted")
	clusterID := fs.String("cluster-id", "eddy-dev", "cluster id reported to clients")
	verbose := fs.Bool("v", false, "log the broker's debug messages")
	var tlsFiles pki.Files
	fs.StringVar(&tlsFiles.CA, "tls-ca", "", "CA certificate `file`: require client certificates it issued (with --tls-cert, --tls-key)")
	fs.StringVar(&tlsFiles.Cert, "tls-cert", "", "the brokers' certificate `file`")
	fs.StringVar(&tlsFiles.Key, "tls-key", "", "the brokers' key `file`")
	saslUser := fs.String("sasl-user", "", "require SASL/SCRAM-SHA-256 as this user (with --sasl-password-file)")
	saslPassFile := fs.String("sasl-password-file", "", "`file` holding the SASL user's password")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *n < 1 {
		fmt.Fprintln(stderr, "usage: eddy-kafka-dev [--listen host:port] [--brokers n] [--data-dir dir]")
		return 2
	}
	host, portStr, err := net.SplitHostPort(*listen)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port < 0 || port+*n-1 > 65535 {
		fmt.Fprintf(stderr, "eddy-kafka-dev: bad --listen %q: want host:port\n", *listen)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	level := kfake.LogLevelWarn
	if *verbose {
		level = kfake.LogLevelDebug
	}

	ports := make([]int, *n)
	next := 0
	opts := []kfake.Opt{
		kfake.ClusterID(*clusterID),
		kfake.GroupMinSessionTimeout(*minSession),
		kfake.WithLogger(kfake.BasicLogger(stderr, level)),
		kfake.Ports(ports...), // kfake passes them back to ListenFn
		// kfake listens on 127.0.0.1; listen on the host asked for instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			p := 0
			if port != 0 {
				p = port + next
			}
			next++
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(p)))
		}),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	secure, err := security(tlsFiles, *saslUser, *saslPassFile)
	if err != nil {
		fmt.Fprintf(stderr, "eddy-kafka-dev: %v\n", err)
		return 2
	}
	opts = append(opts, secure...)
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "eddy-kafka-dev: %v\n", err)
		return 1
	}
	addrs := strings.Join(cluster.ListenAddrs(), ",")
	fmt.Fprintln(stdout, addrs)
	log.Info("kafka dev broker listening", "brokers", addrs, "data_dir", *dataDir,
		"tls", !tlsFiles.Zero(), "sasl", *saslUser != "")
	<-ctx.Done()
	log.Info("kafka dev broker stopping")
	cluster.Close()
	return 0
}

// security are the options of --tls-* and --sasl-*.
func security(f pki.Files, user, passFile string) ([]kfake.Opt, error) {
	var opts []kfake.Opt
	if !f.Zero() {
		tc, err := f.Config()
		if err != nil {
			return nil, fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
		}
		opts = append(opts, kfake.TLS(tc))
	}
	if (user == "") != (passFile == "") {
		return nil, errors.New("--sasl-user and --sasl-password-file go together")
	}
	if user != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("--sasl-password-file: %w", err)
		}
		pass := strings.TrimSpace(string(b))
		if pass == "" {
			return nil, fmt.Errorf("--sasl-password-file %s is empty", passFile)
		}
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, pass))
	}
	return opts, nil
}
