package process

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// killStale kills what a predecessor using the same work root left running
// (an invoker killed with SIGKILL, then restarted): every process whose
// working directory or command line is under the work root, as the
// runtimes' children started with setsid outlive them. It runs once the
// backend holds the work root's lock, so no live backend's processes are
// touched, and before open removes the stale work directories.
// Only for a backend that does not isolate (an isolating one kills its uid
// slot instead) and whose work root is its own (Config.RemoveStale).
func killStale(root string, log *slog.Logger) {
	prefix := filepath.Clean(root) + string(filepath.Separator)
	killed := 0
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join(p, "cwd"))
		cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if strings.HasPrefix(cwd+"/", prefix) || strings.Contains(string(cmd), prefix) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	if killed > 0 {
		log.Info("process backend: killed what a previous run left", "processes", killed, "root", root)
	}
}
