// Package api is Eddy's OpenWhisk-compatible REST API: the system info
// routes, namespaces, actions (create, update, get, delete, list, invoke)
// and activations (list, get, logs, result), with OpenWhisk's JSON shapes,
// status codes and messages, so that the unmodified wsk CLI works against
// Eddy (shared/reference/openwhisk-interfaces.md §1 and §3).
//
// Every error response is {"error": <message>, "code": <transaction id>}
// with the status of the error's whisk.Kind, written by one function
// (writeError). Request bodies are always read through http.MaxBytesReader.
// The handler answers OPTIONS for CORS and recovers panics into a 500 in the
// error shape.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Config configures the API.
type Config struct {
	// Build and BuildNo are reported by GET /api/v1.
	Build   string
	BuildNo string
	// Limits bound action limits, payloads and code, and are reported by
	// GET / (zero: whisk.DefaultSystemLimits()).
	Limits whisk.SystemLimits
}

// Store is what the API needs of the store (store.Store has it).
type Store interface {
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error)
	DeleteAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error)
	CountActions(ctx context.Context, namespace string) (int, error)
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
	ListActivations(ctx context.Context, namespace string, f store.ActivationFilter) ([]whisk.Activation, error)
	CountActivations(ctx context.Context, namespace string, f store.ActivationFilter) (int, error)
}

// Invoker runs invocations (*controller.Controller has it).
type Invoker interface {
	Invoke(ctx context.Context, req controller.Request) (controller.Result, error)
}

// Runtimes is what the API needs of the runtime manifest (*manifest.Manifest has it).
type Runtimes interface {
	Resolve(kind string) (string, error)
	Kinds() []string
	Describe() map[string][]manifest.Runtime
	DefaultImage() string
}

// Topics creates and deletes action topics (bus.Bus has it).
type Topics interface {
	EnsureTopic(ctx context.Context, topic string) error
	DeleteTopic(ctx context.Context, topic string) error
}

// Status reads the cluster's state from etcd (*cluster.Client has it).
type Status interface {
	Status(ctx context.Context) (whisk.ClusterStatus, error)
}

// Deps are the API's collaborators. Store, Invoker, Runtimes and Topics are
// required (New panics without them: a wiring bug).
type Deps struct {
	Log      *slog.Logger // nil: discard
	Store    Store
	Invoker  Invoker
	Runtimes Runtimes
	Topics   Topics
	// Status serves GET /eddy/v1/status; nil: that route is a 404.
	Status Status
	// Events and Firer serve triggers and rules; nil: those routes are 404s.
	Events Events
	Firer  Firer
	Now    func() time.Time // nil: time.Now
}

// server holds the routes and their collaborators.
type server struct {
	cfg    Config
	log    *slog.Logger
	store  Store
	inv    Invoker
	rt     Runtimes
	topics Topics
	status Status
	events Events
	firer  Firer
	limits whisk.SystemLimits
	now    func() time.Time
	mux    *http.ServeMux
}

// New builds the API handler.
func New(cfg Config, deps Deps) http.Handler {
	if deps.Store == nil || deps.Invoker == nil || deps.Runtimes == nil || deps.Topics == nil {
		panic("api.New: Deps.Store, Invoker, Runtimes and Topics are required")
	}
	s := &server{
		cfg: cfg, log: deps.Log, store: deps.Store, inv: deps.Invoker, rt: deps.Runtimes,
		topics: deps.Topics, status: deps.Status, limits: cfg.Limits, now: deps.Now,
		events: deps.Events, firer: deps.Firer,
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.limits == (whisk.SystemLimits{}) {
		s.limits = whisk.DefaultSystemLimits()
	}
	s.routes()
	return s
}

func (s *server) routes() {
	m := http.NewServeMux()
	s.mux = m
	m.Handle("/{$}", s.open(map[string]handlerFunc{http.MethodGet: s.getRoot}))
	info := s.open(map[string]handlerFunc{http.MethodGet: s.getAPIInfo})
	m.Handle("/api/v1", info)
	m.Handle("/api/v1/{$}", info)
	nss := s.authed(map[string]authedFunc{http.MethodGet: s.listNamespaces})
	m.Handle("/api/v1/namespaces", nss)
	m.Handle("/api/v1/namespaces/{$}", nss)
	m.Handle("/api/v1/namespaces/{ns}/limits", s.authed(map[string]authedFunc{http.MethodGet: s.getLimits}))
	m.Handle("/api/v1/namespaces/{ns}/actions", s.authed(map[string]authedFunc{http.MethodGet: s.listActions}))
	m.Handle("/api/v1/namespaces/{ns}/actions/{name...}", s.authed(map[string]authedFunc{
		http.MethodGet:    s.getAction,
		http.MethodPut:    s.putAction,
		http.MethodDelete: s.deleteAction,
		http.MethodPost:   s.invokeAction,
	}))
	m.Handle("/api/v1/namespaces/{ns}/activations", s.authed(map[string]authedFunc{http.MethodGet: s.listActivations}))
	m.Handle("/api/v1/namespaces/{ns}/activations/{id}", s.authed(map[string]authedFunc{http.MethodGet: s.getActivation}))
	m.Handle("/api/v1/namespaces/{ns}/activations/{id}/logs", s.authed(map[string]authedFunc{http.MethodGet: s.getActivationLogs}))
	m.Handle("/api/v1/namespaces/{ns}/activations/{id}/result", s.authed(map[string]authedFunc{http.MethodGet: s.getActivationResult}))
	if s.events != nil && s.firer != nil {
		s.eventRoutes(m)
	}
	if s.status != nil {
		// Eddy's own: not part of the OpenWhisk API, any valid key may read it.
		m.Handle("/eddy/v1/status", s.authed(map[string]authedFunc{http.MethodGet: s.getStatus}))
	}
	m.Handle("/", s.open(nil)) // everything else: 404
}

// handlerFunc serves a route; a returned error is written by writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// authedFunc serves an authenticated, entitled route; it acts in the
// caller's namespace ("_" and the caller's own name both mean it).
type authedFunc func(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error

// open serves a route without authentication; a nil map is an unknown route.
func (s *server) open(methods map[string]handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if methods == nil {
			s.writeError(w, r, whisk.E("api.route", whisk.NotFound, whisk.MsgNotFound, nil))
			return
		}
		h, ok := methods[r.Method]
		if !ok {
			s.methodNotAllowed(w, r, keys(methods))
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authed serves a route that needs credentials and, when the route has a
// {ns}, entitlement to the namespace.
func (s *server) authed(methods map[string]authedFunc) http.Handler {
	allowed := keys(methods)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := methods[r.Method]
		if !ok {
			s.methodNotAllowed(w, r, allowed)
			return
		}
		caller, err := s.authenticate(r)
		if err == nil {
			err = entitled(caller, r.PathValue("ns"))
		}
		if err == nil {
			err = h(w, r, caller)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	// No whisk.Kind means 405; it is the one status not derived from a kind.
	s.writeStatus(w, r, http.StatusMethodNotAllowed, whisk.MsgMethodNotAllowed, nil)
}
