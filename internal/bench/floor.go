package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/container/process"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// floor runs the benchmark's actions WITHOUT Eddy: it creates runtimes with
// the same container.Backend Eddy's invoker uses (the process backend
// running `eddy runtime` from the same binary, or the Docker backend with
// the same images, network, memory limit and CPU shares), and speaks the
// runtime protocol to them with the same container.Client. No API, no bus,
// no queue, no etcd: what is left is the runtime's own cost.
type floor struct {
	backend  container.Backend
	rt       manifest.Runtime
	memoryMB int64
	apiHost  string
	workDir  string
	seq      int
	mu       sync.Mutex
}

// floorInvoker names the owner of the floor's Docker containers: not
// standalone's invoker, so neither removes the other's containers.
const floorInvoker = "eddy-bench"

func newFloor(ctx context.Context, cfg config, log *slog.Logger) (*floor, error) {
	rt, ok := manifest.Default().Lookup(cfg.kind)
	if !ok {
		return nil, fmt.Errorf("kind %s is not in the built-in runtime manifest", cfg.kind)
	}
	f := &floor{rt: rt, memoryMB: cfg.memoryMB, apiHost: cfg.apiHost}
	switch cfg.backend {
	case "process":
		dir, err := os.MkdirTemp("", "eddy-bench-floor-")
		if err != nil {
			return nil, err
		}
		f.workDir = dir
		// Other users pass through: as root, the backend runs containers
		// as uids of their own.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, err
		}
		b, err := process.New(process.Config{Command: []string{cfg.eddyPath, "runtime"}, WorkRoot: dir, Log: log})
		if err != nil {
			return nil, err
		}
		f.backend = b
	case "docker":
		b, err := docker.New(ctx, docker.Config{InvokerID: floorInvoker, Log: log})
		if err != nil {
			return nil, fmt.Errorf("docker backend for the floor: %w", err)
		}
		f.backend = b
	}
	return f, nil
}

func (f *floor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = f.backend.Close(ctx)
	if f.workDir != "" {
		os.RemoveAll(f.workDir)
	}
}

// direct is one runtime created by the floor, initialised with an action.
type direct struct {
	ctr    container.Container
	cl     *container.Client
	name   string
	seq    int
	drainD chan struct{}
}

// coldParts is one timed cold start without Eddy.
type coldParts struct {
	Create, Init, Run, Total time.Duration
}

// start creates a runtime, initialises it with code and runs it once,
// timing each step: the floor of a cold start.
func (f *floor) start(ctx context.Context, action, code string) (*direct, coldParts, error) {
	return f.startImage(ctx, action, code, f.rt.Kind, f.rt.Image, f.rt.Launcher)
}

// startImage is start for a runtime of kind run from image with launcher
// ("" for a blackbox image).
func (f *floor) startImage(ctx context.Context, action, code, kind, image, launcher string) (*direct, coldParts, error) {
	var p coldParts
	f.mu.Lock()
	f.seq++
	seq := f.seq
	f.mu.Unlock()
	spec := container.Spec{
		Name:     fmt.Sprintf("bench_%s_%d", action, seq),
		Kind:     kind,
		Image:    image,
		Launcher: launcher,
		MemoryMB: f.memoryMB,
		Env:      map[string]string{"__OW_API_HOST": f.apiHost},
		Labels:   map[string]string{"eddy.invoker": floorInvoker, "eddy.namespace": "bench", "eddy.action": action},
	}
	// Eddy decides exec.binary when the action is created, not at a cold
	// start; on a native binary (2.5 MB of base64) the regexp takes
	// 0.3-1 s on a loaded 2-core machine, so it is not timed here either.
	binary := whisk.LooksBinary(code)
	t0 := time.Now()
	ctr, err := f.backend.Create(ctx, spec)
	if err != nil {
		return nil, p, fmt.Errorf("floor: creating a %s runtime: %w", kind, err)
	}
	t1 := time.Now()
	d := &direct{ctr: ctr, cl: container.NewClient(ctr.Addr()), name: action, seq: seq, drainD: make(chan struct{})}
	go func() { // the logs must be read, or the runtime may block
		defer close(d.drainD)
		for range ctr.Logs() {
		}
	}()
	deadline := time.Now().Add(time.Minute)
	// Logs: as the invoker asks Eddy's runtime (inline logs; a blackbox
	// image ignores it), so that the floor's runtime works as Eddy's does.
	resp, err := d.cl.Init(ctx, container.InitRequest{
		Name: action, Main: "main", Code: code, Binary: binary,
		Logs: container.InlineLogs, LogLimit: 10 << 20,
		Env: map[string]string{
			"__OW_NAMESPACE": "guest", "__OW_ACTION_NAME": "/guest/" + action, "__OW_ACTION_VERSION": "0.0.1",
			"__OW_ACTIVATION_ID": activationID(seq, 0), "__OW_TRANSACTION_ID": "bench",
			"__OW_DEADLINE": strconv.FormatInt(deadline.UnixMilli(), 10),
		},
	})
	if err == nil && resp.Status != 200 {
		err = fmt.Errorf("status %d: %s", resp.Status, resp.Body)
	}
	if err != nil {
		d.remove()
		return nil, p, fmt.Errorf("floor: /init: %w", err)
	}
	t2 := time.Now()
	if err := d.run(ctx, 1); err != nil {
		d.remove()
		return nil, p, err
	}
	t3 := time.Now()
	p = coldParts{Create: t1.Sub(t0), Init: t2.Sub(t1), Run: t3.Sub(t2), Total: t3.Sub(t0)}
	return d, p, nil
}

