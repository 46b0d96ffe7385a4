// Package handout is standalone's record of hand-outs: which activations
// its scheduler handed to a container and does not yet know finished. It
// is what etcd keeps for a cluster (internal/cluster, handout.go; the
// queue's side is internal/queue, handover.go), kept in a local file
// instead, because an etcd write per hand-out on the embedded member
// (fsync'd) made a warm call 6–7× slower.
//
// Each change is one write(2) of one line to an append-only file, before
// the container is answered, with no fsync: it survives the death of the
// process (kill -9, the OOM killer) — the page cache outlives it — though
// not a crash of the machine. That is the failure it is for: after a kill -9
// the bus delivers again what its scheduler had not committed (up to
// ~300 ms of hand-outs), and without this record each of those ran a
// second time after the restart.
//
// A restart begins with what the previous process left (Leftovers): each
// one was running, or had just finished with its record unwritten, when
// the process died. Standalone gives those without a record a "whisk
// internal error" record before its scheduler starts, so that the bus's
// second delivery is skipped (a queue skips recorded activations) and
// nothing runs twice; then DropLeftovers.
package handout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// compactAfter is how many lines the file may hold beyond twice the live
// hand-outs before it is rewritten with only those.
const compactAfter = 4096

// Log is the hand-out record of one standalone scheduler. Safe for
// concurrent use.
type Log struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	f      *os.File
	lines  int // lines in the file
	live   handouts
	epochs map[whisk.FQN]int64
	left   []Leftover
	closed bool
}

// Leftover is a hand-out the previous process left: handed out, not known
// finished when it died.
type Leftover struct {
	Action  whisk.FQN
	Handout whisk.Handout
}

// handouts are hand-outs by action, and how many there are.
type handouts struct {
	m map[whisk.FQN]map[whisk.ActivationID]whisk.Handout
	n int
}

func newHandouts() handouts {
	return handouts{m: map[whisk.FQN]map[whisk.ActivationID]whisk.Handout{}}
}

// apply forgets the hand-outs of forget and adds h (unless nil): one line
// of the file, or one change of the live set.
func (s *handouts) apply(f whisk.FQN, h *whisk.Handout, forget []whisk.ActivationID) {
	hs := s.m[f]
	for _, id := range forget {
		if _, ok := hs[id]; ok {
			delete(hs, id)
			s.n--
		}
	}
	if h != nil {
		if hs == nil {
			hs = map[whisk.ActivationID]whisk.Handout{}
			s.m[f] = hs
		}
		if _, ok := hs[h.Message.ActivationID]; !ok {
			s.n++
		}
		hs[h.Message.ActivationID] = *h
	}
	if len(hs) == 0 {
		delete(s.m, f)
	}
}

// line is one change in the file.
type line struct {
	Op        string               `json:"op"` // "put" or "del"
	Namespace string               `json:"ns"`
	Action    string               `json:"action"`
	Handout   *whisk.Handout       `json:"h,omitempty"`
	Forget    []whisk.ActivationID `json:"forget,omitempty"`
}

// Open reads the record at path (made if missing) and keeps what it holds
// as the previous process's Leftovers; the new process starts with none.
func Open(path string, log *slog.Logger) (*Log, error) {
	l := &Log{path: path, log: log, live: newHandouts(), epochs: map[whisk.FQN]int64{}}
	prev, err := read(path, log)
	if err != nil {
		return nil, err
	}
	for f, hs := range prev.m {
		for _, h := range hs {
			l.left = append(l.left, Leftover{Action: f, Handout: h})
		}
	}
	// Rewritten with the leftovers until DropLeftovers.
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

// read replays the file. A last line without its newline (a write cut
// short) is ignored; an undecodable line is skipped with a warning.
func read(path string, log *slog.Logger) (handouts, error) {
	out := newHandouts()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("handout: read %s: %w", path, err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		b = b[:i+1] // torn (or empty when i is -1)
	}
	for n, raw := range bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		var ln line
		if err := json.Unmarshal(raw, &ln); err != nil {
			log.Warn("handout: an undecodable line of the record is skipped", "file", path, "line", n+1, "err", err)
			continue
		}
		h := ln.Handout
		if ln.Op != "put" {
			h = nil
		}
		out.apply(whisk.FQN{Namespace: ln.Namespace, Name: ln.Action}, h, ln.Forget)
	}
	return out, nil
}

