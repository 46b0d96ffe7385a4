package invoker

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/eddy-faas/eddy/internal/rpc"
)

// Fetcher is what a proxy needs of a scheduler: an *rpc.Client over gRPC,
// or an *rpc.Local for a scheduler in the same process.
type Fetcher interface {
	Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error)
}

// connPool holds one gRPC connection per scheduler address, shared by the
// proxies fetching from that scheduler, and closes it when the last one lets
// go (or on closeAll). Addresses of schedulers in this process (local) are
// called directly.
type connPool struct {
	local map[string]Fetcher
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]*pooledConn
}

type pooledConn struct {
	cc     *grpc.ClientConn
	client *rpc.Client
	refs   int
}

func newConnPool(local map[string]Fetcher, creds credentials.TransportCredentials) *connPool {
	return &connPool{local: local, creds: creds, conns: map[string]*pooledConn{}}
}

// acquire returns the client for addr, connecting on first use. Every
// successful acquire must be matched by a release of the same address.
func (p *connPool) acquire(addr string) (Fetcher, error) {
	if f, ok := p.local[addr]; ok {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		c.refs++
		return c.client, nil
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(p.creds)}, rpc.DialOptions()...)
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = &pooledConn{cc: cc, client: rpc.NewClient(cc), refs: 1}
	return p.conns[addr].client, nil
}

// release drops one reference to addr's connection.
func (p *connPool) release(addr string) {
	if _, ok := p.local[addr]; ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[addr]
	if !ok {
		return
	}
	c.refs--
	if c.refs <= 0 {
		_ = c.cc.Close()
		delete(p.conns, addr)
	}
}

// closeAll closes every connection.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		_ = c.cc.Close()
		delete(p.conns, addr)
	}
}

// size is the number of open connections (for tests).
func (p *connPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
