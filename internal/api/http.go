package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// API messages of request parsing that are specific to the REST layer
// (OpenWhisk's wording).
func msgQueryMalformed(param, detail string) string {
	return fmt.Sprintf("The query parameter '%s' was malformed:\n%s", param, detail)
}

func msgLimitRange(value, max int, collection string) string {
	return fmt.Sprintf("The value '%d' is not in the range of 0 to %d for %s.", value, max, collection)
}

func msgSkipRange(value int, collection string) string {
	return fmt.Sprintf("The value '%d' is not greater than or equal to 0 for %s.", value, collection)
}

const msgDocsWithCount = "The parameter 'docs' is not permitted with 'count'."

type ctxKey int

const tidKey ctxKey = 0

// transactionID is the request's id, echoed as "code" in error bodies.
func transactionID(r *http.Request) string {
	tid, _ := r.Context().Value(tidKey).(string)
	return tid
}

// recorder remembers the status written, for logs and panic recovery.
type recorder struct {
	http.ResponseWriter
	status int
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the connection's writer (for
// write deadlines and flushes).
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.ResponseWriter.Write(b)
}

// ServeHTTP adds the transaction id, CORS, panic recovery and request logs
// around the routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	tid := whisk.NewTransactionID()
	r = r.WithContext(context.WithValue(r.Context(), tidKey, tid))
	rw := &recorder{ResponseWriter: w}
	defer s.recoverPanic(rw, r, tid, start)
	release, ok := s.admit(rw, r)
	if !ok {
		return
	}
	defer release()
	if strings.HasPrefix(r.URL.Path, webPrefix) {
		// Web actions set their own CORS headers and answer OPTIONS themselves.
		s.serveWeb(rw, r)
		return
	}
	if tenant, rest, ok := gatewayPath(r.URL.EscapedPath()); ok {
		s.serveGateway(rw, r, tenant, rest)
		return
	}
	h := rw.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, DELETE, POST, PUT, HEAD")
	h.Set("Access-Control-Allow-Headers", "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent")
	if r.Method == http.MethodOptions {
		rw.WriteHeader(http.StatusOK)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// admit refuses new work while draining and holds a large body's share of
// the body budget (see bodyCost) until release; false when it answered.
func (s *server) admit(rw *recorder, r *http.Request) (release func(), ok bool) {
	if s.draining != nil && newWork(r) && s.draining() {
		rw.Header().Set("Retry-After", "5")
		s.writeError(rw, r, whisk.E("api.drain", whisk.Unavailable, msgDraining, nil))
		return nil, false
	}
	n := s.bodyCost(r)
	if n == 0 {
		return func() {}, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), bodyWait)
	err := s.bodies.Acquire(ctx, n)
	cancel()
	if err != nil {
		rw.Header().Set("Retry-After", "1")
		s.writeError(rw, r, whisk.E("api.bodies", whisk.Unavailable, msgBodiesBusy, err))
		return nil, false
	}
	return func() { s.bodies.Release(n) }, true
}

// recoverPanic turns a panic into a 500 in the error shape and logs the
// request at debug level.
func (s *server) recoverPanic(rw *recorder, r *http.Request, tid string, start time.Time) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.log.Error("panic serving request", "tid", tid, "method", r.Method, "path", r.URL.Path,
			"panic", p, "stack", string(debug.Stack()))
		if rw.status == 0 {
			s.writeError(rw, r, whisk.E("api", whisk.Internal, "", fmt.Errorf("panic: %v", p)))
		}
	}
	// Checked first: the arguments would be boxed on every request
	// even when debug logs are off.
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("request", "tid", tid, "method", r.Method, "path", r.URL.Path,
			"status", rw.status, "ms", s.now().Sub(start).Milliseconds())
	}
}

// Bodies larger than smallBody are admitted under a budget of bytes in
// flight (Config.BodyBudget): a request holds its body's size (the largest
// body any route takes, when the size is not announced) until it is
// answered, since its handler holds the body and what it decodes from it.
// Four parallel 45 MB action PUTs peaked at 1.06 GB of RSS without it. A
// request waits bodyWait at most for its share, then gets a 503.
const (
	smallBody         = 64 << 10
	bodyWait          = 30 * time.Second
	DefaultBodyBudget = 128 << 20
	msgBodiesBusy     = "The server is busy with large requests; try again later."
)

// msgDraining answers new work while the process stops.
const msgDraining = "The server is shutting down; try again later."

