package bench

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/client"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// ---------------------------------------------------------------------------
// web

// WebResult is the web-action scenario: the same warm no-op called as a
// blocking invocation, as a web action (.json GET, .http POST) and through
// an API gateway route (the same two), the five interleaved call by call
// so that drift in the machine falls on all alike.
type WebResult struct {
	Action   string `json:"action"`
	Invoke   Dist   `json:"invoke"`   // POST .../actions/A?blocking=true&result=true
	JSONGet  Dist   `json:"jsonGet"`  // GET /api/v1/web/NS/default/A.json
	HTTPPost Dist   `json:"httpPost"` // POST /api/v1/web/NS/default/A.http
	APIGet   Dist   `json:"apiGet"`   // GET /api/TENANT/bench/json (response type json)
	APIPost  Dist   `json:"apiPost"`  // POST /api/TENANT/bench/http (response type http)
	// Ratios of p50s to the blocking invocation's (the goal: at most 1.10).
	RatioJSONGet  float64 `json:"ratioJsonGetP50"`
	RatioHTTPPost float64 `json:"ratioHttpPostP50"`
	RatioAPIGet   float64 `json:"ratioApiGetP50"`
	RatioAPIPost  float64 `json:"ratioApiPostP50"`
	Errors        int     `json:"errors"`
}

// rawRequest renders an HTTP/1.1 request for the load generator.
func rawRequest(method, host, path, ctype, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: eddy-bench\r\n", method, path, host)
	if ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

func (e *env) web(ctx context.Context) (*WebResult, error) {
	name := "bench-web"
	code := e.code.noop
	timeout, mem := int64(60000), e.cfg.memoryMB
	if _, err := e.api.PutAction(ctx, name, &client.ActionPut{
		Exec:        &client.ExecPut{Kind: e.cfg.kind, Code: &code},
		Limits:      &client.LimitsPut{Memory: &mem, Timeout: &timeout},
		Annotations: whisk.Params{{Key: "web-export", Value: []byte("true")}, {Key: "final", Value: []byte("true")}},
	}, true); err != nil {
		return nil, fmt.Errorf("creating action %s: %w", name, err)
	}
	nss, err := e.api.ListNamespaces(ctx)
	if err != nil || len(nss) == 0 {
		return nil, fmt.Errorf("reading the namespace: %v", err)
	}
	ns := nss[0]
	for _, rt := range []string{"json", "http"} {
		verb := "GET"
		if rt == "http" {
			verb = "POST"
		}
		if _, err := e.api.CreateAPI(ctx, client.APIDoc{Namespace: "_", BasePath: "/bench", RelPath: "/" + rt, Method: verb,
			Action: &client.APIAction{Name: name, Namespace: ns, BackendMethod: verb,
				BackendURL: e.api.BaseURL() + "/api/v1/web/" + ns + "/default/" + name + ".http", AuthKey: e.cfg.auth}}, rt); err != nil {
			return nil, fmt.Errorf("creating the API: %w", err)
		}
	}
	defer func() { _ = e.api.DeleteAPI(context.WithoutCancel(ctx), "/bench", "", "") }()

	addr, tlsCfg, invReq, err := e.invokeRequest(name)
	if err != nil {
		return nil, err
	}
	tenant, _, _ := strings.Cut(e.cfg.auth, ":")
	webPath := "/api/v1/web/" + url.PathEscape(ns) + "/default/" + name
	type kindOf struct {
		what string
		req  []byte
		ok   func(status int, body []byte) error
		conn *h1Conn
		lat  []time.Duration
	}
	ranBy := func(what string) func(int, []byte) error {
		return func(status int, body []byte) error { return checkRanBy(what, status, body, nil) }
	}
	// A no-op's result has no "body": .http answers an empty 204.
	empty := func(what string) func(int, []byte) error {
		return func(status int, body []byte) error {
			if status != 204 {
				return fmt.Errorf("%s: status %d: %.200s", what, status, body)
			}
			return nil
		}
	}
	kinds := []*kindOf{
		{what: "invoke", req: invReq, ok: ranBy("invoke")},
		{what: "web .json GET", req: rawRequest("GET", addr, webPath+".json", "", ""), ok: ranBy("web .json")},
		{what: "web .http POST", req: rawRequest("POST", addr, webPath+".http", "application/json", `{"n":1}`), ok: empty("web .http")},
		{what: "API GET (json)", req: rawRequest("GET", addr, "/api/"+tenant+"/bench/json", "", ""), ok: ranBy("API json")},
		{what: "API POST (http)", req: rawRequest("POST", addr, "/api/"+tenant+"/bench/http", "application/json", `{"n":1}`), ok: empty("API http")},
	}
	for _, k := range kinds {
		k.conn = newH1Conn(ctx, addr, tlsCfg)
		defer k.conn.close()
		k.lat = make([]time.Duration, 0, e.cfg.warmN)
	}
	res := &WebResult{Action: name}
	call := func(k *kindOf) (time.Duration, error) {
		t := time.Now()
		status, body, err := k.conn.do(k.req)
		d := time.Since(t)
		if err != nil {
			return d, fmt.Errorf("%s: %w", k.what, err)
		}
		return d, k.ok(status, body)
	}
	for i := 0; i < e.cfg.warmup; i++ {
		for _, k := range kinds {
			if _, err := call(k); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for i := 0; i < e.cfg.warmN; i++ {
		// Rotate the order so that no kind always follows another.
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			d, err := call(k)
			if err != nil {
				res.Errors++
				if res.Errors > e.cfg.warmN/100+5 {
					return nil, fmt.Errorf("too many errors, the last: %w", err)
				}
				continue
			}
			k.lat = append(k.lat, d)
		}
	}
	res.Invoke, res.JSONGet, res.HTTPPost = dist(kinds[0].lat), dist(kinds[1].lat), dist(kinds[2].lat)
	res.APIGet, res.APIPost = dist(kinds[3].lat), dist(kinds[4].lat)
	res.RatioJSONGet = ratio(res.JSONGet.P50, res.Invoke.P50)
	res.RatioHTTPPost = ratio(res.HTTPPost.P50, res.Invoke.P50)
	res.RatioAPIGet = ratio(res.APIGet.P50, res.Invoke.P50)
	res.RatioAPIPost = ratio(res.APIPost.P50, res.Invoke.P50)
	printWeb(e.out, res)
	return res, nil
}

func webTable(w io.Writer, md bool, r *WebResult) {
	table(w, md, [][]string{distHead,
		distRow("blocking invoke (result=true)", r.Invoke),
		distRow("web action .json GET", r.JSONGet),
		distRow("web action .http POST", r.HTTPPost),
		distRow("API route GET (json)", r.APIGet),
		distRow("API route POST (http)", r.APIPost),
	})
	fmt.Fprintf(w, "p50 ÷ blocking invoke p50: .json GET %.3f, .http POST %.3f, API GET %.3f, API POST %.3f (goal ≤ 1.10); errors %d\n\n",
		r.RatioJSONGet, r.RatioHTTPPost, r.RatioAPIGet, r.RatioAPIPost, r.Errors)
}

func printWeb(w io.Writer, r *WebResult) {
	fmt.Fprintln(w, "== web actions: warm no-op as a blocking invoke, a web action and an API route, interleaved")
	webTable(w, false, r)
}