// rewrite replaces the file with the live hand-outs and the leftovers
// (l.mu held, or before l is shared).
func (l *Log) rewrite() error {
	var buf bytes.Buffer
	n := 0
	put := func(f whisk.FQN, h whisk.Handout) error {
		b, err := json.Marshal(line{Op: "put", Namespace: f.Namespace, Action: f.Name, Handout: &h})
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		n++
		return nil
	}
	for _, lo := range l.left {
		if err := put(lo.Action, lo.Handout); err != nil {
			return fmt.Errorf("handout: %w", err)
		}
	}
	for f, hs := range l.live.m {
		for _, h := range hs {
			if err := put(f, h); err != nil {
				return fmt.Errorf("handout: %w", err)
			}
		}
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	if d, err := os.Open(filepath.Dir(l.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.lines = f, n
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	return nil
}

// append writes one change (l.mu held).
func (l *Log) append(ln line) error {
	if l.closed {
		return whisk.Errorf(whisk.Unavailable, "handout: the record is closed")
	}
	b, err := json.Marshal(ln)
	if err != nil {
		return fmt.Errorf("handout: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("handout: write %s: %w", l.path, err)
	}
	l.lines++
	return nil
}

// compact rewrites a file grown compactAfter lines past twice the live
// hand-outs (l.mu held, after the change is applied in memory too).
func (l *Log) compact() {
	if live := len(l.left) + l.live.n; l.lines > compactAfter+2*live {
		if err := l.rewrite(); err != nil {
			l.log.Warn("handout: compacting the record failed; it grows until the next try", "err", err)
		}
	}
}

// ClaimHandouts starts a new leadership of f (fencing the previous one,
// if a queue of f still runs) and returns what it handed out and did
// not forget. The previous process's hand-outs are not among them: they
// are Leftovers.
func (l *Log) ClaimHandouts(_ context.Context, f whisk.FQN) (int64, []whisk.Handout, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, nil, whisk.Errorf(whisk.Unavailable, "handout: the record is closed")
	}
	l.epochs[f]++
	var hs []whisk.Handout
	for _, h := range l.live.m[f] {
		hs = append(hs, h)
	}
	return l.epochs[f], hs, nil
}

// PutHandout records h under epoch and forgets the hand-outs of forget;
// kind Conflict when a newer leadership of f exists.
func (l *Log) PutHandout(_ context.Context, f whisk.FQN, epoch int64, h whisk.Handout, forget []whisk.ActivationID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.confirm(f, epoch); err != nil {
		return err
	}
	if err := l.append(line{Op: "put", Namespace: f.Namespace, Action: f.Name, Handout: &h, Forget: forget}); err != nil {
		return err
	}
	l.live.apply(f, &h, forget)
	l.compact()
	return nil
}

// ConfirmEpoch fails with kind Conflict when epoch is no longer f's
// leadership.
func (l *Log) ConfirmEpoch(_ context.Context, f whisk.FQN, epoch int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirm(f, epoch)
}

func (l *Log) confirm(f whisk.FQN, epoch int64) error {
	if cur := l.epochs[f]; epoch != cur {
		return whisk.Errorf(whisk.Conflict, "handout: the leadership %d of %s ended (now %d)", epoch, f, cur)
	}
	return nil
}

// DeleteHandouts forgets the hand-outs of ids.
func (l *Log) DeleteHandouts(_ context.Context, f whisk.FQN, ids []whisk.ActivationID) error {
	if len(ids) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.append(line{Op: "del", Namespace: f.Namespace, Action: f.Name, Forget: ids}); err != nil {
		return err
	}
	l.live.apply(f, nil, ids)
	l.compact()
	return nil
}

// DeposeLeader never deposes: a standalone scheduler has no followers.
func (l *Log) DeposeLeader(context.Context, whisk.FQN, whisk.LeaderInfo) (bool, error) {
	return false, nil
}

// Leftovers are the hand-outs the previous process left.
func (l *Log) Leftovers() []Leftover {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Leftover(nil), l.left...)
}

// DropLeftovers forgets the leftovers, once the caller dealt with them,
// and rewrites the file without them.
func (l *Log) DropLeftovers() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left = nil
	return l.rewrite()
}

// Close closes the file; later changes fail with kind Unavailable.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("handout: close %s: %w", l.path, err)
	}
	return nil
}
