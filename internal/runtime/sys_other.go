//go:build !linux

package runtime

import "syscall"

func childSysProcAttr() *syscall.SysProcAttr { return nil }
