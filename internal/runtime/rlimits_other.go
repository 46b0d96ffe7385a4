//go:build !linux

package runtime

import "syscall"

// rlimitNames are the limits RlimitsEnv may set.
var rlimitNames = map[string]int{"nofile": syscall.RLIMIT_NOFILE, "as": syscall.RLIMIT_AS}
