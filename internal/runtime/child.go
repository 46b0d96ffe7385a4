package runtime

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// errExited means the child exited (or closed fd 3) before answering.
var errExited = errors.New("command exited")

// child is one running actionloop process: it reads one JSON line per
// activation on stdin and answers one JSON line on fd 3. Its stdout and
// stderr are the server's own.
type child struct {
	cmd     *exec.Cmd
	stdin   *os.File    // write end of the child's stdin
	answers *os.File    // read end of the child's fd 3
	lines   chan []byte // lines read from fd 3; closed at EOF
	exited  chan struct{}

	// in and ans are stdin and answers read and written with raw system
	// calls (rawio_linux.go), nil where that is not available; writing
	// counts the writes of stdin left to a goroutine that are not done.
	in, ans *rawFD
	writing atomic.Int32
}

// startChild starts c with the actionloop pipes. stdout and stderr are given
// to the child as they are (an *os.File is inherited directly, so what the
// child writes precedes what the server writes after it answers).
func startChild(c *command, env []string, stdout, stderr io.Writer) (*child, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ansR, ansW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(c.path, c.args...)
		cmd.Dir = c.dir
		cmd.Env = env
		cmd.Stdin = inR
		cmd.Stdout = stdout
		cmd.Stderr = stderr
		cmd.ExtraFiles = []*os.File{ansW}
		cmd.SysProcAttr = childSysProcAttr()
		err = cmd.Start()
		// A freshly written executable can be briefly busy while another
		// goroutine's fork still holds its write descriptor (golang/go#22315).
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || attempt >= 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	inR.Close()
	ansW.Close()
	if err != nil {
		inW.Close()
		ansR.Close()
		return nil, err
	}
	ch := &child{cmd: cmd, stdin: inW, answers: ansR, lines: make(chan []byte, 1), exited: make(chan struct{})}
	if r, ok := newRawFD(inW); ok {
		ch.in = r
	}
	if r, ok := newRawFD(ansR); ok {
		ch.ans = r
	}
	go ch.readAnswers()
	go func() {
		_ = cmd.Wait()
		close(ch.exited)
	}()
	return ch, nil
}

func (ch *child) readAnswers() {
	defer close(ch.lines)
	var src io.Reader = ch.answers
	if ch.ans != nil {
		src = ch.ans
	}
	r := bufio.NewReaderSize(src, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			ch.lines <- line
		}
		if err != nil {
			return
		}
	}
}

func (ch *child) pid() int { return ch.cmd.Process.Pid }

// next returns the child's next answer line, or errExited, or ctx's error.
func (ch *child) next(ctx context.Context) ([]byte, error) {
	select {
	case line, ok := <-ch.lines:
		if !ok {
			return nil, errExited
		}
		return line, nil
	case <-ch.exited:
		// It may have answered just before exiting; the reader sees that
		// answer or EOF promptly unless a grandchild still holds fd 3.
		select {
		case line, ok := <-ch.lines:
			if ok {
				return line, nil
			}
		case <-time.After(100 * time.Millisecond):
		}
		return nil, errExited
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// roundTrip writes line (one JSON document without newlines) to the child's
// stdin and waits for its answer on fd 3.
func (ch *child) roundTrip(ctx context.Context, line []byte) ([]byte, error) {
	// Drop answers nobody asked for, so they are not taken for this one.
	for drained := false; !drained; {
		select {
		case l, ok := <-ch.lines:
			if !ok {
				return nil, errExited
			}
			_ = l
		default:
			drained = true
		}
	}
	msg := make([]byte, 0, len(line)+1)
	msg = append(append(msg, line...), '\n')
	ch.send(msg)
	return ch.next(ctx)
}

// send writes msg to the child's stdin. What does not fit in the pipe now
// is written by a goroutine of its own, so that a child that neither reads
// nor exits cannot block past ctx: killing it makes the write fail. A
// message that fits (the usual case) is written at once, when no earlier
// write is still pending.
func (ch *child) send(msg []byte) {
	if ch.in != nil && ch.writing.Load() == 0 {
		n, err := ch.in.tryWrite(msg)
		if err != nil || n == len(msg) {
			return // a failed write means the child is gone: next sees it
		}
		msg = msg[n:]
	}
	ch.writing.Add(1)
	go func() {
		defer ch.writing.Add(-1)
		if ch.in != nil {
			_, _ = ch.in.Write(msg)
			return
		}
		_, _ = ch.stdin.Write(msg)
	}()
}

// kill stops the child and releases the pipes; it does not wait.
func (ch *child) kill() {
	_ = ch.cmd.Process.Kill()
	ch.stdin.Close()
	ch.answers.Close()
}
