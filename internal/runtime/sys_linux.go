package runtime

import "syscall"

// childSysProcAttr kills the action's process when the runtime server dies,
// so that an action never outlives the server that answers for it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
