package memory

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-faas/eddy/internal/bus"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// The write-ahead log of a durable bus (Open): every change to the bus's
// state is an entry appended to one file, bus.wal in the bus's directory;
// Open replays it, so a bus reopened after a crash holds every record whose
// Publish returned, with every group's committed position as of its last
// logged commit.
//
// An entry is [length uint32][kind byte][payload][crc32 uint32] (big
// endian; the length counts kind and payload; the CRC, Castagnoli, covers
// them too). Replay stops at the first entry that is short or fails its
// CRC, the tail a crash in mid-write leaves, and the file is cut there.
//
// Publish waits until its entry is written to the file: from then on it
// survives the process (kill -9 included), since the kernel holds it.
// Entries are group committed: a publisher that finds nobody writing
// writes every entry waiting at that moment in one write (its own first),
// and publishers that arrive meanwhile share the next one (see wal). The file is
// synced (fsync) every syncEvery while entries were written, so a crash of
// the machine loses at most that much of what was acknowledged; with
// Options.SyncPublish a Publish waits for the sync as well (about 1.3 ms
// on this project's test machine, shared by concurrent publishers).
// Commits, topic and group entries do not wait: a commit lost in a crash
// redelivers records, which bus.go allows; a lost topic is made again by
// its next EnsureTopic, which every publisher calls first.
//
// The log is compacted when it has grown past compactAt and to more than
// four times what the bus holds: a snapshot of the state (topics, their
// first live offset, groups, live records) is written to a new file,
// synced, and renamed over the log.

// Entry kinds.
const (
	walTopic  byte = 1 // topic
	walDelete byte = 2 // topic
	walRecord byte = 3 // topic, value: the topic's next offset
	walGroup  byte = 4 // topic, group, offset: the group exists, next = offset
	walCommit byte = 5 // topic, group, offset: next = offset+1
	walBase   byte = 6 // topic, offset: an empty topic's next offset (snapshots)
	walDone   byte = 7 // topic, group, offset, value: a record the tracked group committed (snapshots)
)

// compactAt is the size past which the log is compacted (when it is also
// more than four times the live state).
const compactAt = 64 << 20

// syncEvery is how often written entries are synced when no publisher
// waits for the sync.
const syncEvery = 50 * time.Millisecond

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walEntry is one entry; done, when set, is told when it is on disk.
type walEntry struct {
	kind   byte
	topic  string
	group  string
	offset int64
	value  []byte
	done   chan error
}

func (e *walEntry) appendTo(b []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, e.kind)
	b = appendString(b, e.topic)
	switch e.kind {
	case walRecord:
		b = append(b, e.value...)
	case walGroup, walCommit:
		b = appendString(b, e.group)
		b = binary.AppendVarint(b, e.offset)
	case walDone:
		b = appendString(b, e.group)
		b = binary.AppendVarint(b, e.offset)
		b = append(b, e.value...)
	case walBase:
		b = binary.AppendVarint(b, e.offset)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start+4:], castagnoli))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry parses the kind and payload of one entry.
