//go:build linux

package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// isolationSupported: Linux can run containers as other uids.
const isolationSupported = true

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER (linux/prctl.h).
const prSetChildSubreaper = 36

// claimSlot takes the first free slot of uids, trying the one recorded in
// recordFile (this work root's previous run) first, then the one hashed
// from key, then the ones after it. A slot is held by an exclusive flock
// on its lock file in lockDir, which the kernel releases when the holder
// dies (kill -9 included), so two live backends never share uids and a
// restart finds its previous slot free again.
func claimSlot(iso Isolation, lockDir, recordFile, key string) (first uint32, lock *os.File, err error) {
	if err := privateDir(lockDir, 0o700); err != nil {
		return 0, nil, err
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	preferred := h.Sum32() % iso.Slots
	var tries []uint32
	if b, err := os.ReadFile(recordFile); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && uint32(n) < iso.Slots {
			tries = append(tries, uint32(n))
		}
	}
	for i := range uint32(64) {
		tries = append(tries, (preferred+i)%iso.Slots)
	}
	for _, slot := range tries {
		f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another live backend's
			}
			return 0, nil, err
		}
		if err := os.WriteFile(recordFile, []byte(fmt.Sprintln(slot)), 0o600); err != nil {
			f.Close()
			return 0, nil, err
		}
		return iso.UIDBase + slot*iso.SlotSize, f, nil
	}
	return 0, nil, fmt.Errorf("no free uid slot in %s (tried %d)", lockDir, len(tries))
}

// privateDir creates dir (and its parents) owned by the running user with
// the given mode, and refuses one that is a symbolic link or belongs to
// someone else: a directory another user made could be swapped under us.
func privateDir(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is not a directory of uid %d", dir, os.Geteuid())
	}
	return os.Chmod(dir, mode)
}

// procInfo is what the backend reads of a process in /proc.
type procInfo struct {
	pid, ppid int
	uid       uint32 // real uid
	zombie    bool
}

