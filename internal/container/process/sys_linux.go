package process

import "syscall"

// sysProcAttr puts a runtime in its own process group (so Remove can kill
// everything it started) and kills it when the invoker dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
