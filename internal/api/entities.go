package api

// This file holds the steps the entity routes (actions, packages,
// triggers, rules) share: a list's query, a PUT's preamble, and the read
// or delete of one trigger or rule by its {name}.

import (
	"context"
	"net/http"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// listQuery reads a list route's ?limit&skip (paging; collection names
// the entities in its messages) and ?count.
func listQuery(r *http.Request, collection string) (skip, limit int, count bool, err error) {
	q := r.URL.Query()
	if skip, limit, err = paging(q, collection); err != nil {
		return 0, 0, false, err
	}
	count, err = queryBool(q, "count", false)
	return skip, limit, count, err
}

// writeCount is a list route's ?count=true answer: {"<collection>": n}.
func writeCount(w http.ResponseWriter, collection string, n int) {
	writeJSON(w, http.StatusOK, map[string]int{collection: n})
}

// readPut reads a PUT's ?overwrite and its JSON body, of at most limit
// bytes, into a P. With emptyOK an empty body is the zero P (triggers and
// rules); else it is malformed (actions and packages).
func readPut[P any](w http.ResponseWriter, r *http.Request, limit int64, emptyOK bool) (put P, overwrite bool, err error) {
	if overwrite, err = queryBool(r.URL.Query(), "overwrite", false); err != nil {
		return put, false, err
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return put, false, err
	}
	if emptyOK && len(strings.TrimSpace(string(body))) == 0 {
		return put, overwrite, nil
	}
	if err := decodeJSON(body, &put); err != nil {
		return put, false, err
	}
	return put, overwrite, nil
}

// getNamed is GET .../{triggers|rules}/{name}: the trailing-slash form
// lists (list); else the named entity (get), as view shows it.
func getNamed[T any](w http.ResponseWriter, r *http.Request, caller whisk.Identity, list authedFunc,
	get func(ctx context.Context, ns, name string) (T, error), view func(T) T) error {
	if r.PathValue("name") == "" {
		return list(w, r, caller)
	}
	return onNamed(w, r, caller, get, view)
}

// onNamed does fn (a read or a delete) to the trigger or rule {name} of
// the caller's namespace and writes what it returns, as view shows it.
func onNamed[T any](w http.ResponseWriter, r *http.Request, caller whisk.Identity,
	fn func(ctx context.Context, ns, name string) (T, error), view func(T) T) error {
	name, err := entityName(r)
	if err != nil {
		return err
	}
	v, err := fn(r.Context(), caller.Namespace, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, view(v))
	return nil
}
