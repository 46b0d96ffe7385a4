package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Content types of the extensions.
const (
	TypeJSON = "application/json"
	TypeHTML = "text/html; charset=UTF-8"
	TypeSVG  = "image/svg+xml"
	TypeText = "text/plain; charset=UTF-8"
)

// Bounds on the headers of a .http result: more is refused as an invalid
// response (OpenWhisk relies on pekko-http's limits; Eddy states its own).
const (
	MaxResponseHeaders     = 100
	MaxResponseHeaderBytes = 64 << 10
)

// Response is an HTTP response rendered from an action's result.
type Response struct {
	Status int
	// Header holds the headers the action set (.http only), never
	// Content-Type, which is ContentType ("" for an empty entity).
	Header      http.Header
	ContentType string
	Body        []byte
}

// Transcode renders an activation's result (or, for an application error,
// its "error" field) for the extension ext (WhiskWebActionsApi's
// transcoders). An unknown ext is treated as "http".
func Transcode(ext string, result json.RawMessage) (Response, *Error) {
	switch ext {
	case ExtJSON:
		if k := kind(result); k != '{' && k != '[' {
			return Response{}, refuse(http.StatusBadRequest, MsgInvalidMedia("application/json"))
		}
		return Response{Status: http.StatusOK, ContentType: TypeJSON, Body: Pretty(result)}, nil
	case ExtHTML:
		s, ok := str(member(result, "body", "html"))
		if !ok {
			return Response{}, refuse(http.StatusBadRequest, MsgInvalidMedia("text/html"))
		}
		return Response{Status: http.StatusOK, ContentType: TypeHTML, Body: []byte(s)}, nil
	case ExtSVG:
		s, ok := str(member(result, "body", "svg"))
		if !ok {
			return Response{}, refuse(http.StatusBadRequest, MsgInvalidMedia("image/svg+xml"))
		}
		return Response{Status: http.StatusOK, ContentType: TypeSVG, Body: []byte(s)}, nil
	case ExtText:
		v := member(result, "body", "text")
		var body []byte
		switch kind(v) {
		case 0:
			return Response{}, refuse(http.StatusNotFound, MsgPropertyNotFound)
		case '"':
			s, _ := str(v)
			body = []byte(s)
		case '{', '[':
			body = Pretty(v)
		default:
			body = []byte(strings.TrimSpace(string(v)))
		}
		return Response{Status: http.StatusOK, ContentType: TypeText, Body: body}, nil
	}
	return transcodeHTTP(result)
}

// member is result's first present field of names when result is an
// object (absent: nil; for .html and .svg a missing field is null), or
// result itself otherwise.
func member(result json.RawMessage, names ...string) json.RawMessage {
	if kind(result) != '{' {
		return result
	}
	var f orderedFields
	if json.Unmarshal(result, &f) != nil {
		return nil
	}
	for _, n := range names {
		if v, ok := f.get(n); ok {
			return v
		}
	}
	return nil
}

