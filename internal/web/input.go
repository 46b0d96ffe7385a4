package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The reserved argument names a web request adds (WebApiDirectives).
const (
	ParamMethod  = "__ow_method"
	ParamHeaders = "__ow_headers"
	ParamPath    = "__ow_path"
	ParamUser    = "__ow_user"
	ParamQuery   = "__ow_query"
	ParamBody    = "__ow_body"
)

// Reserved reports whether key is one of the __ow_* names a caller may not set.
func Reserved(key string) bool {
	switch key {
	case ParamMethod, ParamHeaders, ParamPath, ParamUser, ParamQuery, ParamBody:
		return true
	}
	return false
}

// Messages of refused requests (OpenWhisk's wording, http/ErrorResponse.scala).
const (
	MsgReservedParams      = "Request defines parameters that are not allowed (e.g., reserved properties)."
	MsgMalformed           = "The request content was malformed:\n"
	MsgUnsupportedContent  = "Content type is not supported."
	MsgResponseNotReady    = "Response not yet ready."
	MsgErrorProcessing     = "There was an error processing your request."
	MsgPropertyNotFound    = "Response does not include requested property."
	MsgHTTPUnknownType     = "Response did not specify a known content-type."
	MsgHTTPContentTypeDiff = "Response type in header did not match generated content type."
)

// MsgTooLarge is the 413 message of a request body over the limit.
func MsgTooLarge(size, limit int64) string {
	return "Request larger than allowed: " + itoa(size) + " > " + itoa(limit) + " bytes."
}

// MsgInvalidMedia is the 400 message of a result the extension cannot render.
func MsgInvalidMedia(mediaType string) string { return "Response is not valid '" + mediaType + "'." }

// Error is a refusal: an HTTP status and OpenWhisk's message for it.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// Request is what a web action sees of an HTTP request.
type Request struct {
	Method string      // any case; passed lower-cased
	Header http.Header // request headers (Host is added from Host)
	Host   string
	// Path is the URL path after the action segment, as sent: "" or "/a/b".
	Path     string
	RawQuery string
	Body     []byte
	// User is the caller's namespace when valid credentials came with the
	// request ("" for anonymous callers).
	User string
}

// Args builds the action's argument object from req (WebActions.scala
// Context.toActionArgument). In the default mode query parameters merge in
// as strings and a JSON object or form body merges its fields (query <
// body); any other body is passed as __ow_body (binary types in base64). A
// query or body key that is reserved, or for which protected reports true
// (the action's final parameters), is refused with 400. In raw mode
// (raw-http) nothing merges: __ow_query is the query string and __ow_body
// the body (base64 for binary types and exactly application/json).
func Args(req Request, raw bool, protected func(string) bool) (json.RawMessage, *Error) {
	o := newObject()
	o.set(ParamMethod, jsonString(strings.ToLower(req.Method)))
	o.set(ParamHeaders, headersJSON(req.Header, req.Host))
	o.set(ParamPath, jsonString(req.Path))
	if req.User != "" {
		o.set(ParamUser, jsonString(req.User))
	}
	ctype := req.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ctype)
	mt = strings.ToLower(mt)
	hasEntity := len(req.Body) > 0 || ctype != ""

	if raw {
		o.set(ParamQuery, jsonString(req.RawQuery))
		switch {
		case !hasEntity:
			o.set(ParamBody, jsonString(""))
		case ctype == "" || perr != nil || mt == "application/json" || Binary(mt):
			o.set(ParamBody, jsonString(base64.StdEncoding.EncodeToString(req.Body)))
		default:
			o.set(ParamBody, jsonString(string(req.Body)))
		}
		return o.bytes(), nil
	}

	query, err := url.ParseQuery(req.RawQuery)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, MsgMalformed+err.Error())
	}
	qkeys := make([]string, 0, len(query))
	for k := range query {
		if Reserved(k) || (protected != nil && protected(k)) {
			return nil, refuse(http.StatusBadRequest, MsgReservedParams)
		}
		qkeys = append(qkeys, k)
	}
	sort.Strings(qkeys)
	for _, k := range qkeys {
		v := query[k]
		o.set(k, jsonString(v[len(v)-1]))
	}

	switch {
	case !hasEntity:
	case perr == nil && JSONFamily(mt):
		t := bytes.TrimSpace(req.Body)
		if len(t) == 0 {
			break
		}
		if !json.Valid(t) {
			var x any
			err := json.Unmarshal(t, &x)
			return nil, refuse(http.StatusBadRequest, MsgMalformed+err.Error())
		}
		if t[0] != '{' {
			o.set(ParamBody, json.RawMessage(t))
			break
		}
		var fields orderedFields
		if err := json.Unmarshal(t, &fields); err != nil {
			return nil, refuse(http.StatusBadRequest, MsgMalformed+err.Error())
		}
		for _, kv := range fields {
			if Reserved(kv.key) || (protected != nil && protected(kv.key)) {
				return nil, refuse(http.StatusBadRequest, MsgReservedParams)
			}
		}
		for _, kv := range fields {
			o.set(kv.key, kv.value)
		}
	case perr == nil && mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(req.Body))
		if err != nil {
			return nil, refuse(http.StatusBadRequest, MsgMalformed+err.Error())
		}
		keys := make([]string, 0, len(form))
		for k := range form {
			if Reserved(k) || (protected != nil && protected(k)) {
				return nil, refuse(http.StatusBadRequest, MsgReservedParams)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := form[k]
			o.set(k, jsonString(v[len(v)-1]))
		}
	case ctype == "" || perr != nil || Binary(mt):
		o.set(ParamBody, jsonString(base64.StdEncoding.EncodeToString(req.Body)))
	default:
		o.set(ParamBody, jsonString(string(req.Body)))
	}
	return o.bytes(), nil
}

// headersJSON renders the request headers with lower-cased names; repeated
// headers are joined with ", " (one field per name, as HTTP allows).
func headersJSON(h http.Header, host string) json.RawMessage {
	keys := make([]string, 0, len(h)+1)
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o := newObject()
	if host != "" && h.Get("Host") == "" {
		o.set("host", jsonString(host))
	}
	for _, k := range keys {
		o.set(strings.ToLower(k), jsonString(strings.Join(h[k], ", ")))
	}
	return o.bytes()
}

// JSONFamily reports whether a media type is application/json or a +json type.
func JSONFamily(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// Binary reports whether a media type carries bytes rather than text
// (pekko-http's MediaType.binary): text/*, the JSON and XML families,
// JavaScript and form data are text; everything else (images, audio,
// video, octet-stream, multipart, unknown application types) is binary.
func Binary(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "text/"), JSONFamily(mt), strings.HasSuffix(mt, "+xml") && !strings.HasPrefix(mt, "image/"):
		return false
	}
	switch mt {
	case "application/xml", "application/javascript", "application/x-www-form-urlencoded",
		"application/ecmascript", "application/x-javascript":
		return false
	}
	return true
}

// object builds a JSON object in insertion order, later keys replacing
// earlier ones in place.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

func newObject() *object { return &object{vals: map[string]json.RawMessage{}} }

func (o *object) set(k string, v json.RawMessage) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) bytes() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(k))
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// jsonString encodes s without escaping <, > and & (OpenWhisk's bodies
// carry them as they are).
func jsonString(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
