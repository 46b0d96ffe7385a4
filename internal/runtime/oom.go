package runtime

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// oomFiles are where the kernel counts the processes of this runtime's
// memory cgroup it killed for memory: cgroup v2, then v1. Inside a
// container they are the container's own cgroup.
var oomFiles = []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"}

// oomKills reads the "oom_kill N" counter from the first of files that has
// it; ok is false where none does (no memory cgroup to look at).
func oomKills(files []string) (n int64, ok bool) {
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, found := strings.CutPrefix(sc.Text(), "oom_kill "); found {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				f.Close()
				return n, err == nil
			}
		}
		f.Close()
	}
	return 0, false
}