// processes lists the processes of the host (of this pid namespace) but
// this one. A process that ends while it is read is left out. This one is
// left out because killUID may leave its main thread with a container's
// uid: a goroutine that locks its thread and exits wedges the thread when
// it is the main one (Go never ends that thread), and /proc shows the
// process with the main thread's credentials, so the uid would look
// alive forever though kill(-1) never signals its caller.
func processes() ([]procInfo, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procInfo
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		p := procInfo{pid: pid}
		ok := false
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			f := strings.Fields(v)
			switch {
			case k == "State" && len(f) > 0:
				p.zombie = f[0] == "Z" || f[0] == "X"
			case k == "PPid" && len(f) > 0:
				p.ppid, _ = strconv.Atoi(f[0])
			case k == "Uid" && len(f) > 0:
				u, err := strconv.ParseUint(f[0], 10, 32)
				p.uid, ok = uint32(u), err == nil
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// liveUIDs returns the uids in [first, first+count) that have a process
// that is not a zombie.
func liveUIDs(first, count uint32) (map[uint32]int, error) {
	ps, err := processes()
	if err != nil {
		return nil, err
	}
	out := map[uint32]int{}
	for _, p := range ps {
		if !p.zombie && p.uid >= first && p.uid-first < count {
			out[p.uid]++
		}
	}
	return out, nil
}

// killUID sends SIGKILL to every process whose real or saved uid is uid,
// at once: kill(-1) from a thread that has taken uid as its real and
// effective uid (keeping root as the saved one). The kernel signals every
// process the caller may signal while holding the task list, so a process
// forking at that moment cannot leave a child behind, and with root's
// capabilities dropped (effective uid not 0) only uid's processes qualify.
// The thread is locked and never unlocked: it exits with the goroutine,
// and with it the changed credentials (the Go runtime never clones a
// locked thread).
//
// kill(-1) answers success whenever another process exists, whether it
// could signal one or not: only a scan of /proc (reapUID) says whether
// uid has processes left.
func killUID(uid uint32) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); e != 0 {
			errc <- fmt.Errorf("setresuid %d: %w", uid, e)
			return
		}
		all := -1
		if _, _, e := syscall.RawSyscall(syscall.SYS_KILL, uintptr(all), uintptr(syscall.SIGKILL), 0); e != 0 && e != syscall.ESRCH {
			errc <- fmt.Errorf("kill uid %d: %w", uid, e)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// reapUID counts the living processes of uid and reaps its zombies that
// are this process's children and not a runtime server, in one scan.
func (b *Backend) reapUID(uid uint32) (live int, err error) {
	ps, err := processes()
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, p := range ps {
		switch {
		case p.uid != uid:
		case !p.zombie:
			live++
		default:
			reapOrphan(p, self, b.isServer)
		}
	}
	return live, nil
}

// reapOrphan waits for p when it is an exited child of this process
// (self) that is not a runtime server (os/exec waits for those).
func reapOrphan(p procInfo, self int, server func(pid int) bool) {
	if p.zombie && p.ppid == self && !server(p.pid) {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
	}
}

// rlimits is the value of runtime.RlimitsEnv for a container: the
// runtime server sets these limits on itself before it listens.
func rlimits(iso Isolation, memoryMB int64) string {
	return fmt.Sprintf("nproc=%d,nofile=%d,as=%d", iso.NProc, iso.NoFile, uint64(memoryMB+iso.AddressSpaceHeadroomMB)<<20)
}

// checkLimits checks that a runtime that says it listens has the limits
// it was given (a runtime command that ignores runtime.RlimitsEnv must not
// run actions unbounded).
func checkLimits(pid int, iso Isolation, memoryMB int64) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return err
	}
	want := map[string]uint64{
		"Max processes":     iso.NProc,
		"Max open files":    iso.NoFile,
		"Max address space": uint64(memoryMB+iso.AddressSpaceHeadroomMB) << 20,
	}
	for _, line := range strings.Split(string(b), "\n") {
		for name, n := range want {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				f := strings.Fields(rest)
				if len(f) >= 2 && f[0] == strconv.FormatUint(n, 10) && f[1] == f[0] {
					delete(want, name)
				}
			}
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("the runtime did not set its limits from %s (%d of 3 missing)", "EDDY_RLIMITS", len(want))
	}
	return nil
}

// reaper makes this process the subreaper of what its runtimes start: a
// process an action orphans (a double fork, setsid) is re-parented here
// rather than to init, and reap waits for the ones that have exited, so
// they leave no zombies (which would also count against their uid's
// process limit). It reaps only zombies whose uid is in the backend's
// range and that are not a runtime server itself (those are os/exec's to
// wait for).
type reaper struct {
	first, count uint32
	servers      func(pid int) bool
	sig          chan os.Signal
	stop         chan struct{}
	done         chan struct{}
	once         sync.Once
}

func startReaper(first, count uint32, servers func(pid int) bool) (*reaper, error) {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return nil, fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", e)
	}
	r := &reaper{first: first, count: count, servers: servers,
		sig: make(chan os.Signal, 1), stop: make(chan struct{}), done: make(chan struct{})}
	signal.Notify(r.sig, syscall.SIGCHLD)
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.sig:
				r.reap()
			case <-r.stop:
				return
			}
		}
	}()
	return r, nil
}

// reap waits for every exited orphan of the backend's uids.
func (r *reaper) reap() {
	ps, err := processes()
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, p := range ps {
		if p.uid >= r.first && p.uid-r.first < r.count {
			reapOrphan(p, self, r.servers)
		}
	}
}

func (r *reaper) close() {
	r.once.Do(func() {
		signal.Stop(r.sig)
		close(r.stop)
		<-r.done
		r.reap()
	})
}

// credential makes a runtime run as uid (and group uid), with no
// supplementary groups.
func credential(attr *syscall.SysProcAttr, uid uint32) {
	attr.Credential = &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
}
