// Package api is Eddy's OpenWhisk-compatible REST API: the system info
// routes, namespaces, packages and bindings, actions (create, update, get,
// delete, list, invoke; packaged ones too), activations (list, get, logs,
// result), triggers and rules, web actions (/api/v1/web, docs/webactions.md)
// and the built-in API gateway (the apimgmt web actions answered natively,
// /api/{tenant}/... routes), with OpenWhisk's JSON shapes, status codes and
// messages, so that the unmodified wsk CLI works against Eddy. Who may read
// or invoke what across namespaces is internal/catalog's.
//
// Every error response is {"error": <message>, "code": <transaction id>}
// with the status of the error's whisk.Kind, written by one function
// (writeError). Request bodies are always read through http.MaxBytesReader.
// The handler answers OPTIONS for CORS and recovers panics into a 500 in the
// error shape.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/catalog"
	"golang.org/x/sync/semaphore"

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
	// GatewayURL is the base of the URLs of APIs created with `wsk api
	// create` (e.g. https://api.example.com); "" means the scheme and host
	// each request came to.
	GatewayURL string
	// BodyBudget bounds the bytes of large request bodies being handled
	// at once (0: DefaultBodyBudget); see bodyCost.
	BodyBudget int64
}

// Store is what the API needs of the store (store.Store has it).
type Store interface {
	IdentityByUUID(ctx context.Context, uuid string) (whisk.Identity, error)
	ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error)
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	PutAction(ctx context.Context, a whisk.Action, expectRev int64) (whisk.Action, error)
	DeleteAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	ListActions(ctx context.Context, namespace string, skip, limit int) ([]whisk.Action, error)
	CountActions(ctx context.Context, namespace string) (int, error)
	ListPackageActions(ctx context.Context, namespace, pkg string, skip, limit int) ([]whisk.Action, error)
	CountPackageActions(ctx context.Context, namespace, pkg string) (int, error)
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error)
	ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error)
	CountEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) (int, error)
	GetActivation(ctx context.Context, namespace string, id whisk.ActivationID) (whisk.Activation, error)
	EachActivation(ctx context.Context, namespace string, f store.ActivationFilter, fn func(whisk.Activation) error) error
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

// Deps are the API's collaborators. Store, Catalog, Invoker, Runtimes and
// Topics are required (New returns an error without them).
type Deps struct {
	Log   *slog.Logger // nil: discard
	Store Store
	// Catalog resolves names through packages and bindings, with
	// entitlement: for the entity routes, sequence components and web
	// actions. The process builds one and shares it with the controller
	// and the trigger service.
	Catalog  *catalog.Catalog
	Invoker  Invoker
	Runtimes Runtimes
	Topics   Topics
	// Status serves GET /eddy/v1/status; nil: that route is a 404.
	Status Status
	// UI serves the live web view under /eddy/ui/ (ui.go); nil: 404.
	UI UI
	// Builtins serves the built-in actions (builtin.go); nil: none.
	// Records writes their activation records.
	Builtins Builtins
	Records  Records
	// Events and Firer serve triggers and rules; nil: those routes are 404s.
	Events Events
	Firer  Firer
	// APIDocs stores the API gateway's documents; nil: no API gateway
	// (its routes are 404s).
	APIDocs APIDocs
	// Draining, when set and true, makes the API refuse new work
	// (invocations, trigger fires, web actions and API routes) with 503
	// and Retry-After, while everything else is served: the process is
	// stopping and lets what it accepted finish.
	Draining func() bool
	Now      func() time.Time // nil: time.Now
}

// server holds the routes and their collaborators.
type server struct {
	cfg    Config
	log    *slog.Logger
	store  Store
	cat    *catalog.Catalog // names through packages and bindings, entitlement
	inv    Invoker
	rt     Runtimes
	topics Topics
	status Status
	ui     UI
	events Events
	firer  Firer
	limits whisk.SystemLimits
	now    func() time.Time
	mux    *http.ServeMux

	owners   owners
	apiDocs  APIDocs
	gwRoutes routeCache

	builtins Builtins
	records  Records

	draining   func() bool
	bodyBudget int64
	bodies     *semaphore.Weighted // of bodyBudget bytes
}