func decodeEntry(p []byte) (walEntry, error) {
	if len(p) < 1 {
		return walEntry{}, errors.New("empty entry")
	}
	e := walEntry{kind: p[0]}
	p = p[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	varint := func() (int64, bool) {
		v, k := binary.Varint(p)
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	var ok bool
	if e.topic, ok = str(); !ok {
		return walEntry{}, errors.New("bad topic")
	}
	switch e.kind {
	case walTopic, walDelete:
	case walRecord:
		e.value = p
	case walGroup, walCommit:
		if e.group, ok = str(); ok {
			e.offset, ok = varint()
		}
	case walDone:
		if e.group, ok = str(); ok {
			e.offset, ok = varint()
		}
		e.value = p
	case walBase:
		e.offset, ok = varint()
	default:
		return walEntry{}, fmt.Errorf("unknown entry kind %d", e.kind)
	}
	if !ok {
		return walEntry{}, fmt.Errorf("bad entry of kind %d", e.kind)
	}
	return e, nil
}

// wal appends entries to the log file. One goroutine at a time holds the
// writer's role (writing) and owns the file: a publisher that finds no
// writer takes the role and writes its own entry and whatever queued
// behind it, with no hand-off to another goroutine (a group commit led by
// the first to arrive); the log's own goroutine (run) takes it to sync,
// to write entries nobody waits for, and to compact.
type wal struct {
	log  *slog.Logger
	path string

	mu      sync.Mutex
	cond    *sync.Cond  // on mu: writing became false
	queue   []*walEntry // waiting for a writer
	writing bool        // a goroutine holds the writer's role
	closing bool
	stop    chan struct{} // closed by close: run returns
	done    chan struct{} // closed when run returned

	compactAt   int64        // the log size that makes compaction due (compactAt)
	compactions atomic.Int64 // done so far, for tests
	syncWait    bool         // Options.SyncPublish: publishes wait for fsync

	// Owned by the writer's role (and by Open before run starts).
	f     *os.File
	size  int64
	buf   []byte
	dirty bool  // written since the last sync
	err   error // the first write or sync failure: every later append fails
}

// append queues e; when e.done is set, the writer tells it once e is
// written. Called with the entry's topic lock held, so a topic's entries
// keep their order. Nobody writes e until flush (or run) does.
func (w *wal) append(e *walEntry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return whisk.E("memory.wal", whisk.Unavailable, "", errors.New("bus closed"))
	}
	w.queue = append(w.queue, e)
	return nil
}

// flush writes the queue unless another goroutine holds the writer's
// role, in which case that one writes it (it writes until the queue is
// empty).
func (w *wal) flush() {
	w.mu.Lock()
	if w.writing {
		w.mu.Unlock()
		return
	}
	w.writing = true
	w.drainLocked()
	w.writing = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// drainLocked writes queued entries until none is left; called with mu
// held and the writer's role, it releases mu while it writes.
func (w *wal) drainLocked() {
	for len(w.queue) > 0 {
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		w.write(batch)
		w.mu.Lock()
	}
}

// acquire waits for the writer's role and takes it; release gives it back
// after writing what queued meanwhile.
func (w *wal) acquire() {
	w.mu.Lock()
	for w.writing {
		w.cond.Wait()
	}
	w.writing = true
	w.mu.Unlock()
}

func (w *wal) release() {
	w.mu.Lock()
	w.drainLocked()
	w.writing = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// run syncs written entries every syncEvery (writing those nobody waited
// for first) and compacts the log of b when it is due, until close.
func (w *wal) run(b *Bus) {
	defer close(w.done)
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			w.acquire()
			w.mu.Lock()
			w.drainLocked()
			w.mu.Unlock()
			w.sync()
			w.f.Close()
			return // keeps the writer's role: nothing is written after close
		case <-tick.C:
		}
		w.acquire()
		w.mu.Lock()
		w.drainLocked()
		w.mu.Unlock()
		w.sync()
		if w.err == nil && w.size >= w.compactAt && w.size >= 4*b.liveBytes() {
			b.compactLog()
		}
		w.release()
	}
}

// write appends a batch, synced when Options.SyncPublish asks for it
// and a publisher waits for it.
func (w *wal) write(batch []*walEntry) {
	if len(batch) == 0 {
		return
	}
	wait := false
	w.buf = w.buf[:0]
	for _, e := range batch {
		w.buf = e.appendTo(w.buf)
		wait = wait || e.done != nil
	}
	if w.err == nil {
		n, err := w.f.Write(w.buf)
		w.size += int64(n)
		w.dirty = true
		if err != nil {
			w.fail(err)
		} else if wait && w.syncWait {
			w.sync()
		}
	}
	for _, e := range batch {
		if e.done != nil {
			e.done <- w.err
		}
	}
	if cap(w.buf) > 4<<20 {
		w.buf = nil
	}
}

// sync flushes written entries to the disk.
func (w *wal) sync() {
	if !w.dirty || w.err != nil {
		return
	}
	w.dirty = false
	if err := w.f.Sync(); err != nil {
		w.fail(err)
	}
}

// fail records the first failure: every later publish fails with it.
func (w *wal) fail(err error) {
	w.err = whisk.E("memory.wal", whisk.Unavailable, "", fmt.Errorf("write-ahead log %s: %w", w.path, err))
	w.log.Error("bus write-ahead log failed: publishing fails from now on", "path", w.path, "err", err)
}

// compact writes snap to a new file, syncs it and renames it over the
// log; false when it failed (the log is then as it was).
func (w *wal) compact(snap []*walEntry) bool {
	tmp := w.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		w.log.Warn("bus log compaction failed", "err", err)
		return false
	}
	var b []byte
	for _, e := range snap {
		b = e.appendTo(b)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(w.path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		w.log.Warn("bus log compaction failed", "err", err)
		return false
	}
	old := w.f
	w.f, w.size, w.dirty = f, int64(len(b)), false
	old.Close()
	w.compactions.Add(1)
	w.log.Debug("bus log compacted", "bytes", w.size, "entries", len(snap))
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// close writes what is queued, syncs and closes the file: appends fail
// from then on.
func (w *wal) close() {
	w.mu.Lock()
	first := !w.closing
	w.closing = true
	w.mu.Unlock()
	if first {
		close(w.stop)
	}
	<-w.done
}

// readLog replays the log at path through apply and returns the length of
// its intact prefix.
func readLog(path string, apply func(walEntry)) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	var hdr [4]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return good, nil // the end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 1 || n > 1<<30 {
			return good, nil
		}
		if cap(body) < int(n)+4 {
			body = make([]byte, n+4)
		}
		body = body[:n+4]
		if _, err := io.ReadFull(r, body); err != nil {
			return good, nil
		}
		if crc32.Checksum(body[:n], castagnoli) != binary.BigEndian.Uint32(body[n:]) {
			return good, nil
		}
		e, err := decodeEntry(body[:n])
		if err != nil {
			return good, nil
		}
		if e.kind == walRecord || e.kind == walDone {
			e.value = append([]byte(nil), e.value...)
		}
		apply(e)
		good += int64(n) + 8
	}
}

