package bench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// dockerdPid finds the Docker daemon's pid (a process named dockerd), or
// 0 when there is none or /proc cannot be read.
func dockerdPid() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == "dockerd" {
			return pid
		}
	}
	return 0
}

// dockerdMeter measures the CPU time (user + system, from /proc/PID/stat)
// the Docker daemon spends over a stretch of calls: on the warm path it is
// what the container's log stream costs (the log driver and the attached
// stream carry every line a runtime writes).
type dockerdMeter struct {
	pid   int
	start time.Duration
	ok    bool
}

// startDockerd starts a meter; a meter with no daemon measures 0.
func startDockerd(pid int) dockerdMeter {
	if pid == 0 {
		return dockerdMeter{}
	}
	ps, err := readProc(pid)
	return dockerdMeter{pid: pid, start: ps.CPU, ok: err == nil}
}

// perCall is the daemon's CPU per call in µs since the meter started (0
// when not measured).
func (m dockerdMeter) perCall(calls int) float64 {
	if !m.ok {
		return 0
	}
	ps, err := readProc(m.pid)
	if err != nil {
		return 0
	}
	return perCall(ps.CPU-m.start, calls)
}
