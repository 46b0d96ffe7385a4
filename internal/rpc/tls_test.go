package rpc

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/pki"
)

// serveWith serves a fakeScheduler with server credentials and returns a
// client with client credentials.
func serveWith(tb testing.TB, server, client credentials.TransportCredentials) *Client {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(append(ServerOptions(), grpc.Creds(server))...)
	Register(srv, fakeScheduler{})
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), append(DialOptions(), grpc.WithTransportCredentials(client))...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return NewClient(cc)
}

// BenchmarkFetch is one Fetch round trip over loopback gRPC, in plaintext
// and with mutual TLS (the connection is set up before the timer: the
// cost measured is the one on the warm path, per call).
func BenchmarkFetch(b *testing.B) {
	dir := b.TempDir()
	if _, err := pki.Generate(dir, []string{"scheduler", "invoker"}, nil); err != nil {
		b.Fatal(err)
	}
	srv, err := pki.In(dir, "scheduler").Config()
	if err != nil {
		b.Fatal(err)
	}
	cli, err := pki.In(dir, "invoker").Config()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name           string
		server, client credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials(), insecure.NewCredentials()},
		{"mTLS", credentials.NewTLS(srv), credentials.NewTLS(cli)},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := serveWith(b, c.server, c.client)
			req := &FetchRequest{Namespace: "guest", Action: "a", ContainerID: "c"}
			ctx := context.Background()
			if _, err := client.Fetch(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.Fetch(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
