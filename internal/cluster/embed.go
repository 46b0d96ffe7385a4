package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"

	"github.com/eddy-faas/eddy/internal/pki"
)

// readyTimeout bounds how long StartEmbedded waits for the server to serve
// clients (for a cluster member: until the cluster has a leader).
const readyTimeout = 60 * time.Second

// EmbedConfig configures an embedded etcd server.
type EmbedConfig struct {
	// Dir holds the data; a server restarted on the same Dir has the same
	// keys. Required.
	Dir string
	// ClientURL and PeerURL are the URLs to serve clients and peers on,
	// e.g. "http://127.0.0.1:2379". Empty: a free 127.0.0.1 port.
	ClientURL string
	PeerURL   string
	// Log receives etcd's warnings and errors (nil: discarded).
	Log *slog.Logger

	// Name and InitialCluster are for members of a multi-member cluster
	// (see package clustertest): the member's name and the
	// "name=peerURL,..." list of every member. Empty: a one-member
	// cluster named "eddy".
	Name           string
	InitialCluster string

	// TLS, when set, secures the client and the peer URLs, which must then
	// be https (empty ones get an https URL): the server presents TLS.Cert
	// and accepts only clients and peers presenting a certificate that
	// TLS.CA issued (docs/cluster.md, "TLS"). Nil: plaintext.
	TLS *pki.Files
}

// Embedded is an etcd server running inside this process.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	quiet     *atomic.Bool // set on Close: shutdown noise is logged at debug
	closeOnce sync.Once
}

// StartEmbedded starts an etcd server with its data in cfg.Dir and returns
// once it serves clients. ctx bounds the start only; the server runs until
// Close.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	for attempt := 1; ; attempt++ {
		e, err := startEmbedded(ctx, cfg)
		// A port picked free (no URL given) can be taken by anyone before
		// etcd binds it: pick again.
		if !PortTaken(err) || cfg.ClientURL != "" && cfg.PeerURL != "" || attempt == bindAttempts {
			return e, err
		}
		orDiscard(cfg.Log).Warn("embedded etcd: a port picked free was taken before etcd bound it; picking again", "attempt", attempt, "err", err)
	}
}

// PortTaken reports whether err is a listener failing because its port is
// in use.
func PortTaken(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
}

// bindAttempts is how many times StartEmbedded picks free ports.
const bindAttempts = 5

func startEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cluster: embedded etcd: Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd: %w", err)
	}
	scheme := "http"
	if cfg.TLS != nil {
		if err := cfg.TLS.Check(); err != nil {
			return nil, fmt.Errorf("cluster: embedded etcd: %w", err)
		}
		scheme = "https"
	}
	clientURL, err := urlOrFree(cfg.ClientURL, scheme)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd client URL: %w", err)
	}
	peerURL, err := urlOrFree(cfg.PeerURL, scheme)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd peer URL: %w", err)
	}
	if clientURL.Scheme != scheme || peerURL.Scheme != scheme {
		return nil, fmt.Errorf("cluster: embedded etcd: with TLS %v, the client and peer URLs must be %s:// URLs (got %s, %s)",
			cfg.TLS != nil, scheme, clientURL, peerURL)
	}
	log := orDiscard(cfg.Log)

	ec := embed.NewConfig()
	ec.Name = "eddy"
	if cfg.Name != "" {
		ec.Name = cfg.Name
	}
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
		ec.InitialClusterToken = "eddy-" + cfg.InitialCluster
	}
	if cfg.TLS != nil {
		info := transport.TLSInfo{
			CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, TrustedCAFile: cfg.TLS.CA,
			ClientCertFile: cfg.TLS.Cert, ClientKeyFile: cfg.TLS.Key,
			ClientCertAuth: true,
		}
		ec.ClientTLSInfo = info
		ec.PeerTLSInfo = info
	}
	ec.ClusterState = embed.ClusterStateFlagNew // ignored when Dir already holds a member
	// Keep 10 minutes of history (as OpenWhisk's deployment does); watches
	// that fall further behind resynchronise (see Client.WatchLeaders).
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "10m"
	ec.Logger = "zap"
	ec.LogLevel = "warn"
	ec.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration // 0 would log every request
	quiet := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(log.With("component", "etcd", "member", ec.Name), zapcore.WarnLevel, quiet))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("cluster: start embedded etcd in %s: %w", cfg.Dir, err)
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		quiet.Store(true)
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd in %s failed to start: %w", cfg.Dir, err)
	case <-e.Server.StopNotify():
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd in %s stopped while starting", cfg.Dir)
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd in %s not ready after %s", cfg.Dir, readyTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("cluster: start embedded etcd in %s: %w", cfg.Dir, ctx.Err())
	}
	log.Debug("embedded etcd ready", "dir", cfg.Dir, "client", clientURL.String(), "peer", peerURL.String())
	return &Embedded{etcd: e, endpoints: []string{clientURL.String()}, quiet: quiet}, nil
}

// Endpoints returns the client URLs to Dial.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Close stops the server and waits until it has stopped. Safe to call
// twice. Close clients first: etcd gives streams still open (watches) up to
// its request timeout (7 s) before cutting them.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.quiet.Store(true)
		e.etcd.Close()
	})
	return nil
}

// urlOrFree parses s, or picks a free loopback port for scheme when s is
// empty.
func urlOrFree(s, scheme string) (*url.URL, error) {
	if s == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s)://host:port URL", s)
	}
	return u, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cluster: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
