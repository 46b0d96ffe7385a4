package runtime

import "syscall"

// rlimitNames are the limits RlimitsEnv may set (RLIMIT_NPROC is 6 on
// Linux; package syscall does not name it).
var rlimitNames = map[string]int{"nproc": 6, "nofile": syscall.RLIMIT_NOFILE, "as": syscall.RLIMIT_AS}
