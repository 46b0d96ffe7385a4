package runtime

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// benchNoop is a native no-op action for BenchmarkRunNative: the loop of
// the bench's native no-op (internal/bench/native.go), raw reads and writes.
const benchNoop = `package main

import (
	"runtime/debug"
	"syscall"
	"unsafe"
)

func rawIO(nr uintptr, fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

func main() {
	debug.SetGCPercent(-1)
	answer := []byte("{\"ok\":true}\n")
	buf := make([]byte, 64<<10)
	for {
		n, e := rawIO(syscall.SYS_READ, 0, buf)
		if e != 0 || n <= 0 {
			return
		}
		for _, b := range buf[:n] {
			if b == '\n' {
				if _, e := rawIO(syscall.SYS_WRITE, 3, answer); e != 0 {
					return
				}
			}
		}
	}
}
`

// BenchmarkRunNative drives warm runtime servers, each started as Main
// starts it (run, with pipes for stdout and stderr read as a backend reads
// them) and initialised with a native no-op, with /run calls from
// GOMAXPROCS×-cpu goroutines over container.Client. It reports calls/s and
// the CPU of the action processes per call; with -cpuprofile the profile
// holds the servers (and the client: look under internal/runtime). For
// example:
//
//	go test -run '^$' -bench RunNative -benchtime 5s -cpu 16 -cpuprofile cpu.out ./internal/runtime/
func BenchmarkRunNative(b *testing.B) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("go not on PATH: the no-op action is built with it")
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(benchNoop), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module noop\n\ngo 1.22\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", "noop", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the no-op: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(filepath.Join(dir, "noop"))
	if err != nil {
		b.Fatal(err)
	}
	code := base64.StdEncoding.EncodeToString(exe)

	const servers = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := make(chan *container.Client, servers)
	for i := range servers {
		cl, done := startBenchServer(b, ctx, code, i)
		defer func() { cancel(); <-done }()
		defer cl.Close()
		pool <- cl
	}
	before := childrenCPU(b)
	var seq atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cl := <-pool
			resp, err := cl.Run(ctx, container.RunRequest{
				Value: json.RawMessage("{}"), Namespace: "guest", ActionName: "/guest/noop",
				ActivationID: fmt.Sprintf("%032x", seq.Add(1)), Deadline: "9999999999999",
			})
			pool <- cl
			if err != nil || resp.Status != 200 {
				b.Errorf("run: %v %d %s", err, resp.Status, resp.Body)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	if after := childrenCPU(b); after > before {
		b.ReportMetric(float64((after-before).Microseconds())/float64(b.N), "action-µs/call")
	}
}

// startBenchServer runs one server as Main does, with its output read and
// dropped, and initialises it with the native action code.
func startBenchServer(b *testing.B, ctx context.Context, code string, i int) (*container.Client, <-chan struct{}) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer readyR.Close()
	fd, err := syscall.Dup(int(readyW.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	readyW.Close()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	for _, r := range []*os.File{outR, errR} {
		go func() {
			br := bufio.NewReaderSize(r, 64<<10)
			for {
				if _, err := br.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
					r.Close()
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, []string{"--listen", "127.0.0.1:0", "--launcher", "native", "--workdir", filepath.Join(b.TempDir(), strconv.Itoa(i)), "--ready-fd", strconv.Itoa(fd)}, outW, errW)
		outW.Close()
		errW.Close()
	}()
	addr, err := bufio.NewReader(readyR).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	cl := container.NewClient(strings.TrimSpace(addr))
	resp, err := cl.Init(ctx, container.InitRequest{Name: "noop", Main: "main", Code: code, Binary: true})
	if err != nil || resp.Status != 200 {
		b.Fatalf("init: %v %d %s", err, resp.Status, resp.Body)
	}
	return cl, done
}

// childrenCPU is the user and system CPU of this process's live children
// (the actions), from /proc; 0 where there is no /proc.
func childrenCPU(b *testing.B) time.Duration {
	var total time.Duration
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	for _, t := range tasks {
		raw, _ := os.ReadFile(t)
		for _, pid := range strings.Fields(string(raw)) {
			st, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil {
				continue
			}
			s := string(st)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			if len(f) < 13 {
				continue
			}
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			total += time.Duration(u+k) * 10 * time.Millisecond // USER_HZ = 100
		}
	}
	return total
}
