package cluster_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to upstream until it is cut: then
// every byte is dropped both ways and connections stay open (a network
// partition, not a refused port: the client sees silence, as behind a
// broken link), and new connections are accepted and left silent. heal
// closes the silent connections and forwards again.
type cutProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn // both ends of every connection, to close at heal
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		if cut {
			continue // silent until heal closes it
		}
		u, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// pipe copies src to dst while the proxy is not cut; once cut it reads and
// drops.
func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if !cut {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var old []net.Conn
	if !cut {
		old, p.conns = p.conns, nil
	}
	p.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.setCut(false)
	p.wg.Wait()
}

// TestNetworkCutLeader cuts the leader scheduler off etcd (its process
// lives on: its port answers, it still consumes Kafka and its containers
// still fetch from it) for twice the lease TTL under the mixed load of
// TestExactlyOnce, then heals the link. Its lease expires, a follower
// takes over, and the cut-off leader hands out nothing more (every
// hand-out record fails); after the heal it rejoins as a follower or
// without the queue. No accepted activation is lost, none runs twice.
func TestNetworkCutLeader(t *testing.T) {
	proxies := map[string]*cutProxy{}
	c := startClusterWith(t, func(base int) []string {
		var env []string
		for i := 1; i <= 3; i++ {
			name := fmt.Sprintf("scheduler%d", i)
			// Each scheduler reaches etcd through its own proxy (to one
			// member: the cut takes all of its etcd traffic).
			p := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", base+i))
			proxies[name] = p
			env = append(env, fmt.Sprintf("EDDY_CLUSTER_ARGS_%s=--etcd https://%s", name, p.addr()))
		}
		return env
	}, "EDDY_LEASE_TTL="+onceTTL.String(), "EDDY_INVOCATIONS_PER_MINUTE=100000", "EDDY_QUEUE_RETENTION=120s")
	failed, gap := onceScenario(t, c, "cut", "1", func(c *testCluster) time.Time {
		leader := leaderOfAction(c, "cut")
		at := time.Now()
		proxies[leader].setCut(true)
		t.Logf("cut %s (leader) off etcd at %s for %v", leader, at.Format("15:04:05.000"), 2*onceTTL)
		time.Sleep(2 * onceTTL)
		proxies[leader].setCut(false)
		if l := leaderOfAction(c, "cut"); l == leader {
			t.Errorf("%s still leads guest/cut after %v cut off etcd", leader, 2*onceTTL)
		} else {
			t.Logf("healed at %s; %s leads now", time.Now().Format("15:04:05.000"), l)
		}
		return at
	})
	t.Logf("FIGURES network cut of the leader: %d error records, failover gap %d ms", failed, gap)
}
