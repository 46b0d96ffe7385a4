package runtime

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// RlimitsEnv names the environment variable whose resource limits the
// runtime server sets on itself at start, before it listens (and so
// before any action runs), for its children to inherit:
// "nproc=N,nofile=N,as=BYTES", each as both soft and hard limit. The
// process container backend sets it when it runs containers as other uids
// (a parent may not be allowed to set another uid's limits; lowering one's
// own always is).
const RlimitsEnv = "EDDY_RLIMITS"

// applyRlimits sets the limits spec names.
func applyRlimits(spec string) error {
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", RlimitsEnv, kv, err)
		}
		res, ok := rlimitNames[k]
		if !ok {
			return fmt.Errorf("%s: unknown limit %q", RlimitsEnv, k)
		}
		// syscall.Setrlimit, so that os/exec does not restore the
		// open-file limit the process started with in its children.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			return fmt.Errorf("%s: %s=%d: %w", RlimitsEnv, k, n, err)
		}
	}
	return nil
}
