package runtime

import (
	"os"
	"syscall"
)

// childSysProcAttr kills the action's process when the runtime server dies,
// so that an action never outlives the server that answers for it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// runSysProcAttr is childSysProcAttr for a skeleton run, in a process group
// of its own so that killGroup ends what it started too.
func runSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills p's process group.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		return p.Kill()
	}
	return nil
}
