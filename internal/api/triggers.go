package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/eddy-faas/eddy/internal/events"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Events keeps triggers and rules (*events.Service has it).
type Events interface {
	GetTrigger(ctx context.Context, ns, name string) (whisk.Trigger, error)
	PutTrigger(ctx context.Context, ns, name string, put events.TriggerPut, overwrite bool) (whisk.Trigger, error)
	DeleteTrigger(ctx context.Context, ns, name string) (whisk.Trigger, error)
	ListTriggers(ctx context.Context, ns string, skip, limit int) ([]whisk.Trigger, error)
	CountTriggers(ctx context.Context, ns string) (int, error)

	GetRule(ctx context.Context, ns, name string) (whisk.Rule, error)
	PutRule(ctx context.Context, caller whisk.Identity, name string, put events.RulePut, overwrite bool) (whisk.Rule, error)
	SetRuleStatus(ctx context.Context, ns, name, status string) error
	DeleteRule(ctx context.Context, ns, name string) (whisk.Rule, error)
	ListRules(ctx context.Context, ns string, skip, limit int) ([]whisk.Rule, error)
	CountRules(ctx context.Context, ns string) (int, error)
}

// Firer fires triggers (*events.Firer has it); the API passes no
// activation id, so each fire gets a new one.
type Firer interface {
	Fire(ctx context.Context, caller whisk.Identity, namespace, trigger string, payload json.RawMessage, headers map[string]string, id whisk.ActivationID) (whisk.ActivationID, error)
}

// eventRoutes adds the trigger and rule routes (docs/events.md).
func (s *server) eventRoutes(m *http.ServeMux) {
	m.Handle("/api/v1/namespaces/{ns}/triggers", s.authed(map[string]authedFunc{http.MethodGet: s.listTriggers}))
	m.Handle("/api/v1/namespaces/{ns}/triggers/{name...}", s.authed(map[string]authedFunc{
		http.MethodGet:    s.getTrigger,
		http.MethodPut:    s.putTrigger,
		http.MethodDelete: s.deleteTrigger,
		http.MethodPost:   s.fireTrigger,
	}))
	m.Handle("/api/v1/namespaces/{ns}/rules", s.authed(map[string]authedFunc{http.MethodGet: s.listRules}))
	m.Handle("/api/v1/namespaces/{ns}/rules/{name...}", s.authed(map[string]authedFunc{
		http.MethodGet:    s.getRule,
		http.MethodPut:    s.putRule,
		http.MethodDelete: s.deleteRule,
		http.MethodPost:   s.setRuleStatus,
	}))
}

// entityName validates the {name} of a trigger or rule route: triggers and
// rules are never in packages, so a name with a '/' names nothing.
func entityName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if strings.Contains(name, "/") {
		return "", whisk.E("api.entityName", whisk.NotFound, whisk.MsgNotFound, nil)
	}
	if !whisk.ValidName(name) {
		return "", whisk.E("api.entityName", whisk.Invalid, whisk.MsgBadEntityName, nil)
	}
	return name, nil
}

// triggerView is a trigger as the API shows it: slices never null.
func triggerView(t whisk.Trigger) whisk.Trigger {
	if t.Parameters == nil {
		t.Parameters = whisk.Params{}
	}
	if t.Annotations == nil {
		t.Annotations = whisk.Params{}
	}
	return t
}

// entitySummary is a trigger list item (OpenWhisk's view without docs).
type entitySummary struct {
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	Version     string       `json:"version"`
	Publish     bool         `json:"publish"`
	Annotations whisk.Params `json:"annotations"`
	Updated     int64        `json:"updated"`
}

// listTriggers is GET .../triggers?limit&skip&count.
func (s *server) listTriggers(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	skip, limit, count, err := listQuery(r, "triggers")
	if err != nil {
		return err
	}
	if count {
		n, err := s.events.CountTriggers(r.Context(), caller.Namespace)
		if err != nil {
			return err
		}
		writeCount(w, "triggers", n)
		return nil
	}
	ts, err := s.events.ListTriggers(r.Context(), caller.Namespace, skip, limit)
	if err != nil {
		return err
	}
	out := make([]entitySummary, len(ts))
	for i, t := range ts {
		t = triggerView(t)
		out[i] = entitySummary{Namespace: t.Namespace, Name: t.Name, Version: t.Version,
			Publish: t.Publish, Annotations: t.Annotations, Updated: t.Updated}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getTrigger is GET .../triggers/{name}; the trailing-slash form lists.
func (s *server) getTrigger(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	return getNamed(w, r, caller, s.listTriggers, s.events.GetTrigger, triggerView)
}

// putTrigger is PUT .../triggers/{name}?overwrite=B.
func (s *server) putTrigger(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	name, err := entityName(r)
	if err != nil {
		return err
	}
	put, overwrite, err := readPut[events.TriggerPut](w, r, s.limits.MaxPayload+putSlack, true)
	if err != nil {
		return err
	}
	t, err := s.events.PutTrigger(r.Context(), caller.Namespace, name, put, overwrite)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, triggerView(t))
	return nil
}

// deleteTrigger is DELETE .../triggers/{name}: 200 with the trigger and its
// rules; the rules stay, inactive.
func (s *server) deleteTrigger(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	return onNamed(w, r, caller, s.events.DeleteTrigger, triggerView)
}

// fireTrigger is POST .../triggers/{name}: 202 {"activationId"} once every
// active rule's activation is published, or 204 without an active rule.
func (s *server) fireTrigger(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	name, err := entityName(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, s.limits.MaxPayload)
	if whisk.IsKind(err, whisk.TooLarge) {
		size := max(r.ContentLength, s.limits.MaxPayload+1)
		return whisk.E("api.fireTrigger", whisk.TooLarge, whisk.MsgRequestTooLarge(size, s.limits.MaxPayload), err)
	}
	if err != nil {
		return err
	}
	id, err := s.firer.Fire(r.Context(), caller, caller.Namespace, name, body, fireHeaders(r), "")
	if err != nil {
		return err
	}
	if id == "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.Header().Set("X-Openwhisk-Activation-Id", string(id))
	writeJSON(w, http.StatusAccepted, map[string]whisk.ActivationID{"activationId": id})
	return nil
}

// fireHeaders are the fire request's headers for __ow_headers: lower-cased
// names, repeated values joined by ", ". Unlike OpenWhisk, the
// Authorization header is left out (the key need not travel in arguments).
func fireHeaders(r *http.Request) map[string]string {
	h := make(map[string]string, len(r.Header)+1)
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "authorization" {
			continue
		}
		h[lk] = strings.Join(vs, ", ")
	}
	if r.Host != "" {
		h["host"] = r.Host
	}
	return h
}

// recordJSON is a record (or its summary) as the API shows it: a record
// without an end, a trigger's, has neither end nor duration (OpenWhisk's
// toExtendedJson drops them when end is the epoch).
func recordJSON(v any, end int64) any {
	if end != 0 {
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return v
	}
	delete(m, "end")
	delete(m, "duration")
	return m
}