// Options tunes a durable bus.
type Options struct {
	// Wait, when set, names the topics whose Publish waits for its record
	// to be written (and synced, with SyncPublish); on other topics a
	// Publish returns at once, and its record is written with the next
	// batch (a crash may lose it). Nil: every topic waits.
	Wait func(topic string) bool
	// Track names a group whose committed records the bus remembers (the
	// last trackDone of them, across restarts): Done returns them.
	Track string
	// SyncPublish makes every Publish wait until its record is synced to
	// the disk (fsync), not only written to the file: then a crash of the
	// machine, not only of the process, loses no acknowledged record.
	SyncPublish bool
}

// Open opens the durable bus kept in dir (created 0700 when missing): its
// write-ahead log is replayed, and every Publish returns only once its
// record is written to the log (see the comment at the top of wal.go).
// Close stops the log's writer; the bus can be opened again from dir.
func Open(dir string, log *slog.Logger, opts Options) (*Bus, error) {
	const op = "memory.Open"
	b := New(log)
	b.track = opts.Track
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, whisk.E(op, whisk.Internal, "", err)
	}
	path := filepath.Join(dir, "bus.wal")
	good, err := readLog(path, b.replay)
	if err != nil {
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("read %s: %w", path, err))
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, whisk.E(op, whisk.Internal, "", err)
	}
	// Cut a torn tail, then append after the intact entries.
	err = f.Truncate(good)
	if err == nil {
		_, err = f.Seek(good, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, whisk.E(op, whisk.Internal, "", fmt.Errorf("prepare %s: %w", path, err))
	}
	b.wait = opts.Wait
	w := &wal{log: b.log, path: path, stop: make(chan struct{}), done: make(chan struct{}), f: f, size: good, compactAt: compactAt, syncWait: opts.SyncPublish}
	w.cond = sync.NewCond(&w.mu)
	b.wal = w
	records, topics := b.stats()
	b.log.Info("bus log replayed", "path", path, "bytes", good, "topics", topics, "records", records)
	go w.run(b)
	return b, nil
}

// replay applies one entry of the log to the bus (before any other use).
func (b *Bus) replay(e walEntry) {
	t := b.topics[e.topic]
	if e.kind == walTopic {
		if t == nil {
			b.topics[e.topic] = &topic{b: b, name: e.topic, groups: map[string]*group{}}
		}
		return
	}
	if t == nil {
		// Entries of a deleted topic that raced its deletion.
		return
	}
	switch e.kind {
	case walDelete:
		delete(b.topics, e.topic)
	case walRecord:
		t.values = append(t.values, e.value)
	case walBase:
		t.base = e.offset
	case walGroup:
		if _, ok := t.groups[e.group]; !ok {
			t.groups[e.group] = &group{next: e.offset}
		}
	case walCommit:
		g := t.groups[e.group]
		if g == nil {
			g = &group{next: t.base}
			t.groups[e.group] = g
		}
		if e.offset >= g.next && e.offset < t.end() {
			b.noteDone(t, e.group, g.next, e.offset)
			g.next = e.offset + 1
			t.trim()
		}
	case walDone:
		if e.group == b.track {
			b.done.push(bus.Record{Topic: e.topic, Offset: e.offset, Value: e.value})
		}
	}
}

// stats counts the live records and the topics.
func (b *Bus) stats() (records, topics int) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range b.topics {
		t.mu.Lock()
		records += len(t.values) - t.head
		t.mu.Unlock()
	}
	return records, len(b.topics)
}

// liveBytes is about what the bus's live records take in a log.
func (b *Bus) liveBytes() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n int64
	for _, t := range b.topics {
		t.mu.Lock()
		for _, v := range t.values[t.head:] {
			n += int64(len(v)) + 32
		}
		t.mu.Unlock()
	}
	return n
}

