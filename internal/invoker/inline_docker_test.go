package invoker_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/invoker"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// streamWatch is a backend whose containers' log streams are watched: it
// keeps every line they carry, so a test can tell what went through the
// backend's stream (on Docker, the daemon's log driver).
type streamWatch struct {
	container.Backend
	mu    sync.Mutex
	lines []container.LogLine
}

func (s *streamWatch) Create(ctx context.Context, spec container.Spec) (container.Container, error) {
	ctr, err := s.Backend.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	out := make(chan container.LogLine, 64)
	go func() {
		defer close(out)
		for l := range ctr.Logs() {
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
			out <- l
		}
	}()
	return watchedContainer{Container: ctr, logs: out}, nil
}

func (s *streamWatch) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

type watchedContainer struct {
	container.Container
	logs chan container.LogLine
}

func (w watchedContainer) Logs() <-chan container.LogLine { return w.logs }

// dockerPython returns an env on the Docker backend with Eddy's python
// image, its containers' streams watched.
func dockerPython(t *testing.T) (*env, *streamWatch) {
	t.Helper()
	rt, _ := manifest.Default().Lookup("python:3.11")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := dockerBackend(ctx, t, fmt.Sprintf("inline-test-%d-%s", os.Getpid(), t.Name()), rt.Image)
	w := &streamWatch{Backend: b}
	return newEnvWith(t, invoker.Config{}, etcd, envWrap{backend: func(container.Backend) container.Backend { return w }}), w
}

// Eddy's runtime on Docker hands each activation's lines over in its /run
// answer: every activation has its own lines (init's output the first
// one's), and the container's log stream carries none of them, nor
// sentinels.
func TestInlineLogsDocker(t *testing.T) {
	t.Parallel()
	e, w := dockerPython(t)
	a := e.putAction("inl", "python:3.11", "import sys\nprint('loaded')\ndef main(args):\n    print('out', args.get('n'))\n    print('err', args.get('n'), file=sys.stderr)\n    return {'n': args.get('n')}\n", whisk.Limits{})
	if ack := e.create(a); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	for i := 1; i <= 5; i++ {
		rec := e.invoke(a, fmt.Sprintf(`{"n":%d}`, i))
		if string(rec.Response.Result) != fmt.Sprintf(`{"n": %d}`, i) && string(rec.Response.Result) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("run %d: %s", i, rec.Response.Result)
		}
		want := []string{fmt.Sprintf("stdout: out %d", i), fmt.Sprintf("stderr: err %d", i)}
		if i == 1 {
			want = append([]string{"stdout: loaded"}, want...)
		}
		wantLogs(t, fmt.Sprintf("run %d", i), rec.Logs, want...)
	}
	if n := w.count(); n != 0 {
		t.Errorf("the container's log stream carried %d lines: %v", n, w.lines)
	}
}

// A timed-out and a crashed activation keep the lines they wrote.
func TestInlineLogsDockerTimeoutAndCrash(t *testing.T) {
	t.Parallel()
	e, _ := dockerPython(t)
	slow := e.putAction("inlslow", "python:3.11", "import time\ndef main(args):\n    print('before the sleep', flush=True)\n    time.sleep(60)\n    return {}\n", whisk.Limits{Timeout: 3000})
	if ack := e.create(slow); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec := e.invoke(slow, "")
	if errorOf(rec) != whisk.MsgTimeLimit(3000, false) {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if len(rec.Logs) < 1 || !strings.HasSuffix(rec.Logs[0], "stdout: before the sleep") {
		t.Errorf("timed-out logs %q", rec.Logs)
	}
	crash := e.putAction("inlcrash", "python:3.11", "import os\ndef main(args):\n    print('about to die', flush=True)\n    os._exit(3)\n", whisk.Limits{})
	if ack := e.create(crash); ack.Error != "" {
		t.Fatalf("ack %+v", ack)
	}
	rec = e.invoke(crash, "")
	if errorOf(rec) != whisk.MsgRunExited {
		t.Fatalf("response %+v %s", rec.Response, rec.Response.Result)
	}
	if !strings.Contains(strings.Join(rec.Logs, "\n"), "stdout: about to die") {
		t.Errorf("crash logs %q", rec.Logs)
	}
}
