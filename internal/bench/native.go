package bench

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// actionCodes are the benchmark actions of one kind: a no-op that answers
// with which container ran it (computed once, at load), the same after a
// 100 ms sleep (the burst) and after a stepSleep one (the step load). The
// floor runs the same code.
type actionCodes struct{ noop, sleep, step string }

// stepSleep is how long the step load's action sleeps.
const stepSleep = 10 * time.Millisecond

// stepEdits turn each kind's 100 ms sleep into stepSleep's 10 ms: exactly
// one of them applies to a kind's sleep action.
var stepEdits = []struct{ from, to string }{
	{"time.sleep(0.1)", "time.sleep(0.01)"},                         // python
	{"setTimeout(() => r(ID), 100)", "setTimeout(() => r(ID), 10)"}, // nodejs
	{"time.Sleep(100 * time.Millisecond)", "time.Sleep(10 * time.Millisecond)"},
	{"usleep(100000)", "usleep(10000)"},       // php
	{"sleep(0.1)", "sleep(0.01)"},             // ruby
	{"Thread.sleep(100)", "Thread.sleep(10)"}, // java
}

// withStep fills c.step from c.sleep.
func withStep(kind string, c actionCodes) (actionCodes, error) {
	for _, ed := range stepEdits {
		if strings.Count(c.sleep, ed.from) == 1 {
			c.step = strings.Replace(c.sleep, ed.from, ed.to, 1)
			return c, nil
		}
	}
	return c, fmt.Errorf("bench: no %s variant of the %s sleep action", stepSleep, kind)
}

// interpreted are the benchmark actions of the interpreted kinds.
var interpreted = map[string]actionCodes{
	"python:3.11": {
		noop: "import os, socket\n_ID = {'pid': os.getpid(), 'host': socket.gethostname()}\n\ndef main(args):\n    return _ID\n",
		sleep: "import os, socket, time\n_ID = {'pid': os.getpid(), 'host': socket.gethostname()}\n\n" +
			"def main(args):\n    time.sleep(0.1)\n    return _ID\n",
	},
	"nodejs:18": {
		noop: "const ID = {pid: process.pid, host: require('os').hostname()};\nfunction main(args) { return ID; }\n",
		sleep: "const ID = {pid: process.pid, host: require('os').hostname()};\n" +
			"function main(args) { return new Promise(r => setTimeout(() => r(ID), 100)); }\n",
	},
}

// kinds lists what --kind accepts.
const kinds = "python:3.11, python:3.13, nodejs:18, nodejs:20, go:1.19, php:8.2, ruby:3.1, java:17 or native"

// nativeSource is the benchmark action of the native kind: a static Go
// program speaking the action loop protocol (one activation per line on
// stdin, one answer per line on fd 3), with no interpreter behind it. Its
// floor is the runtime's own proxy and nothing else, so it shows Eddy's
// cost against the cheapest runtime there is. The sleep variant is built
// with -X main.sleep=100ms.
//
// It is lean on purpose: its reads and writes are raw system calls, so
// that waiting for the next line does not go through the Go scheduler's
// syscall entry and exit, which in a process idle between runs wakes the
// scheduler's sysmon thread on every run (two to three context switches
// per run, measured: 25-30 µs of CPU per run against 9-18 µs). It
// allocates nothing per run and turns the collector off, so no
// stop-the-world waits on the blocked read. A line is answered once its
// newline is read, however it arrives.
const nativeSource = `package main

import (
	"encoding/json"
	"os"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"
)

var sleep string

func rawIO(nr uintptr, fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

func main() {
	host, _ := os.Hostname()
	answer, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "host": host})
	answer = append(answer, '\n')
	var d time.Duration
	if sleep != "" {
		d, _ = time.ParseDuration(sleep)
	}
	debug.SetGCPercent(-1)
	buf := make([]byte, 64<<10)
	for {
		n, e := rawIO(syscall.SYS_READ, 0, buf)
		if e != 0 || n <= 0 {
			return
		}
		for _, b := range buf[:n] {
			if b != '\n' {
				continue
			}
			if d > 0 {
				time.Sleep(d)
			}
			for off := 0; off < len(answer); {
				m, e := rawIO(syscall.SYS_WRITE, 3, answer[off:])
				if e != 0 {
					return
				}
				off += m
			}
		}
	}
}
`

// codesFor returns the benchmark actions of kind. The native ones are
// built here with the Go toolchain (a static binary, sent base64 as
// OpenWhisk's native actions are), in a temporary directory.
func codesFor(ctx context.Context, kind string) (actionCodes, error) {
	if c, ok := interpreted[kind]; ok {
		return withStep(kind, c)
	}
	if c, ok := otherLanguages[kind]; ok {
		return withStep(kind, c)
	}
	if kind != "native" {
		return actionCodes{}, fmt.Errorf("--kind %q: want %s", kind, kinds)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return actionCodes{}, errors.New("--kind native builds its no-op action with the Go toolchain, and `go` is not on PATH")
	}
	dir, err := os.MkdirTemp("", "eddy-bench-native-")
	if err != nil {
		return actionCodes{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(nativeSource), 0o644); err != nil {
		return actionCodes{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module eddybenchnative\n\ngo 1.22\n"), 0o644); err != nil {
		return actionCodes{}, err
	}
	build := func(out, ldflags string) (string, error) {
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the native benchmark action: %w: %s", err, strings.TrimSpace(string(b)))
		}
		b, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	var c actionCodes
	if c.noop, err = build("noop", "-s -w"); err != nil {
		return c, err
	}
	if c.sleep, err = build("sleep", "-s -w -X main.sleep=100ms"); err != nil {
		return c, err
	}
	if c.step, err = build("step", "-s -w -X main.sleep="+stepSleep.String()); err != nil {
		return c, err
	}
	return c, nil
}