// compactLog replaces the log with a snapshot of the bus's state, from the
// log's writer goroutine. Every change to the bus is queued for the log
// under the bus's lock or a topic's, so with all of them held the state
// is exactly what the written log plus the queued entries make: the
// snapshot replaces both, and the queued entries' waiters are told once
// the snapshot is on disk. Publishes wait meanwhile.
//
// Once Bus.Close has marked the bus closed it has let go of the state (its
// topics are gone) while the log still holds it: a tick that comes between
// then and the log's close leaves the log alone, since a snapshot now would
// be of an empty bus and would replace every topic and record in the log.
func (b *Bus) compactLog() {
	w := b.wal
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	for _, t := range b.topics {
		t.mu.Lock()
	}
	w.mu.Lock()
	pending := w.queue
	w.queue = nil
	w.mu.Unlock()
	var snap []*walEntry
	for _, t := range b.topics {
		snap = append(snap, &walEntry{kind: walTopic, topic: t.name})
	}
	for _, r := range b.Done() {
		if b.topics[r.Topic] != nil {
			snap = append(snap, &walEntry{kind: walDone, topic: r.Topic, group: b.track, offset: r.Offset, value: r.Value})
		}
	}
	for _, t := range b.topics {
		snap = append(snap, &walEntry{kind: walBase, topic: t.name, offset: t.base})
		for name, g := range t.groups {
			snap = append(snap, &walEntry{kind: walGroup, topic: t.name, group: name, offset: g.next})
		}
		for _, v := range t.values[t.head:] {
			snap = append(snap, &walEntry{kind: walRecord, topic: t.name, value: v})
		}
	}
	for _, t := range b.topics {
		t.mu.Unlock()
	}
	b.mu.Unlock()
	if !w.compact(snap) {
		w.write(pending) // the old log goes on
		return
	}
	for _, e := range pending {
		if e.done != nil {
			e.done <- nil
		}
	}
}

// logged appends an entry that nobody waits for; with no log it does
// nothing. Called with the topic's lock held.
func (b *Bus) logged(e *walEntry) error {
	if b.wal == nil {
		return nil
	}
	return b.wal.append(e)
}

// logPublish appends a record's entry and returns a wait for its sync;
// with no log, nil. Called with the topic's lock held.
func (b *Bus) logPublish(topic string, value []byte) (func(ctx context.Context) error, error) {
	if b.wal == nil {
		return nil, nil
	}
	if b.wait != nil && !b.wait(topic) {
		return nil, b.wal.append(&walEntry{kind: walRecord, topic: topic, value: value})
	}
	e := &walEntry{kind: walRecord, topic: topic, value: value, done: make(chan error, 1)}
	if err := b.wal.append(e); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		b.wal.flush()
		select {
		case err := <-e.done:
			return err
		case <-ctx.Done():
			// The record is in the bus and will be on disk with the next
			// sync, unless the process dies first.
			return ctx.Err()
		}
	}, nil
}

// Backlog returns, for each topic that holds records group has not
// committed (or, when group never subscribed, any record), the first such
// record: after a restart of a durable bus, the topics whose consumers
// must be started again for the records to be read.
func (b *Bus) Backlog(group string) []bus.Record {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []bus.Record
	for _, t := range b.topics {
		t.mu.Lock()
		next := t.base
		if g := t.groups[group]; g != nil {
			next = max(g.next, t.base)
		}
		if next < t.end() {
			out = append(out, bus.Record{Topic: t.name, Offset: next, Value: t.values[t.head+int(next-t.base)]})
		}
		t.mu.Unlock()
	}
	return out
}

// trackDone is how many committed records of the tracked group a bus
// remembers (Options.Track).
const trackDone = 4096

// doneRing holds the last records the tracked group committed, oldest
// first; guarded by Bus.doneMu (and owned by Open during replay).
type doneRing struct {
	recs []bus.Record
	next int // where the next record goes, once full
}

func (r *doneRing) push(rec bus.Record) {
	if len(r.recs) < trackDone {
		r.recs = append(r.recs, rec)
		return
	}
	r.recs[r.next] = rec
	r.next = (r.next + 1) % trackDone
}

func (r *doneRing) records() []bus.Record {
	out := make([]bus.Record, 0, len(r.recs))
	out = append(out, r.recs[r.next:]...)
	return append(out, r.recs[:r.next]...)
}

// noteDone remembers the records from..upto of t that group committed,
// when group is the tracked one. Called with t's lock held (or in replay).
func (b *Bus) noteDone(t *topic, group string, from, upto int64) {
	if group != b.track || b.track == "" {
		return
	}
	b.doneMu.Lock()
	defer b.doneMu.Unlock()
	for off := max(from, t.base); off <= upto && off < t.end(); off++ {
		b.done.push(bus.Record{Topic: t.name, Offset: off, Value: t.values[t.head+int(off-t.base)]})
	}
}

// Done returns the last records (at most 4,096) that the group named by
// Options.Track committed, oldest first, including those committed before
// the bus was last opened: what a queue had handed out when the process
// stopped, for a restart to find those that never finished.
func (b *Bus) Done() []bus.Record {
	b.doneMu.Lock()
	defer b.doneMu.Unlock()
	return b.done.records()
}