// run POSTs one /run, as the invoker builds it, and checks the answer.
func (d *direct) run(ctx context.Context, n int) error {
	resp, err := d.cl.Run(ctx, container.RunRequest{
		Value:         json.RawMessage("{}"),
		Namespace:     "guest",
		ActionName:    "/guest/" + d.name,
		ActionVersion: "0.0.1",
		ActivationID:  activationID(d.seq, n),
		TransactionID: "bench",
		Deadline:      strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10),
	})
	if err == nil && resp.Status != 200 {
		err = fmt.Errorf("status %d: %s", resp.Status, resp.Body)
	}
	if err != nil {
		return fmt.Errorf("floor: /run: %w", err)
	}
	return nil
}

func (d *direct) remove() {
	d.cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = d.ctr.Remove(ctx)
}

// activationID makes a 32-hex id from two counters.
func activationID(a, b int) string {
	return fmt.Sprintf("%016x%016x", a, b)
}

// floorConn is the throughput floor's way to one runtime: a load-generator
// connection (h1Conn) and the /run request the invoker would send, built
// once, with only the activation id rewritten per call.
type floorConn struct {
	d    *direct
	conn *h1Conn
	id   []byte // which runtime served a call
	req  []byte
	at   int // offset of the activation id's call counter (16 hex digits) in req
	n    uint64
}

func newFloorConn(ctx context.Context, d *direct) *floorConn {
	return &floorConn{d: d, conn: newH1Conn(ctx, d.ctr.Addr(), nil), id: []byte(strconv.Itoa(d.seq))}
}

// prepare builds the request, with this deadline.
func (f *floorConn) prepare(deadline time.Time) {
	id := activationID(f.d.seq, 0)
	body, _ := json.Marshal(container.RunRequest{ // strings and a RawMessage: cannot fail
		Value:         json.RawMessage("{}"),
		Namespace:     "guest",
		ActionName:    "/guest/" + f.d.name,
		ActionVersion: "0.0.1",
		ActivationID:  id,
		TransactionID: "bench",
		Deadline:      strconv.FormatInt(deadline.UnixMilli(), 10),
	})
	f.req = buildRequest(f.conn.addr, "/run", []string{"User-Agent: eddy-bench"}, body)
	i := bytes.Index(f.req, []byte(`"activation_id":"`+id))
	if i < 0 {
		panic("bench: the floor's /run body has no activation_id: container.RunRequest's JSON changed")
	}
	f.at = i + len(`"activation_id":"`) + 16
}

// run POSTs one /run and checks the answer; it returns which runtime ran it.
func (f *floorConn) run() ([]byte, error) {
	f.n++
	const hex = "0123456789abcdef"
	for i, n := f.at+15, f.n; i >= f.at; i, n = i-1, n>>4 {
		f.req[i] = hex[n&15]
	}
	status, body, err := f.conn.do(f.req)
	if err := checkRanBy("floor: /run", status, body, err); err != nil {
		return nil, err
	}
	return f.id, nil
}
