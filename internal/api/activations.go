package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

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

// activationSummary is a list item without docs=true (as OpenWhisk lists them):
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
	skip, limit, count, err := listQuery(r, "activations")
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
	f := store.ActivationFilter{Name: name, Since: since, Upto: upto, Skip: skip, Limit: limit, Summary: !docs}
	if count {
		n, err := s.store.CountActivations(r.Context(), caller.Namespace, f)
		if err != nil {
			return err
		}
		writeCount(w, "activations", n)
		return nil
	}
	// The page is streamed, one record at a time: 200 records with 10 MB
	// of logs each would otherwise be held whole, twice (records and
	// answer). A client that reads slowly has listWriteTimeout in all.
	_ = http.NewResponseController(w).SetWriteDeadline(s.now().Add(listWriteTimeout))
	lw := &listWriter{w: w}
	err = s.store.EachActivation(r.Context(), caller.Namespace, f, func(a whisk.Activation) error {
		if docs {
			return lw.add(recordJSON(activationView(a), a.End))
		}
		return lw.add(recordJSON(summarize(a), a.End))
	})
	if err != nil && lw.started {
		// The status and part of the list are out: only cutting the
		// connection tells the client the list is not whole.
		s.log.Warn("activation list cut short", "tid", transactionID(r), "err", err)
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		return err
	}
	lw.close()
	return nil
}

// listWriteTimeout bounds the writing of a streamed list.
const listWriteTimeout = 2 * time.Minute

// listWriter streams a JSON array: the status and headers go out with the
// first element.
type listWriter struct {
	w       http.ResponseWriter
	started bool
	buf     []byte
}

func (l *listWriter) add(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.buf = l.buf[:0]
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/json")
		l.w.WriteHeader(http.StatusOK)
		l.buf = append(l.buf, '[')
	} else {
		l.buf = append(l.buf, ',')
	}
	l.buf = append(l.buf, b...)
	_, err = l.w.Write(l.buf)
	return err
}

// close ends the array, or writes an empty one when nothing was added.
func (l *listWriter) close() {
	if !l.started {
		writeRaw(l.w, http.StatusOK, []byte("[]"))
		return
	}
	_, _ = l.w.Write([]byte("]"))
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
