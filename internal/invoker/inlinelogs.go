package invoker

import (
	"context"
	"time"

	"github.com/eddy-faas/eddy/internal/container"
)

// Inline logs (container.InlineLogs): the proxy asks Eddy's runtime, in
// one-at-a-time mode, to hand each run's log lines over in the run's
// answer, so that the container's log stream (on Docker, the daemon's log
// driver and the attached stream) carries nothing on the warm path. A
// runtime that confirms it in its /init answer writes no sentinels from
// then on; the proxy takes each activation's lines from its /run answer,
// or, when the run gave no answer (its time limit), asks the runtime for
// them (POST /logs) before the container is killed. A runtime that does
// not confirm it (upstream images, older images of Eddy's) is read from
// the stream with sentinels as before. The log pump keeps reading the
// stream, which now carries only what the runtime server writes outside
// any run.

// inlineWaiter is a logWaiter whose lines came with the run's answer.
type inlineWaiter struct {
	limit int64
	lines []container.LogLine
	got   bool // the answer (or POST /logs) carried the lines
}

func (w *inlineWaiter) waitLogs(time.Duration) ([]string, bool) {
	logs, _ := container.LimitLines(w.lines, w.limit)
	return logs, w.got
}

func (w *inlineWaiter) settleLogs(d, _ time.Duration) ([]string, bool) { return w.waitLogs(d) }

// takeInline gives the waiter the run's lines: from its answer, or, when
// the run had none (err: the time limit or a broken connection) and the
// container still runs, from POST /logs.
func (p *proxy) takeInline(w *inlineWaiter, resp container.Response, err error) {
	if err == nil {
		w.lines, w.got = resp.Logs, resp.Inline
		return
	}
	if p.exited(0) || p.inv.hard.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(p.inv.cfg.LogWait, 2*time.Second))
	defer cancel()
	lines, lerr := p.rt.Logs(ctx)
	if lerr != nil {
		p.log.Debug("reading the logs of a run that gave no answer failed", "err", lerr)
		return
	}
	w.lines, w.got = lines, true
}
