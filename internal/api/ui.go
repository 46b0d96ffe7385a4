package api

import (
	"net/http"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// UI serves Eddy's live web view (internal/webui) to an authenticated
// caller: everything under /eddy/ui/, the page and the state it polls.
type UI interface {
	ServeUI(w http.ResponseWriter, r *http.Request, caller whisk.Identity)
}

// uiRoute guards the web view with the API's Basic authentication. A
// request without valid credentials gets the API's 401 with a Basic
// challenge, so that a browser asks for the key (uuid as the user name,
// key as the password) and sends it with the page's own requests.
func (s *server) uiRoute() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := headAsGet(r.Method); m != http.MethodGet {
			s.methodNotAllowed(w, r, []string{http.MethodGet})
			return
		}
		caller, err := s.authenticate(r)
		if err != nil {
			if whisk.IsKind(err, whisk.Unauthorized) {
				w.Header().Set("WWW-Authenticate", `Basic realm="Eddy", charset="UTF-8"`)
			}
			s.writeError(w, r, err)
			return
		}
		s.ui.ServeUI(w, r, caller)
	})
}
