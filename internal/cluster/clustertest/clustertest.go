// Package clustertest starts real multi-member etcd clusters, embedded in
// the test process on loopback ports, for tests of the parts of Eddy that
// share state through etcd.
package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/cluster"
)

// Cluster is an n-member etcd cluster running in the test process.
type Cluster struct {
	t       testing.TB
	members []*Member
	initial string
}

// Member is one etcd member of a Cluster.
type Member struct {
	Name      string
	Dir       string
	ClientURL string
	PeerURL   string

	c  *Cluster
	mu sync.Mutex
	e  *cluster.Embedded // nil while stopped
}

// StartTestCluster starts an n-member etcd cluster with its data in
// t.TempDir() and stops it when the test ends. It fails the test if the
// cluster does not come up.
func StartTestCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("clustertest: %d members", n)
	}
	base := t.TempDir()
	for attempt := 1; ; attempt++ {
		c, err := start(t, n, filepath.Join(base, fmt.Sprint(attempt)))
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		c.Close()
		// A port picked free can be taken by another test process before
		// its member binds it: the whole cluster picks again (the members
		// know each other's URLs, so one member cannot move alone).
		if !cluster.PortTaken(err) || attempt == startAttempts {
			t.Fatalf("clustertest: %v", err)
		}
		t.Logf("clustertest: %v; picking other ports", err)
	}
}

// startAttempts is how many times StartTestCluster picks free ports.
const startAttempts = 5

// start starts an n-member cluster with its data under base; on an error
// the members that started are running (Close stops them).
func start(t testing.TB, n int, base string) (*Cluster, error) {
	c := &Cluster{t: t}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       filepath.Join(base, fmt.Sprintf("m%d", i)),
			ClientURL: "http://" + freeAddr(t),
			PeerURL:   "http://" + freeAddr(t),
			c:         c,
		}
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")

	// Members of a new cluster become ready together, once they have a
	// leader: start them all at once.
	errs := make(chan error, n)
	for _, m := range c.members {
		go func() { errs <- m.start() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return c, first
}

// Endpoints returns the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.ClientURL
	}
	return eps
}

// Members returns the members, in the order of the initial cluster.
func (c *Cluster) Members() []*Member { return c.members }

// Close stops every member. It is called when the test ends.
func (c *Cluster) Close() {
	for _, m := range c.members {
		m.Stop()
	}
}

// Stop stops the member (its data stays in Dir). Stopping a stopped member
// does nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		_ = e.Close()
	}
}

// Restart starts a stopped member again on its data and URLs; it returns
// once the member serves clients, failing the test otherwise.
func (m *Member) Restart() {
	m.c.t.Helper()
	if err := m.start(); err != nil {
		m.c.t.Fatalf("clustertest: %v", err)
	}
}

func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.e != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := cluster.StartEmbedded(ctx, cluster.EmbedConfig{
		Dir:            m.Dir,
		ClientURL:      m.ClientURL,
		PeerURL:        m.PeerURL,
		Log:            slog.New(slog.DiscardHandler),
		Name:           m.Name,
		InitialCluster: m.c.initial,
	})
	if err != nil {
		return fmt.Errorf("member %s: %w", m.Name, err)
	}
	m.e = e
	return nil
}

// freeAddr returns a 127.0.0.1:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clustertest: pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