// newWork reports whether r asks for an activation: an invocation, a
// trigger fire, a web action or an API gateway route.
func newWork(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/api/v1/web/"):
		return true
	case strings.HasPrefix(p, "/api/v1/namespaces/"):
		return r.Method == http.MethodPost && (strings.Contains(p, "/actions/") || strings.Contains(p, "/triggers/"))
	case strings.HasPrefix(p, "/api/v1"):
		return false
	}
	return strings.HasPrefix(p, "/api/") // API gateway routes: /api/<tenant>/<base>/...
}

// bodyCost is what a request holds of the body budget.
func (s *server) bodyCost(r *http.Request) int64 {
	n := r.ContentLength
	switch {
	case n >= 0 && n <= smallBody:
		return 0
	case n < 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete):
		return 0
	case n < 0 || n > s.maxBody():
		n = s.maxBody()
	}
	return min(n, s.bodyBudget)
}

// maxBody is the largest body any route reads.
func (s *server) maxBody() int64 { return s.limits.MaxCode + s.limits.MaxPayload + putSlack }

// writeError writes err in OpenWhisk's error shape with the status of its kind.
// A throttled error carrying a *whisk.Throttle also gets a Retry-After header
// and a "limit" field naming the limit that was hit.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := whisk.KindOf(err)
	status := kind.HTTPStatus()
	if t := whisk.ThrottleOf(err); t != nil && status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(t.RetryAfterSeconds()))
		s.writeBody(w, r, status, whisk.UserMessage(err), t.Limit, err)
		return
	}
	s.writeStatus(w, r, status, whisk.UserMessage(err), err)
}

// writeStatus writes an error body: {"error": msg, "code": tid}.
func (s *server) writeStatus(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	s.writeBody(w, r, status, msg, "", err)
}

// writeBody is the one writer of error bodies: {"error": msg, "code": tid},
// plus "limit" when a throttle names one (clients ignore unknown fields).
func (s *server) writeBody(w http.ResponseWriter, r *http.Request, status int, msg, limit string, err error) {
	tid := transactionID(r)
	if status >= 500 {
		s.log.Error("request failed", "tid", tid, "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "tid", tid, "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="OpenWhisk secure realm"`)
	}
	writeJSON(w, status, struct {
		Error string `json:"error"`
		Code  string `json:"code"`
		Limit string `json:"limit,omitempty"`
	}{msg, tid, limit})
}

// writeJSON writes v as a JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"` + whisk.MsgInternal + `"}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes a JSON body that is already encoded.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads at most limit bytes of the body; a larger body is a
// TooLarge error. Bodies are never read unbounded.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	const op = "api.readBody"
	if r.ContentLength > limit {
		return nil, whisk.E(op, whisk.TooLarge, whisk.MsgPayloadTooLarge(r.ContentLength, limit), nil)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		size := r.ContentLength
		if size <= limit {
			size = limit + 1 // chunked: at least this much
		}
		return nil, whisk.E(op, whisk.TooLarge, whisk.MsgPayloadTooLarge(size, limit), err)
	}
	if err != nil {
		return nil, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+err.Error(), err)
	}
	return b, nil
}

// decodeJSON unmarshals a body into v; failures are 400 "malformed".
func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return whisk.E("api.decode", whisk.Invalid, whisk.MsgMalformed+err.Error(), err)
	}
	return nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(q url.Values, name string, def bool) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, whisk.E("api.query", whisk.Invalid, msgQueryMalformed(name, fmt.Sprintf("'%s' is not a valid boolean value", v)), err)
	}
	return b, nil
}

// queryInt parses an optional integer query parameter.
func queryInt(q url.Values, name string, def int64, bits int) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, bits)
	if err != nil {
		return 0, whisk.E("api.query", whisk.Invalid, msgQueryMalformed(name, fmt.Sprintf("'%s' is not a valid %d-bit signed integer value", v, bits)), err)
	}
	return n, nil
}

// Paging bounds of list routes.
const (
	defaultListLimit = 30
	maxListLimit     = 200
)

// paging parses limit and skip of a list route: limit defaults to 30, 0
// means the maximum (200), and out-of-range values are 400s.
func paging(q url.Values, collection string) (skip, limit int, err error) {
	l, err := queryInt(q, "limit", defaultListLimit, 32)
	if err != nil {
		return 0, 0, err
	}
	if l < 0 || l > maxListLimit {
		return 0, 0, whisk.E("api.paging", whisk.Invalid, msgLimitRange(int(l), maxListLimit, collection), nil)
	}
	if l == 0 {
		l = maxListLimit
	}
	sk, err := queryInt(q, "skip", 0, 32)
	if err != nil {
		return 0, 0, err
	}
	if sk < 0 {
		return 0, 0, whisk.E("api.paging", whisk.Invalid, msgSkipRange(int(sk), collection), nil)
	}
	return int(sk), int(l), nil
}
