package cluster

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Not parallel: it counts goroutines to check that Close leaves nothing
// running.
func TestEmbeddedPersistsAcrossRestart(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	ctx := ctxT(t)

	e1 := startEtcdAt(t, EmbedConfig{Dir: dir})
	c1, err := Dial(ctx, e1.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.etcd.Put(ctx, root+"test/persist", "kept"); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e1.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}

	// Same data dir, fresh ports.
	e2 := startEtcdAt(t, EmbedConfig{Dir: dir})
	c2, err := Dial(ctx, e2.Endpoints(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c2.etcd.Get(ctx, root+"test/persist")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("after restart: %v, want the key written before", resp.Kvs)
	}
	c2.Close()
	e2.Close()

	// Nothing of the servers and clients is left running (a little slack
	// for runtime and testing goroutines).
	eventually(t, 10*time.Second, "goroutines left running after Close", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

func TestDialUnreachableFailsFast(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	c, err := Dial(context.Background(), []string{ep}, testLog())
	took := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	if took > 6*time.Second {
		t.Errorf("Dial took %s, want ≤ 5 s", took)
	}
	if !strings.Contains(err.Error(), ep) {
		t.Errorf("error %q does not name the endpoint %s", err, ep)
	}
}

func TestStartEmbeddedNeedsDir(t *testing.T) {
	t.Parallel()
	if _, err := StartEmbedded(context.Background(), EmbedConfig{}); err == nil {
		t.Fatal("StartEmbedded without Dir succeeded")
	}
}
