// Package lograte keeps repeated warnings from flooding the log: a warning
// repeated for the same cause is written at most once per interval, with
// the number of repeats it stands for ("repeats"), instead of once per
// occurrence. The places that can repeat a warning hundreds of times a
// second (the scheduler's creations while no invoker has room, the queues'
// failed creations) share one Limiter per process part.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the interval of a Limiter made with a zero interval.
const DefaultEvery = 5 * time.Second

// maxCauses bounds the causes a Limiter remembers; past it the oldest
// intervals are forgotten (their counts are then lost, never their first
// line).
const maxCauses = 1024

// Limiter rate-limits warnings by cause. Safe for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	causes map[string]*cause
}

type cause struct {
	at      time.Time // when the last line for the cause was written
	repeats int       // occurrences since, not written
}

// New is a Limiter writing each cause at most once per every (DefaultEvery
// when zero); now is the clock (time.Now when nil).
func New(every time.Duration, now func() time.Time) *Limiter {
	if every <= 0 {
		every = DefaultEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: every, now: now, causes: map[string]*cause{}}
}

// Allow reports whether a line for cause may be written now, and how many
// occurrences since the last line were not.
func (l *Limiter) Allow(key string) (repeats int, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.causes[key]
	if c == nil {
		if len(l.causes) >= maxCauses {
			for k, old := range l.causes {
				if now.Sub(old.at) >= l.every {
					delete(l.causes, k)
				}
			}
			if len(l.causes) >= maxCauses {
				clear(l.causes)
			}
		}
		l.causes[key] = &cause{at: now}
		return 0, true
	}
	if now.Sub(c.at) < l.every {
		c.repeats++
		return 0, false
	}
	n := c.repeats
	c.at, c.repeats = now, 0
	return n, true
}

// Warn writes msg at warning level on log unless a line for cause was
// written within the interval; the line carries the number of occurrences
// it stands for beyond itself ("repeats", when any).
func (l *Limiter) Warn(log *slog.Logger, key, msg string, args ...any) {
	if !log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	n, ok := l.Allow(key)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "repeats", n, "per", l.every)
	}
	log.Warn(msg, args...)
}
