// Package webui is Eddy's live web view, served by the controller at
// /eddy/ui/ (the API guards it with a namespace's key, internal/api
// ui.go): the invokers with their memory in use, the caller's queues with
// their leader and followers and their containers (idle or busy, and
// those being created), the activation rate and
// latency percentiles of the last minutes as charts, and the latest
// activations with their cold-start breakdown (queued, create, init, run).
// The page, its script and its style are embedded in the binary (no CDN);
// the script polls GET /eddy/ui/state, a JSON document made here from the
// cluster's status in etcd and the caller's activation records.
package webui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

//go:embed static
var static embed.FS

// Status reads the cluster's state from etcd (*cluster.Client has it).
type Status interface {
	Status(ctx context.Context) (whisk.ClusterStatus, error)
}

// Activations reads a namespace's records (store.Store has it).
type Activations interface {
	EachActivation(ctx context.Context, namespace string, f store.ActivationFilter, fn func(whisk.Activation) error) error
}

// Config tunes the view.
type Config struct {
	Window time.Duration // the charts' span (default 5 min)
	Bucket time.Duration // one point of the charts (default 10 s)
	Latest int           // activations listed (default 25)
	Max    int           // records read per state at most (default 5000)
}

// Deps are the view's sources.
type Deps struct {
	Status      Status
	Activations Activations
	Now         func() time.Time // nil: time.Now
}

// UI serves the web view.
type UI struct {
	cfg    Config
	d      Deps
	assets http.Handler
}

// New checks the dependencies.
func New(cfg Config, d Deps) (*UI, error) {
	if d.Status == nil || d.Activations == nil {
		return nil, errors.New("webui: Deps.Status and Deps.Activations are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Bucket <= 0 {
		cfg.Bucket = 10 * time.Second
	}
	if cfg.Latest <= 0 {
		cfg.Latest = 25
	}
	if cfg.Max <= 0 {
		cfg.Max = 5000
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	return &UI{cfg: cfg, d: d, assets: http.StripPrefix("/eddy/ui/", http.FileServerFS(sub))}, nil
}

// ServeUI serves /eddy/ui/... to an authenticated caller.
func (u *UI) ServeUI(w http.ResponseWriter, r *http.Request, caller whisk.Identity) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.TrimPrefix(r.URL.Path, "/eddy/ui/") == "state" {
		w.Header().Set("Content-Type", "application/json")
		st, err := u.State(r.Context(), caller.Namespace)
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	u.assets.ServeHTTP(w, r)
}

// State is what the page shows, as of Now.
type State struct {
	Now         int64                 `json:"now"` // epoch ms
	Namespace   string                `json:"namespace"`
	Schedulers  []whisk.SchedulerInfo `json:"schedulers"`
	Invokers    []whisk.InvokerInfo   `json:"invokers"`
	Queues      []whisk.QueueStatus   `json:"queues"` // the caller's namespace's
	Series      []Point               `json:"series"`
	BucketMs    int64                 `json:"bucketMs"`
	Activations []Recent              `json:"activations"`
}

// Point is one bucket of the charts: activations that ended in it, their
// rate, and percentiles of their latency (queued + /init + /run, ms).
type Point struct {
	At    int64   `json:"at"` // the bucket's start, epoch ms
	Count int     `json:"count"`
	Rate  float64 `json:"rate"` // per second
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
}

// Recent is one of the latest activations with its breakdown.
type Recent struct {
	ID         string        `json:"id"`
	Action     string        `json:"action"`
	Start      int64         `json:"start"`
	StatusCode int           `json:"statusCode"`
	Kind       string        `json:"startKind"` // cold, prewarm, warm
	Timings    whisk.Timings `json:"timings"`
	Total      int64         `json:"total"` // queued + duration, ms
}

// State gathers the view of namespace.
func (u *UI) State(ctx context.Context, namespace string) (State, error) {
	now := u.d.Now()
	cs, err := u.d.Status.Status(ctx)
	if err != nil {
		return State{}, err
	}
	cs = cs.ForNamespace(namespace)
	st := State{
		Now: now.UnixMilli(), Namespace: namespace, Schedulers: cs.Schedulers, Invokers: cs.Invokers,
		BucketMs: u.cfg.Bucket.Milliseconds(), Series: []Point{}, Activations: []Recent{},
		Queues: cs.Queues,
	}
	if st.Schedulers == nil {
		st.Schedulers = []whisk.SchedulerInfo{}
	}
	if st.Invokers == nil {
		st.Invokers = []whisk.InvokerInfo{}
	}
	if st.Queues == nil {
		st.Queues = []whisk.QueueStatus{}
	}
	since := now.Add(-u.cfg.Window)
	n := int(u.cfg.Window / u.cfg.Bucket)
	lat := make([][]int64, n)
	err = u.d.Activations.EachActivation(ctx, namespace, store.ActivationFilter{Since: since.UnixMilli(), Limit: u.cfg.Max},
		func(a whisk.Activation) error {
			path := a.Annotations.String(whisk.AnnPath)
			if path == "" {
				return nil // a trigger's record
			}
			var t whisk.Timings
			if raw, ok := a.Annotations.Get(whisk.AnnTimings); ok {
				_ = json.Unmarshal(raw, &t)
			}
			total := t.Queued + a.Duration
			if len(st.Activations) < u.cfg.Latest {
				st.Activations = append(st.Activations, Recent{ID: string(a.ActivationID), Action: path, Start: a.Start,
					StatusCode: a.StatusCode, Kind: t.Start, Timings: t, Total: total})
			}
			end := a.End
			if end == 0 {
				end = a.Start
			}
			if i := int((end - since.UnixMilli()) / u.cfg.Bucket.Milliseconds()); i >= 0 && i < n {
				lat[i] = append(lat[i], total)
			}
			return nil
		})
	if err != nil {
		return State{}, err
	}
	for i, l := range lat {
		p := Point{At: since.Add(time.Duration(i) * u.cfg.Bucket).UnixMilli(), Count: len(l), Rate: float64(len(l)) / u.cfg.Bucket.Seconds()}
		if len(l) > 0 {
			sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
			p.P50, p.P90, p.P99 = pct(l, 50), pct(l, 90), pct(l, 99)
		}
		st.Series = append(st.Series, p)
	}
	return st, nil
}

// pct is the p-th percentile of sorted (nearest rank).
func pct(sorted []int64, p int) int64 {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
