package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The "skeleton" launcher speaks OpenWhisk's dockerskeleton protocol
// (openwhisk-runtime-docker's actionproxy.py) instead of the
// actionloop one: there is no long-lived child; every /run starts the
// action's exec with the parameters as its one argument (and on stdin), and
// the last line of its stdout is the result.

// Messages, worded as actionproxy.py words them.
const (
	msgStub       = "This is a stub action. Replace it with custom logic."
	msgNotDictArg = "The action did not receive a dictionary as an argument."
	msgInitOK     = "OK"   // /init's answer, as plain text
	maxArgStrLen  = 131071 // MAX_ARG_STRLEN: longer parameters go on stdin only
)

// skeletonWaitDelay bounds how long a run waits, after exec exited, for
// processes it left behind to release its stdout.
const skeletonWaitDelay = time.Second

// plainText is an answer written as text/plain rather than JSON.
type plainText string

// skeletonLauncher writes the action's exec: plain text (or base64 of a
// file that is not a zip) becomes action/exec, made executable; a zip is
// extracted and must hold an executable "exec".
type skeletonLauncher struct{}

func (skeletonLauncher) prepare(workDir string, req *initValue, _ func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	isZip, err := actionFiles(dir, req, "exec", 0o755)
	if err != nil {
		return nil, err
	}
	exe := filepath.Join(dir, "exec")
	st, err := os.Stat(exe)
	switch {
	case err != nil || !st.Mode().IsRegular():
		return nil, &initError{status: 502, msg: msgNoBinary, detail: "the action has no file named exec"}
	case isZip && st.Mode().Perm()&0o111 == 0:
		return nil, &initError{status: 502, msg: msgNoBinary, detail: "the action's exec is not executable"}
	case !isZip:
		if err := os.Chmod(exe, 0o755); err != nil {
			return nil, err
		}
	}
	return &command{path: exe, dir: dir, perRun: true}, nil
}

// skeletonAction is what /init left for the runs of a skeleton server.
type skeletonAction struct {
	cmd *command
	env []string // server env + init env
}

// runSkeleton serves /run for the skeleton launcher.
func (s *Server) runSkeleton(ctx context.Context, body []byte) (int, any) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return http.StatusServiceUnavailable, errBody("the run was cancelled while waiting for the action")
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return http.StatusBadRequest, errBody("The request body is not valid JSON: " + err.Error())
	}
	var value bytes.Buffer
	if raw := bytes.TrimSpace(msg["value"]); len(raw) == 0 || string(raw) == "null" {
		value.WriteString("{}")
	} else if raw[0] != '{' {
		return http.StatusNotFound, errBody(msgNotDictArg)
	} else if err := json.Compact(&value, raw); err != nil {
		return http.StatusBadRequest, errBody("The request body is not valid JSON: " + err.Error())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	act, closed := s.skeleton, s.closed
	if !closed {
		s.cancelRun = cancel
	}
	s.mu.Unlock()
	switch {
	case closed:
		return http.StatusServiceUnavailable, errBody("the runtime is shutting down")
	case act == nil:
		return http.StatusOK, errBody(msgStub)
	}
	defer func() {
		s.mu.Lock()
		s.cancelRun = nil
		s.mu.Unlock()
	}()

	env := append([]string(nil), act.env...)
	for k, raw := range msg {
		if k != "value" {
			env = append(env, "__OW_"+strings.ToUpper(k)+"="+envString(raw))
		}
	}
	input := value.Bytes()
	var args []string
	if len(input) <= maxArgStrLen {
		args = []string{string(input)}
	}
	out := &lastLineWriter{out: s.writeStdout}
	var cmd *exec.Cmd
	var err error
	for attempt := 0; ; attempt++ {
		cmd = exec.CommandContext(ctx, act.cmd.path, args...)
		cmd.Dir = act.cmd.dir
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(input)
		cmd.Stdout = out
		cmd.Stderr = s.cfg.Stderr
		cmd.SysProcAttr = runSysProcAttr()
		cmd.Cancel = func() error { return killGroup(cmd.Process) }
		cmd.WaitDelay = skeletonWaitDelay
		err = cmd.Start()
		// See startChild: a just-written exec can be briefly busy.
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || attempt >= 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.logf("cannot start the action: %v", err)
		return http.StatusBadGateway, errBody(msgNotDictOrArr)
	}
	err = cmd.Wait()
	if cerr := ctx.Err(); cerr != nil {
		return http.StatusServiceUnavailable, errBody("the run was cancelled: " + cerr.Error())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		s.logf("the action failed: %v", err)
	}
	last := bytes.TrimSpace(out.finish())
	if len(last) == 0 || (last[0] != '{' && last[0] != '[') || !json.Valid(last) {
		// actionproxy.py logs the line it could not take for a result.
		if len(last) > 0 {
			s.writeStdout(append(last, '\n'))
		}
		return http.StatusBadGateway, errBody(msgNotDictOrArr)
	}
	return http.StatusOK, last
}

// writeStdout writes the action's log output to the server's stdout.
func (s *Server) writeStdout(p []byte) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.cfg.Stdout.Write(p)
}

// lastLineWriter passes every line of a run's stdout to out except the last
// one, which it keeps: actionproxy.py's rule is that the last line of
// stdout (a trailing newline does not start another) is the result and the
// lines before it are logs.
type lastLineWriter struct {
	out  func([]byte)
	held []byte // the last complete line, newline included, or nil
	part []byte // what follows it
}

func (w *lastLineWriter) Write(p []byte) (int, error) {
	w.part = append(w.part, p...)
	start := 0
	for {
		i := bytes.IndexByte(w.part[start:], '\n')
		if i < 0 {
			break
		}
		if w.held != nil {
			w.out(w.held)
		}
		w.held = append([]byte(nil), w.part[start:start+i+1]...)
		start += i + 1
	}
	if start > 0 {
		w.part = append(w.part[:0], w.part[start:]...)
	}
	return len(p), nil
}

// finish returns the last line, after passing on the line before it.
func (w *lastLineWriter) finish() []byte {
	if len(w.part) == 0 {
		return w.held
	}
	if w.held != nil {
		w.out(w.held)
		w.held = nil
	}
	return w.part
}
