package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// activationView is a record as the API shows it: slices never null.
func activationView(a whisk.Activation) whisk.Activation {
	if a.Logs == nil {
		a.Logs = []string{}
	}
	if a.Annotations == nil {
		a.Annotations = whisk.Params{}
	}
	return a
}

// activationSummary is a list item without docs=true (reference §1.5):
// no response, no logs.
type activationSummary struct {
	Namespace    string             `json:"namespace"`
	Name         string             `json:"name"`
	Version      string             `json:"version"`
	Subject      string             `json:"subject"`
	ActivationID whisk.ActivationID `json:"activationId"`
	Start        int64              `json:"start"`
	End          int64              `json:"end"`
	Duration     int64              `json:"duration"`
	StatusCode   int                `json:"statusCode"`
	Annotations  whisk.Params       `json:"annotations"`
	Publish      bool               `json:"publish"`
}

func summarize(a whisk.Activation) activationSummary {
	a = activationView(a)
	code := a.StatusCode
	if code == 0 {
		code = a.Response.StatusCode
	}
	return activationSummary{
		Namespace: a.Namespace, Name: a.Name, Version: a.Version, Subject: a.Subject,
		ActivationID: a.ActivationID, Start: a.Start, End: a.End, Duration: a.Duration,
		StatusCode: code, Annotations: a.Annotations, Publish: a.Publish,
	}
}

// validActivationName accepts "name" or "pkg/name".
func validActivationName(n string) bool {
	parts := strings.Split(n, "/")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if !whisk.ValidName(p) {
			return false
		}
	}
	return true
}

// listActivations is GET .../activations?name&since&upto&docs&limit&skip&count.
func (s *server) listActivations(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.listActivations"
	q := r.URL.Query()
	skip, limit, err := paging(q, "activations")
	if err != nil {
		return err
	}
	count, err := queryBool(q, "count", false)
	if err != nil {
		return err
	}
	docs, err := queryBool(q, "docs", false)
	if err != nil {
		return err
	}
	if count && docs {
		return whisk.E(op, whisk.Invalid, msgDocsWithCount, nil)
	}
	since, err := queryInt(q, "since", 0, 64)
	if err != nil {
		return err
	}
	upto, err := queryInt(q, "upto", 0, 64)
	if err != nil {
		return err
	}
	name := q.Get("name")
	if name != "" && !validActivationName(name) {
		return whisk.E(op, whisk.Invalid, whisk.MsgBadEntityName, nil)
	}
	f := store.ActivationFilter{Name: name, Since: since, Upto: upto, Skip: skip, Limit: limit}
	if count {
		n, err := s.store.CountActivations(r.Context(), caller.Namespace, f)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]int{"activations": n})
		return nil
	}
	as, err := s.store.ListActivations(r.Context(), caller.Namespace, f)
	if err != nil {
		return err
	}
	if docs {
		out := make([]whisk.Activation, len(as))
		for i, a := range as {
			out[i] = activationView(a)
		}
		writeJSON(w, http.StatusOK, recordsJSON(out))
		return nil
	}
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = recordJSON(summarize(a), a.End)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// activation reads the record named by the route's {id}.
func (s *server) activation(r *http.Request, caller whisk.Identity) (whisk.Activation, error) {
	id, err := whisk.ParseActivationID(r.PathValue("id"))
	if err != nil {
		return whisk.Activation{}, err
	}
	return s.store.GetActivation(r.Context(), caller.Namespace, id)
}

// getActivation is GET .../activations/{id}: the full record.
func (s *server) getActivation(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	a, err := s.activation(r, caller)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, recordJSON(activationView(a), a.End))
	return nil
}

// getActivationLogs is GET .../activations/{id}/logs: {"logs": [...]}.
func (s *server) getActivationLogs(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	a, err := s.activation(r, caller)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]string{"logs": activationView(a).Logs})
	return nil
}

// getActivationResult is GET .../activations/{id}/result: the response
// (result, status, success, size).
func (s *server) getActivationResult(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	a, err := s.activation(r, caller)
	if err != nil {
		return err
	}
	resp := a.Response
	if len(bytes.TrimSpace(resp.Result)) == 0 {
		resp.Result = json.RawMessage("{}")
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