// New builds the API handler; a missing required dependency is an error.
func New(cfg Config, deps Deps) (http.Handler, error) {
	var missing []string
	for _, d := range []struct {
		name string
		ok   bool
	}{
		{"Store", deps.Store != nil}, {"Catalog", deps.Catalog != nil}, {"Invoker", deps.Invoker != nil},
		{"Runtimes", deps.Runtimes != nil}, {"Topics", deps.Topics != nil},
	} {
		if !d.ok {
			missing = append(missing, d.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api.New: Deps.%s required", strings.Join(missing, ", Deps."))
	}
	if (deps.Events == nil) != (deps.Firer == nil) {
		return nil, errors.New("api.New: Deps.Events and Deps.Firer go together")
	}
	s := &server{
		cfg: cfg, log: deps.Log, store: deps.Store, cat: deps.Catalog, inv: deps.Invoker, rt: deps.Runtimes,
		topics: deps.Topics, status: deps.Status, ui: deps.UI, draining: deps.Draining, limits: cfg.Limits, now: deps.Now,
		builtins: deps.Builtins, records: deps.Records,
		events: deps.Events, firer: deps.Firer,
		owners:  owners{m: map[string]ownerEntry{}},
		apiDocs: deps.APIDocs, gwRoutes: routeCache{m: map[string]routeEntry{}},
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
	s.bodyBudget = cfg.BodyBudget
	if s.bodyBudget <= 0 {
		s.bodyBudget = DefaultBodyBudget
	}
	s.bodies = semaphore.NewWeighted(s.bodyBudget)
	s.routes()
	return s, nil
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
	// Actions and packages of other namespaces may be read and invoked
	// when shared: these routes check entitlement per entity (catalog).
	m.Handle("/api/v1/namespaces/{ns}/actions/{name...}", s.authedShared(map[string]authedFunc{
		http.MethodGet:    s.getAction,
		http.MethodPut:    s.ownerOnly(s.putAction),
		http.MethodDelete: s.ownerOnly(s.deleteAction),
		http.MethodPost:   s.invokeAction,
	}))
	m.Handle("/api/v1/namespaces/{ns}/packages", s.authedShared(map[string]authedFunc{http.MethodGet: s.listPackages}))
	m.Handle("/api/v1/namespaces/{ns}/packages/{name}", s.authedShared(map[string]authedFunc{
		http.MethodGet:    s.getPackage,
		http.MethodPut:    s.ownerOnly(s.putPackage),
		http.MethodDelete: s.ownerOnly(s.deletePackage),
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
	if s.ui != nil {
		m.Handle("/eddy/ui/", s.uiRoute())
	}
	s.builtinRoutes(m)
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
		h, ok := methods[headAsGet(r.Method)]
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
		h, ok := methods[headAsGet(r.Method)]
		if !ok {
			s.methodNotAllowed(w, r, allowed)
			return
		}
		caller, err := s.authenticate(r)
		if err == nil {
			err = entitled(caller, r)
		}
		if err == nil {
			err = h(w, r, caller)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authedShared serves a route that needs credentials but checks
// entitlement itself (entities of other namespaces may be shared).
func (s *server) authedShared(methods map[string]authedFunc) http.Handler {
	allowed := keys(methods)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := methods[headAsGet(r.Method)]
		if !ok {
			s.methodNotAllowed(w, r, allowed)
			return
		}
		caller, err := s.authenticate(r)
		if err == nil {
			err = h(w, r, caller)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ownerOnly wraps a handler of an authedShared route that only the
// namespace's owner may use (writes).
func (s *server) ownerOnly(h authedFunc) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
		if err := entitled(caller, r); err != nil {
			return err
		}
		return h(w, r, caller)
	}
}

// headAsGet serves HEAD as GET, as OpenWhisk's akka-http does for every
// GET route (transparent HEAD requests): the same status and headers;
// net/http drops the body of an answer to HEAD.
func headAsGet(method string) string {
	if method == http.MethodHead {
		return http.MethodGet
	}
	return method
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
