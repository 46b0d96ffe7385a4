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
)

// actionCodes are the two benchmark actions of one kind: a no-op that
// answers with which container ran it (computed once, at load), and the
// same after a 100 ms sleep (the burst). Both are what the floor runs too.
type actionCodes struct{ noop, sleep string }

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
const kinds = "python:3.11, nodejs:18 or native"

// nativeSource is the benchmark action of the native kind: a static Go
// program speaking the action loop protocol (one activation per line on
// stdin, one answer per line on fd 3), with no interpreter behind it. Its
// floor is the runtime's own proxy and nothing else, so it shows Eddy's
// cost against the cheapest runtime there is. The sleep variant is built
// with -X main.sleep=100ms.
const nativeSource = `package main

import (
	"bufio"
	"encoding/json"
	"os"
	"time"
)

var sleep string

func main() {
	host, _ := os.Hostname()
	answer, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "host": host})
	answer = append(answer, '\n')
	var d time.Duration
	if sleep != "" {
		d, _ = time.ParseDuration(sleep)
	}
	out := os.NewFile(3, "answers")
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := in.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			_, err = in.ReadSlice('\n')
		}
		if err != nil && len(line) == 0 {
			return
		}
		if d > 0 {
			time.Sleep(d)
		}
		if _, err := out.Write(answer); err != nil {
			return
		}
	}
}
`

// codesFor returns the benchmark actions of kind. The native ones are
// built here with the Go toolchain (a static binary, sent base64 as
// OpenWhisk's native actions are), in a temporary directory.
func codesFor(ctx context.Context, kind string) (actionCodes, error) {
	if c, ok := interpreted[kind]; ok {
		return c, nil
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
	return c, nil
}
