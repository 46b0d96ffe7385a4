//go:build !linux

package process

import (
	"errors"
	"os"
	"syscall"
)

// isolationSupported: only Linux runs containers as other uids here.
const isolationSupported = false

var errNoIsolation = errors.New("isolation needs Linux")

type procInfo struct {
	pid, ppid int
	uid       uint32
	zombie    bool
}

func claimSlot(Isolation, string, string, string) (uint32, *os.File, error) {
	return 0, nil, errNoIsolation
}
func privateDir(dir string, mode os.FileMode) error               { return os.MkdirAll(dir, mode) }
func liveUIDs(uint32, uint32) (map[uint32]int, error)             { return nil, errNoIsolation }
func killUID(uint32) error                                        { return errNoIsolation }
func (*Backend) reapUID(uint32) (int, error)                      { return 0, errNoIsolation }
func rlimits(Isolation, int64) string                             { return "" }
func checkLimits(int, Isolation, int64) error                     { return errNoIsolation }
func credential(*syscall.SysProcAttr, uint32)                     {}
func startReaper(uint32, uint32, func(int) bool) (*reaper, error) { return nil, errNoIsolation }

type reaper struct{}

func (*reaper) reap()  {}
func (*reaper) close() {}
