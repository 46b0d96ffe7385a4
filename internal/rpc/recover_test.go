package rpc

import (
	"context"
	"github.com/eddy-faas/eddy/internal/testenv"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// panicky panics in Fetch and answers CreateQueue.
type panicky struct{ fakeScheduler }

func (panicky) Fetch(context.Context, *FetchRequest) (*FetchResponse, error) {
	panic("fetch exploded")
}

// TestRecoverTurnsAPanicIntoInternal: with Recover in the server's chain,
// a handler's panic is an Internal status (kind Internal at the client)
// and one log line naming the method; the server goes on serving. The
// handlers run the server's interceptors: without them the panic would
// end the process.
func TestRecoverTurnsAPanicIntoInternal(t *testing.T) {
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var intercepted []string
	var mu sync.Mutex
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		intercepted = append(intercepted, info.FullMethod)
		mu.Unlock()
		return h(ctx, req)
	}
	srv := grpc.NewServer(append(ServerOptions(), grpc.ChainUnaryInterceptor(Recover(log), record))...)
	Register(srv, panicky{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), append(DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := NewClient(cc)

	_, err = c.Fetch(context.Background(), &FetchRequest{Namespace: "guest", Action: "a", Alive: true})
	if whisk.KindOf(err) != whisk.Internal || !strings.Contains(err.Error(), whisk.MsgInternal) {
		t.Fatalf("a panicking Fetch: %v (kind %v), want kind Internal", err, whisk.KindOf(err))
	}
	if got := logs.String(); !strings.Contains(got, "handler panicked") || !strings.Contains(got, "/Fetch") ||
		!strings.Contains(got, "fetch exploded") {
		t.Fatalf("log: %q", got)
	}
	resp, err := c.CreateQueue(context.Background(), &CreateQueueRequest{Action: whisk.ActionMeta{Namespace: "guest", Name: "a"}})
	if err != nil || resp.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue after the panic: %+v, %v", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(intercepted) != 2 || !strings.HasSuffix(intercepted[0], "/Fetch") || !strings.HasSuffix(intercepted[1], "/CreateQueue") {
		t.Fatalf("the interceptor saw %v, want Fetch then CreateQueue", intercepted)
	}
}
