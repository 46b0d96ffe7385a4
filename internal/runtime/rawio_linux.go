package runtime

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// The hot path's I/O (the /run connection, the action's stdin and fd 3, the
// sentinels) is done on non-blocking descriptors with raw system calls,
// through the descriptors' syscall.RawConn: the Go poller still parks a
// goroutine on EAGAIN and honours deadlines, but a call that cannot block
// does not go through the scheduler's syscall entry. That entry wakes the
// runtime's sysmon thread whenever every P was idle, which is the state a
// runtime is in between two runs, so each run paid two wakes of sysmon
// (each a futex wake, a 20 µs sleep and a futex wait: several context
// switches) on top of its own. A system call on a non-blocking descriptor
// returns at once, so there is nothing for sysmon to take back.

// rawFD reads and writes one non-blocking, poller-registered descriptor.
// Never call Fd() on the *os.File behind one: it puts the open file
// description back in blocking mode, and a raw write to a full pipe would
// then block the runtime's only P (GOMAXPROCS=1) with no timeout.
type rawFD struct{ rc syscall.RawConn }

// newRawFD returns c's descriptor as a rawFD when it is non-blocking (so
// in the poller); ok is false otherwise, and the caller keeps c's own
// Read and Write.
func newRawFD(c syscall.Conn) (*rawFD, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, false
	}
	nonblock := false
	if err := rc.Control(func(fd uintptr) {
		flags, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblock = e == 0 && flags&syscall.O_NONBLOCK != 0
	}); err != nil || !nonblock {
		return nil, false
	}
	return &rawFD{rc: rc}, true
}

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// Read reads what is there, waiting in the poller while nothing is; 0
// bytes read is io.EOF.
func (r *rawFD) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		n, errno = sysRead(fd, p)
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting in the poller while there is no room.
func (r *rawFD) Write(p []byte) (int, error) {
	return r.write(p, true)
}

// tryWrite writes what fits now without waiting.
func (r *rawFD) tryWrite(p []byte) (int, error) {
	return r.write(p, false)
}

func (r *rawFD) write(p []byte, wait bool) (int, error) {
	done := 0
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, e := sysWrite(fd, p[done:])
			if e == syscall.EAGAIN {
				return !wait
			}
			if e != 0 {
				errno = e
				return true
			}
			done += n
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	return done, err
}

// reopenNonblock returns a new, non-blocking open file description of f
// when f is a pipe (a FIFO), for the server's own writes: f's description
// is shared with the action's process, which must keep writing to a
// blocking one. The bytes go into the same pipe, in the order written.
// It returns nil when f is not a pipe or cannot be opened again.
func reopenNonblock(f *os.File) *os.File {
	rc, err := f.SyscallConn() // not f.Fd(), which would make f blocking
	if err != nil {
		return nil
	}
	ofd := -1
	if rc.Control(func(fd uintptr) { ofd = int(fd) }) != nil || ofd < 0 {
		return nil
	}
	var st, st2 syscall.Stat_t
	if err := syscall.Fstat(ofd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil
	}
	fd, err := syscall.Open("/proc/self/fd/"+itoa(ofd), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Fstat(fd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino {
		syscall.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), f.Name())
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// rawListener hands out connections whose Read and Write are rawFD's.
type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	r, ok := newRawFD(tc)
	if !ok {
		return c, nil
	}
	return &rawConn{TCPConn: tc, fd: r}, nil
}

// rawConn is a TCP connection read and written with raw system calls;
// everything else (deadlines, Close, CloseWrite) is the TCPConn's.
type rawConn struct {
	*net.TCPConn
	fd *rawFD
}

func (c *rawConn) Read(p []byte) (int, error) {
	n, err := c.fd.Read(p)
	return n, c.opError("read", err)
}

func (c *rawConn) Write(p []byte) (int, error) {
	n, err := c.fd.Write(p)
	return n, c.opError("write", err)
}

// opError wraps an error of the system call as net.TCPConn would; one the
// connection already wrapped (a deadline, a closed connection) and EOF
// are returned as they are.
func (c *rawConn) opError(op string, err error) error {
	var oe *net.OpError
	if err == nil || err == io.EOF || errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
