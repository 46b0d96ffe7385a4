package process

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// removeStale removes what a predecessor using the same work root left
// behind (an invoker killed with SIGKILL, then restarted): every process
// still running in one of its work directories (by working directory or
// command line, as the runtimes' children started with setsid outlive
// them) is killed, and the directories are removed. Only for a work root
// owned by one process at a time (Config.RemoveStale).
func removeStale(root string, log *slog.Logger) {
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) == 0 {
		return
	}
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
	removed := 0
	for _, e := range entries {
		if os.RemoveAll(filepath.Join(root, e.Name())) == nil {
			removed++
		}
	}
	log.Info("process backend: removed what a previous run left", "workDirs", removed, "processesKilled", killed, "root", root)
}
