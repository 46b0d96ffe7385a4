//go:build !linux

package process

import "syscall"

// sysProcAttr puts a runtime in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
