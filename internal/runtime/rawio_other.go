//go:build !linux

package runtime

import (
	"net"
	"os"
	"syscall"
)

// rawFD is Linux's raw-system-call I/O (rawio_linux.go); elsewhere the
// descriptors' own Read and Write serve.
type rawFD struct{}

func newRawFD(syscall.Conn) (*rawFD, bool) { return nil, false }

func (*rawFD) Read([]byte) (int, error)     { return 0, os.ErrInvalid }
func (*rawFD) Write([]byte) (int, error)    { return 0, os.ErrInvalid }
func (*rawFD) tryWrite([]byte) (int, error) { return 0, os.ErrInvalid }

func reopenNonblock(*os.File) *os.File { return nil }

type rawListener struct{ net.Listener }
