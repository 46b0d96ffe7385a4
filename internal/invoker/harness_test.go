package invoker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/cluster"
	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/container/process"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/rpc"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/testenv"
	"github.com/eddy-faas/eddy/internal/whisk"
	"go.opentelemetry.io/otel/trace"
)

var (
	runtimeBin string          // eddy-runtime built once
	etcd       *cluster.Client // one embedded etcd for the package
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(func() int { return testMain(m) }))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "eddy-invoker-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	runtimeBin = filepath.Join(dir, "eddy-runtime")
	build := exec.Command("go", "build", "-o", runtimeBin, "../../cmd/eddy-runtime")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building eddy-runtime:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := cluster.StartEmbedded(ctx, cluster.EmbedConfig{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting etcd:", err)
		return 1
	}
	defer e.Close()
	etcd, err = cluster.Dial(ctx, e.Endpoints(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dialing etcd:", err)
		return 1
	}
	defer etcd.Close()
	return m.Run()
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// dockerBackend returns a Docker backend for invoker id, closed when the
// test ends, with image present unless image is "", or skips the test
// when Docker is unusable (fails it with EDDY_REQUIRE_DOCKER=1).
func dockerBackend(ctx context.Context, t *testing.T, id, image string) *docker.Backend {
	t.Helper()
	b, err := docker.New(ctx, docker.Config{InvokerID: id, Log: testLog(t)})
	if err == nil && image != "" {
		_, err = b.Client().ImageInspect(ctx, image)
	}
	if err != nil {
		if os.Getenv("EDDY_REQUIRE_DOCKER") == "1" {
			t.Fatalf("EDDY_REQUIRE_DOCKER=1 but Docker is unusable: %v", err)
		}
		hint := "run scripts/docker-up"
		if image != "" {
			hint += " and make runtimes"
		}
		t.Skipf("Docker is unusable (%v); %s, or set EDDY_REQUIRE_DOCKER=1 to make this a failure", err, hint)
	}
	t.Cleanup(func() {
		cctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		_ = b.Close(cctx)
	})
	return b
}

// stubScheduler serves rpc.Scheduler for the tests: it hands out the
// activations put into it and records every fetch.
type stubScheduler struct {
	mu       sync.Mutex
	queue    chan *whisk.ActivationMessage
	noQueue  bool  // answer FetchNoQueue
	rev      int64 // when > 0, fetches with an older rev get FetchMismatch
	fetches  []rpc.FetchRequest
	goodbyes []rpc.FetchRequest // fetches with Alive false
	park     time.Duration
	// handOutAnyway makes a parked fetch hand out an activation that
	// arrives even after the caller cancelled (as a scheduler that picked
	// it before it saw the cancellation does).
	handOutAnyway bool
	parked        atomic.Int32 // fetches parked right now
}

func newStub() *stubScheduler {
	return &stubScheduler{queue: make(chan *whisk.ActivationMessage, 100), park: 200 * time.Millisecond}
}

func (s *stubScheduler) Fetch(ctx context.Context, req *rpc.FetchRequest) (*rpc.FetchResponse, error) {
	s.mu.Lock()
	s.fetches = append(s.fetches, *req)
	noQueue, rev, anyway, park := s.noQueue, s.rev, s.handOutAnyway, s.park
	if !req.Alive {
		s.goodbyes = append(s.goodbyes, *req)
	}
	s.mu.Unlock()
	switch {
	case !req.Alive:
		return &rpc.FetchResponse{Status: rpc.FetchEmpty}, nil
	case noQueue:
		return &rpc.FetchResponse{Status: rpc.FetchNoQueue}, nil
	case rev > 0 && req.Rev < rev:
		return &rpc.FetchResponse{Status: rpc.FetchMismatch}, nil
	}
	t := time.NewTimer(park)
	defer t.Stop()
	s.parked.Add(1)
	defer s.parked.Add(-1)
	done := ctx.Done()
	if anyway {
		done = nil
	}
	select {
	case a := <-s.queue:
		if ctx.Err() != nil && !anyway {
			s.queue <- a
			return nil, ctx.Err()
		}
		return &rpc.FetchResponse{Status: rpc.FetchOK, Activation: a}, nil
	case <-t.C:
		return &rpc.FetchResponse{Status: rpc.FetchEmpty}, nil
	case <-done:
		return nil, ctx.Err()
	}
}

func (s *stubScheduler) CreateQueue(context.Context, *rpc.CreateQueueRequest) (*rpc.CreateQueueResponse, error) {
	return nil, whisk.Errorf(whisk.Invalid, "not in this stub")
}

func (s *stubScheduler) setNoQueue(v bool) {
	s.mu.Lock()
	s.noQueue = v
	s.mu.Unlock()
}

func (s *stubScheduler) fetchLog() (all, goodbyes []rpc.FetchRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rpc.FetchRequest(nil), s.fetches...), append([]rpc.FetchRequest(nil), s.goodbyes...)
}

// serve starts a gRPC server for s on a loopback port.
func serveStub(t *testing.T, s *stubScheduler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(rpc.ServerOptions()...)
	rpc.Register(srv, s)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// env is one invoker under test with real adapters around it.
type env struct {
	t       *testing.T
	ctx     context.Context
	id      string
	sid     string
	bus     *memory.Bus
	store   *sqlite.Store
	session *cluster.Session
	backend *process.Backend
	inv     *invoker.Invoker
	stub    *stubScheduler
	addr    string
	acks    bus.Consumer
	done    bus.Consumer
	stop    context.CancelFunc
	runErr  chan error
	etcd    *cluster.Client
}

var envSeq struct {
	sync.Mutex
	n int
}

// newEnv starts an invoker with cfg (ID and defaults filled in) on the
// package's etcd.
func newEnv(t *testing.T, cfg invoker.Config) *env {
	t.Helper()
	return newEnvOn(t, cfg, etcd)
}

// newEnvOn is newEnv on the etcd of client.
func newEnvOn(t *testing.T, cfg invoker.Config, client *cluster.Client) *env {
	t.Helper()
	return newEnvWith(t, cfg, client, envWrap{})
}

// envWrap puts test doubles around the invoker's real session and backend.
type envWrap struct {
	session func(invoker.Session) invoker.Session
	backend func(container.Backend) container.Backend
	tracer  trace.Tracer
	local   map[string]invoker.Fetcher // the invoker's Deps.Local
}

// newEnvWith is newEnvOn with the invoker's session and backend wrapped.
func newEnvWith(t *testing.T, cfg invoker.Config, client *cluster.Client, wrap envWrap) *env {
	t.Helper()
	envSeq.Lock()
	envSeq.n++
	n := envSeq.n
	envSeq.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, id: fmt.Sprintf("inv%d", n), sid: fmt.Sprintf("sched%d", n), etcd: client}
	log := testLog(t)

	e.bus = memory.New(log)
	t.Cleanup(func() { _ = e.bus.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "eddy.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	t.Cleanup(func() { _ = st.Close() })
	e.session, err = cluster.NewSession(ctx, client, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sessDone := make(chan struct{})
	go func() { defer close(sessDone); _ = e.session.Run(sctx) }()
	t.Cleanup(func() {
		scancel()
		<-sessDone
		cctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = e.session.Close(cctx)
	})
	// The work root lets other users through: as root, the backend runs
	// containers as uids of their own.
	workRoot := t.TempDir()
	for _, d := range []string{workRoot, filepath.Dir(workRoot)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	e.backend, err = process.New(process.Config{Command: []string{runtimeBin}, WorkRoot: workRoot, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = e.backend.Close(cctx)
	})

	e.stub = newStub()
	e.addr = serveStub(t, e.stub)

	for _, topic := range []string{whisk.CreationAckTopic(e.sid), whisk.CompletionTopic("c0")} {
		if err := e.bus.EnsureTopic(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	if e.acks, err = e.bus.Subscribe(ctx, whisk.CreationAckTopic(e.sid), "test"); err != nil {
		t.Fatal(err)
	}
	if e.done, err = e.bus.Subscribe(ctx, whisk.CompletionTopic("c0"), "test"); err != nil {
		t.Fatal(err)
	}

	cfg.ID = e.id
	if cfg.LogWait == 0 {
		cfg.LogWait = 2 * time.Second
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = time.Second
	}
	var sess invoker.Session = e.session
	if wrap.session != nil {
		sess = wrap.session(sess)
	}
	var backend container.Backend = e.backend
	if wrap.backend != nil {
		backend = wrap.backend(backend)
	}
	e.inv, err = invoker.New(cfg, invoker.Deps{
		Log: log, Bus: e.bus, Session: sess, Leaders: client, Backend: backend,
		Actions: e.store, Runtimes: manifest.Default(), Tracer: wrap.tracer, Local: wrap.local,
		Credentials: insecure.NewCredentials(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	e.stop = rcancel
	e.runErr = make(chan error, 1)
	go func() { e.runErr <- e.inv.Run(rctx) }()
	t.Cleanup(func() { e.shutdown() })
	return e
}

// shutdown stops the invoker and waits for Run to return.
func (e *env) shutdown() error {
	e.t.Helper()
	e.stop()
	select {
	case err, ok := <-e.runErr:
		if ok {
			close(e.runErr)
		}
		return err
	case <-time.After(30 * time.Second):
		e.t.Fatal("Run did not return within 30 s of its context's end")
		return nil
	}
}

// putAction stores an action and returns it with its revision.
func (e *env) putAction(name, kind, code string, limits whisk.Limits) whisk.Action {
	e.t.Helper()
	if limits.Timeout == 0 {
		limits.Timeout = 60000
	}
	if limits.Memory == 0 {
		limits.Memory = 256
	}
	if limits.Logs == 0 {
		limits.Logs = 10
	}
	if limits.Concurrency == 0 {
		limits.Concurrency = 1
	}
	a, err := e.store.PutAction(e.ctx, whisk.Action{
		Namespace: "guest", Name: name, Version: "0.0.1",
		Exec: whisk.Exec{Kind: kind, Code: code}, Limits: limits,
	}, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// create asks the invoker for a container and returns the ack.
func (e *env) create(a whisk.Action) whisk.CreationAck {
	e.t.Helper()
	e.requestCreation(a, fmt.Sprintf("cr-%d", time.Now().UnixNano()))
	return e.nextAck()
}

func (e *env) requestCreation(a whisk.Action, creationID string) {
	e.t.Helper()
	b, _ := json.Marshal(whisk.ContainerCreation{
		CreationID: creationID, Action: a.Meta(), SchedulerID: e.sid, SchedulerAddr: e.addr,
		Requested: time.Now().UnixMilli(),
	})
	if err := e.bus.EnsureTopic(e.ctx, whisk.InvokerTopic(e.id)); err != nil {
		e.t.Fatal(err)
	}
	if err := e.bus.Publish(e.ctx, whisk.InvokerTopic(e.id), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) nextAck() whisk.CreationAck {
	e.t.Helper()
	var ack whisk.CreationAck
	e.next(e.acks, &ack, 30*time.Second)
	return ack
}

// invoke queues an activation at the stub and waits for its completion.
func (e *env) invoke(a whisk.Action, params string) whisk.Activation {
	e.t.Helper()
	e.enqueue(a, params)
	return e.completion(30 * time.Second)
}

func (e *env) enqueue(a whisk.Action, params string) *whisk.ActivationMessage {
	if params == "" {
		params = "{}"
	}
	m := &whisk.ActivationMessage{
		ActivationID: whisk.NewActivationID(), TransactionID: whisk.NewTransactionID(),
		Action: a.Meta(), Subject: "guest", Params: json.RawMessage(params),
		Blocking: true, ControllerID: "c0", Published: time.Now().UnixMilli(),
	}
	e.stub.queue <- m
	return m
}

func (e *env) completion(wait time.Duration) whisk.Activation {
	e.t.Helper()
	var c whisk.Completion
	e.next(e.done, &c, wait)
	if c.InvokerID != e.id {
		e.t.Errorf("completion from %q, want %q", c.InvokerID, e.id)
	}
	return c.Activation
}

// next polls one record from c and decodes it into v.
func (e *env) next(c bus.Consumer, v any, wait time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, wait)
	defer cancel()
	recs, err := c.Poll(ctx, 1)
	if err != nil {
		e.t.Fatalf("waiting for a message: %v", err)
	}
	if err := c.Commit(ctx, recs[0].Offset); err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(recs[0].Value, v); err != nil {
		e.t.Fatal(err)
	}
}

// record waits for the stored record of an activation.
func (e *env) record(id whisk.ActivationID) whisk.Activation {
	e.t.Helper()
	var rec whisk.Activation
	waitFor(e.t, 10*time.Second, "record "+string(id)+" stored", func() bool {
		r, err := e.store.GetActivation(e.ctx, "guest", id)
		rec = r
		return err == nil
	})
	return rec
}

func (e *env) containers(a whisk.Action) int {
	e.t.Helper()
	n, err := e.etcd.CountContainers(e.ctx, a.FQN(), a.Rev)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) invokerInfo() (whisk.InvokerInfo, bool) {
	e.t.Helper()
	all, err := e.etcd.Invokers(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, i := range all {
		if i.ID == e.id {
			return i, true
		}
	}
	return whisk.InvokerInfo{}, false
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, ok)
}

func errorOf(a whisk.Activation) string {
	var r struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(a.Response.Result, &r)
	return r.Error
}

func annotation(a whisk.Activation, key string) (string, bool) {
	v, ok := a.Annotations.Get(key)
	return string(v), ok
}