// transcodeHTTP renders a {statusCode, headers, body} result.
func transcodeHTTP(result json.RawMessage) (Response, *Error) {
	invalid := refuse(http.StatusBadRequest, MsgInvalidMedia("message/http"))
	var f orderedFields
	if kind(result) != '{' || json.Unmarshal(result, &f) != nil {
		return Response{}, invalid
	}
	hdr := http.Header{}
	ctype, hasType := "", false
	if hv, ok := f.get("headers"); ok {
		var hs orderedFields
		if kind(hv) != '{' || json.Unmarshal(hv, &hs) != nil {
			return Response{}, invalid
		}
		size := 0
		for _, h := range hs {
			vals, ok := headerValues(h.value, nil)
			if !ok || !validHeaderName(h.key) {
				return Response{}, invalid
			}
			for _, v := range vals {
				if !validHeaderValue(v) {
					return Response{}, invalid
				}
				size += len(h.key) + len(v) + 4
			}
			if strings.EqualFold(h.key, "Content-Type") {
				if len(vals) > 0 && !hasType {
					ctype, hasType = vals[0], true
				}
				continue
			}
			if dropHeader(h.key) {
				continue
			}
			for _, v := range vals {
				hdr.Add(h.key, v)
			}
		}
		if len(hdr) > MaxResponseHeaders || size > MaxResponseHeaderBytes {
			return Response{}, invalid
		}
	}
	status := 0
	if sv, ok := f.get("statusCode"); ok {
		c, ok := statusCode(sv)
		if !ok {
			return Response{}, invalid
		}
		status = c
	}
	body, _ := f.get("body")
	switch kind(body) {
	case 0, 'n':
		return emptyResponse(status, hdr), nil
	case '"':
		s, _ := str(body)
		if s == "" {
			return emptyResponse(status, hdr), nil
		}
		if status == 0 {
			status = http.StatusOK
		}
		ct := TypeHTML
		mt := "text/html"
		if hasType {
			m, err := parseMediaType(ctype)
			if err != nil {
				return Response{}, refuse(http.StatusBadRequest, MsgHTTPUnknownType)
			}
			mt = m
			ct = ctype
			if strings.HasPrefix(mt, "text/") && !strings.Contains(strings.ToLower(ctype), "charset=") {
				ct += "; charset=UTF-8"
			}
		}
		data := []byte(s)
		if Binary(mt) || (JSONFamily(mt) && whisk.LooksBinary(s)) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return Response{}, refuse(http.StatusBadRequest, MsgHTTPContentTypeDiff)
			}
			data = b
		}
		return Response{Status: status, Header: hdr, ContentType: ct, Body: data}, nil
	default:
		if status == 0 {
			status = http.StatusOK
		}
		ct := TypeJSON
		if hasType {
			m, err := parseMediaType(ctype)
			if err != nil {
				return Response{}, refuse(http.StatusBadRequest, MsgHTTPUnknownType)
			}
			if !JSONFamily(m) {
				return Response{}, refuse(http.StatusBadRequest, MsgHTTPContentTypeDiff)
			}
			ct = m
		}
		return Response{Status: status, Header: hdr, ContentType: ct, Body: Pretty(body)}, nil
	}
}

func emptyResponse(status int, hdr http.Header) Response {
	if status == 0 {
		status = http.StatusNoContent
	}
	return Response{Status: status, Header: hdr}
}

// statusCode parses statusCode: a whole JSON number or a numeric string,
// 200 to 999 (Go cannot send a 1xx as a final status; pekko-http accepts
// custom codes like 444).
func statusCode(v json.RawMessage) (int, bool) {
	var n float64
	switch kind(v) {
	case '0':
		var num json.Number
		if json.Unmarshal(v, &num) != nil {
			return 0, false
		}
		f, err := num.Float64()
		if err != nil || f != math.Trunc(f) {
			return 0, false
		}
		n = f
	case '"':
		s, _ := str(v)
		i, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return 0, false
		}
		n = float64(i)
	default:
		return 0, false
	}
	if n < 200 || n > 999 {
		return 0, false
	}
	return int(n), true
}

// headerValues flattens a header's JSON value: strings, numbers, booleans,
// or arrays of them (an array repeats the header).
func headerValues(v json.RawMessage, out []string) ([]string, bool) {
	switch kind(v) {
	case '"':
		s, _ := str(v)
		return append(out, s), true
	case '0', 't':
		return append(out, strings.TrimSpace(string(v))), true
	case '[':
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) != nil {
			return nil, false
		}
		for _, e := range arr {
			var ok bool
			if out, ok = headerValues(e, out); !ok {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// dropHeader reports headers an action may not set because they frame
// the HTTP message (the server writes them itself).
func dropHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te",
		"proxy-connection":
		return true
	}
	return false
}

// validHeaderName reports whether name is an HTTP token (RFC 9110 §5.1).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than tab: no CR or LF
// can split a header, no NUL can truncate one.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Acceptable reports whether a response of contentType satisfies the
// request's Accept header (absent or empty accepts everything); ranges
// with q=0 refuse.
func Acceptable(accept, contentType string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return true
	}
	mt = strings.ToLower(mt)
	major, _, _ := strings.Cut(mt, "/")
	for _, r := range strings.Split(accept, ",") {
		rt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		rt = strings.ToLower(rt)
		if rt == "*/*" || rt == "*" || rt == mt || rt == major+"/*" {
			return true
		}
	}
	return false
}

// MsgNotAcceptable is the plain-text body of a 406 (pekko-http's wording).
func MsgNotAcceptable(contentType string) string {
	return "Resource representation is only available with these types:\n" + contentType
}

// parseMediaType parses a Content-Type value into its lower-cased
// type/subtype; a value without both is an error.
func parseMediaType(v string) (string, error) {
	m, _, err := mime.ParseMediaType(v)
	if err != nil {
		return "", err
	}
	major, minor, ok := strings.Cut(m, "/")
	if !ok || major == "" || minor == "" {
		return "", errors.New("media type without a subtype")
	}
	return strings.ToLower(m), nil
}
