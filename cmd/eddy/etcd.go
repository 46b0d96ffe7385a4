package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/eddy-faas/eddy/internal/cluster"
)

// etcdMember is `eddy etcd`: one member of an etcd cluster, embedded in
// this process (cluster.StartEmbedded), for local clusters on machines
// without an etcd server package. It serves until ctx ends.
func etcdMember(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eddy etcd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "member name, unique in the cluster (required with --initial-cluster)")
	dir := fs.String("data-dir", "", "member data directory (required)")
	clientURL := fs.String("client-url", "http://127.0.0.1:2379", "URL to serve clients on")
	peerURL := fs.String("peer-url", "http://127.0.0.1:2380", "URL to serve peers on")
	initial := fs.String("initial-cluster", "", `every member as "name=peerURL,..." (empty: a one-member cluster)`)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var sec security
	sec.registerTLS(fs, false)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *dir == "" {
		return errors.New("missing --data-dir")
	}
	if *initial != "" {
		if *name == "" {
			return errors.New("--initial-cluster needs --name")
		}
		if !strings.Contains(","+*initial, ","+*name+"=") {
			return fmt.Errorf("--initial-cluster %q does not list --name %q", *initial, *name)
		}
	}
	t := tuning{logLevel: *logLevel}
	log, err := t.logger(stderr)
	if err != nil {
		return err
	}
	ec := cluster.EmbedConfig{
		Dir: *dir, ClientURL: *clientURL, PeerURL: *peerURL, Log: log,
		Name: *name, InitialCluster: *initial,
	}
	if err := sec.load(); err != nil { // checks the files
		return err
	}
	if sec.tls != nil {
		ec.TLS = &sec.files // client and peer certificates required
	} else {
		log.Warn("etcd clients and peers are not authenticated: give --tls-ca, --tls-cert and --tls-key (docs/cluster.md, \"TLS\")")
	}
	e, err := cluster.StartEmbedded(ctx, ec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "eddy etcd %s: serving clients at %s\n", *name, strings.Join(e.Endpoints(), ","))
	<-ctx.Done()
	log.Info("stopping etcd member", "name", *name)
	return e.Close()
}
