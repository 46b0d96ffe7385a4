package api

import (
	"net/http"
	"strings"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// authenticate checks HTTP Basic "uuid:key" against the store.
func (s *server) authenticate(r *http.Request) (whisk.Identity, error) {
	const op = "api.authenticate"
	if r.Header.Get("Authorization") == "" {
		return whisk.Identity{}, whisk.E(op, whisk.Unauthorized, whisk.MsgAuthMissing, nil)
	}
	uuid, key, ok := r.BasicAuth()
	if !ok || uuid == "" {
		return whisk.Identity{}, whisk.E(op, whisk.Unauthorized, whisk.MsgAuthInvalid, nil)
	}
	id, err := s.store.IdentityByUUID(r.Context(), uuid)
	if whisk.IsKind(err, whisk.NotFound) {
		return whisk.Identity{}, whisk.E(op, whisk.Unauthorized, whisk.MsgAuthInvalid, err)
	}
	if err != nil {
		return whisk.Identity{}, err
	}
	// The store keeps only the hash: the caller's own key comes from the
	// request (an action annotated provide-api-key receives it).
	if !id.Authenticate(key) {
		return whisk.Identity{}, whisk.E(op, whisk.Unauthorized, whisk.MsgAuthInvalid, nil)
	}
	return id, nil
}

// entitled checks that the caller may act in the route's namespace: "_"
// (or no namespace in the route) is the caller's own; any other must be
// it. The refusal names the resource as OpenWhisk does: 'ns' for a
// collection, 'ns/entity' for an entity.
func entitled(caller whisk.Identity, r *http.Request) error {
	ns := r.PathValue("ns")
	if ns == "" || ns == whisk.DefaultNamespace || ns == caller.Namespace {
		return nil
	}
	return whisk.E("api.entitled", whisk.Forbidden, whisk.MsgNotAuthorized(resourceName(r)), nil)
}

// resourceName is the route's resource as OpenWhisk's messages name it:
// "ns", or "ns/entity" ("ns/pkg/name" for a packaged action).
func resourceName(r *http.Request) string {
	res := r.PathValue("ns")
	for _, v := range []string{"name", "id"} {
		if e := strings.TrimSuffix(r.PathValue(v), "/"); e != "" {
			return res + "/" + e
		}
	}
	return res
}

// routeNamespace is the route's namespace, "_" resolved to the caller's.
func routeNamespace(caller whisk.Identity, r *http.Request) string {
	return catalog.Namespace(caller.Namespace, r.PathValue("ns"))
}

// getRoot is GET /: what the platform is, its limits and its runtimes.
func (s *server) getRoot(w http.ResponseWriter, r *http.Request) error {
	l := s.limits
	const mb = 1024 * 1024
	writeJSON(w, http.StatusOK, map[string]any{
		"description": "Eddy, a serverless platform that speaks the OpenWhisk API",
		"support":     map[string]string{"github": "https://github.com/eddy-faas/eddy/issues"},
		"api_paths":   []string{"/api/v1"},
		"limits": map[string]any{
			"actions_per_minute":      l.InvocationsPerMinute,
			"triggers_per_minute":     l.FiresPerMinute,
			"concurrent_actions":      l.ConcurrentContainers,
			"sequence_length":         50,
			"min_action_duration":     l.MinTimeout,
			"max_action_duration":     l.MaxTimeout,
			"default_action_duration": l.DefaultTimeout,
			"min_action_memory":       l.MinMemory * mb,
			"max_action_memory":       l.MaxMemory * mb,
			"default_action_memory":   l.DefaultMemory * mb,
			"min_action_logs":         l.MinLogs * mb,
			"max_action_logs":         l.MaxLogs * mb,
			"default_action_logs":     l.DefaultLogs * mb,
			"max_action_concurrency":  l.MaxConcurrency,
			"max_payload":             l.MaxPayload,
		},
		"runtimes": s.rt.Describe(),
	})
	return nil
}

// getAPIInfo is GET /api/v1.
func (s *server) getAPIInfo(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{
		"description":      "OpenWhisk API",
		"api_version":      "1.0.0",
		"api_version_path": "v1",
		"build":            s.cfg.Build,
		"buildno":          s.cfg.BuildNo,
	})
	return nil
}

// listNamespaces is GET /api/v1/namespaces: the caller's namespace.
func (s *server) listNamespaces(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	writeJSON(w, http.StatusOK, []string{caller.Namespace})
	return nil
}

// getLimits is GET /api/v1/namespaces/{ns}/limits: the namespace's
// effective limits.
func (s *server) getLimits(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	l := caller.Limits.Effective(s.limits)
	writeJSON(w, http.StatusOK, map[string]any{
		"invocationsPerMinute":  l.InvocationsPerMinute,
		"concurrentInvocations": l.ConcurrentContainers,
		"firesPerMinute":        l.FiresPerMinute,
		"minActionMemory":       s.limits.MinMemory * 1024 * 1024,
		"maxActionMemory":       s.limits.MaxMemory * 1024 * 1024,
		"minActionTimeout":      s.limits.MinTimeout,
		"maxActionTimeout":      s.limits.MaxTimeout,
		"minActionLogSize":      s.limits.MinLogs * 1024 * 1024,
		"maxActionLogSize":      s.limits.MaxLogs * 1024 * 1024,
		"maxActionConcurrency":  s.limits.MaxConcurrency,
	})
	return nil
}

// getStatus is GET /eddy/v1/status: the cluster as etcd shows it
// (whisk.ClusterStatus). Any authenticated caller may read it; the queues
// listed are those of its namespace.
func (s *server) getStatus(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	st, err := s.status.Status(r.Context())
	if err != nil {
		return whisk.E("api.status", whisk.Unavailable, "", err)
	}
	// A key sees its own namespace only (eddy status --etcd shows all).
	writeJSON(w, http.StatusOK, st.ForNamespace(caller.Namespace))
	return nil
}
