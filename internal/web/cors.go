package web

import "net/http"

// CORS defaults of web actions (openwhisk/http/CorsSettings.scala WebActions).
const (
	AllowOrigin  = "*"
	AllowMethods = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"
	AllowHeaders = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
)

// SetCORS adds the default CORS headers of a web response to h: the
// allowed headers echo the request's Access-Control-Request-Headers when
// it has one.
func SetCORS(h http.Header, req http.Header) {
	h.Set("Access-Control-Allow-Origin", AllowOrigin)
	h.Set("Access-Control-Allow-Methods", AllowMethods)
	if rh := req.Get("Access-Control-Request-Headers"); rh != "" && validHeaderValue(rh) {
		h.Set("Access-Control-Allow-Headers", rh)
	} else {
		h.Set("Access-Control-Allow-Headers", AllowHeaders)
	}
}

// RequireWhiskAuthHeader is the header a require-whisk-auth string must match.
const RequireWhiskAuthHeader = "X-Require-Whisk-Auth"

// Authorized applies an action's require-whisk-auth annotation (raw JSON,
// nil when absent): absent or false lets everyone in; true needs an
// authenticated caller; a string or number must equal the
// X-Require-Whisk-Auth header; any other value refuses everyone.
func Authorized(annotation []byte, authenticated bool, req http.Header) bool {
	switch kind(annotation) {
	case 0:
		return true
	case 't':
		if string(annotation) == "true" {
			return authenticated
		}
		return true
	case '"':
		s, _ := str(annotation)
		vals := req.Values(RequireWhiskAuthHeader)
		return len(vals) > 0 && vals[0] == s
	case '0':
		vals := req.Values(RequireWhiskAuthHeader)
		return len(vals) > 0 && vals[0] == string(annotation)
	}
	return false
}
