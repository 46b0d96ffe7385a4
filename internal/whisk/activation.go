package whisk

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Activation statuses: the numeric codes and the text the REST view shows.
const (
	StatusSuccess          = 0
	StatusApplicationError = 1
	StatusDeveloperError   = 2
	StatusWhiskError       = 3
)

var statusText = [...]string{"success", "application error", "action developer error", "whisk internal error"}

// StatusText returns OpenWhisk's text for a status code.
func StatusText(code int) string {
	if code < 0 || code >= len(statusText) {
		return statusText[StatusWhiskError]
	}
	return statusText[code]
}

// Response is an activation's outcome.
type Response struct {
	Status     string          `json:"status"`
	StatusCode int             `json:"statusCode"`
	Success    bool            `json:"success"`
	Result     json.RawMessage `json:"result,omitempty"`
	Size       *int            `json:"size,omitempty"`
}

// NewResponse builds a Response with a status code and a result.
func NewResponse(code int, result json.RawMessage) Response {
	return Response{Status: StatusText(code), StatusCode: code, Success: code == StatusSuccess, Result: result}
}

// ErrorResponse builds a Response whose result is {"error": msg}.
func ErrorResponse(code int, msg string) Response {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return NewResponse(code, b)
}

// Activation is an activation record, in OpenWhisk's JSON shape.
type Activation struct {
	Namespace    string       `json:"namespace"`
	Name         string       `json:"name"`
	Version      string       `json:"version"`
	Subject      string       `json:"subject"`
	ActivationID ActivationID `json:"activationId"`
	Start        int64        `json:"start"` // epoch ms
	End          int64        `json:"end"`   // epoch ms
	Duration     int64        `json:"duration"`
	StatusCode   int          `json:"statusCode"`
	Response     Response     `json:"response"`
	Logs         []string     `json:"logs"`
	Annotations  Params       `json:"annotations"`
	Publish      bool         `json:"publish"`
}

// Start kinds: how the container that ran an activation came to be.
const (
	StartCold    = "cold"
	StartPrewarm = "prewarm"
	StartWarm    = "warm"
)

// Timings is Eddy's breakdown of where an activation's time went, in ms.
// Queued is from publication until a container took it; Create is the part
// of Queued spent creating the container that ran it (cold starts only);
// Init is /init (cold only); Run is /run.
type Timings struct {
	Queued int64  `json:"queued"`
	Create int64  `json:"create,omitempty"`
	Init   int64  `json:"init,omitempty"`
	Run    int64  `json:"run"`
	Start  string `json:"start"`
}

// Annotation keys of activation records.
const (
	AnnPath     = "path"
	AnnKind     = "kind"
	AnnLimits   = "limits"
	AnnTimeout  = "timeout"
	AnnWaitTime = "waitTime"
	AnnInitTime = "initTime"
	AnnTimings  = "timings" // Eddy's own: a Timings object
	AnnStart    = "start"   // Eddy's own: StartCold, StartPrewarm or StartWarm
	// AnnBinding is on an activation made through a package binding
	// ("ns/binding") and on a binding itself ({"namespace","name"} of its target).
	AnnBinding = "binding"
)

// Annotate sets the record's standard annotations from the action and the timings.
// It is on every activation's path, so the values are encoded by hand
// (exactly as json.Marshal encodes them) and merged once.
func (a *Activation) Annotate(meta ActionMeta, t Timings, timedOut bool) {
	add := make(Params, 0, 8)
	add = append(add,
		KeyValue{Key: AnnPath, Value: AppendJSONString(nil, meta.Namespace+"/"+meta.Name)},
		KeyValue{Key: AnnKind, Value: AppendJSONString(nil, meta.Kind)},
		KeyValue{Key: AnnLimits, Value: meta.Limits.appendJSON(nil)},
		KeyValue{Key: AnnTimeout, Value: strconv.AppendBool(nil, timedOut)},
		KeyValue{Key: AnnWaitTime, Value: strconv.AppendInt(nil, t.Queued, 10)},
	)
	if t.Start != StartWarm && t.Init > 0 {
		add = append(add, KeyValue{Key: AnnInitTime, Value: strconv.AppendInt(nil, t.Init, 10)})
	}
	if t.Start != "" {
		add = append(add, KeyValue{Key: AnnStart, Value: AppendJSONString(nil, t.Start)})
	}
	add = append(add, KeyValue{Key: AnnTimings, Value: t.appendJSON(nil)})
	a.Annotations = a.Annotations.Merge(add)
}

// RecordOf starts the record of activation m of the action meta: in the
// invoking subject's namespace, under the action's bare name (a packaged
// action's record is "name", its path annotation "ns/pkg/name"), with the
// binding annotation when m came through a binding. Annotate adds the rest.
func RecordOf(m *ActivationMessage, meta ActionMeta) Activation {
	_, bare := SplitPackaged(meta.Name)
	a := Activation{
		Namespace: m.RecordNamespace(), Name: bare, Version: meta.Version,
		Subject: m.Subject, ActivationID: m.ActivationID,
	}
	if m.Binding != "" {
		a.Annotations = Params{{Key: AnnBinding, Value: AppendJSONString(nil, m.Binding)}}
	}
	return a
}

// appendJSON appends t as json.Marshal encodes it.
func (t Timings) appendJSON(b []byte) []byte {
	b = append(b, `{"queued":`...)
	b = strconv.AppendInt(b, t.Queued, 10)
	if t.Create != 0 {
		b = append(b, `,"create":`...)
		b = strconv.AppendInt(b, t.Create, 10)
	}
	if t.Init != 0 {
		b = append(b, `,"init":`...)
		b = strconv.AppendInt(b, t.Init, 10)
	}
	b = append(b, `,"run":`...)
	b = strconv.AppendInt(b, t.Run, 10)
	b = append(b, `,"start":`...)
	b = AppendJSONString(b, t.Start)
	return append(b, '}')
}

// appendJSON appends l as json.Marshal encodes it.
func (l Limits) appendJSON(b []byte) []byte {
	b = append(b, `{"timeout":`...)
	b = strconv.AppendInt(b, l.Timeout, 10)
	b = append(b, `,"memory":`...)
	b = strconv.AppendInt(b, l.Memory, 10)
	b = append(b, `,"logs":`...)
	b = strconv.AppendInt(b, l.Logs, 10)
	b = append(b, `,"concurrency":`...)
	b = strconv.AppendInt(b, int64(l.Concurrency), 10)
	if l.Instances != 0 {
		b = append(b, `,"instances":`...)
		b = strconv.AppendInt(b, int64(l.Instances), 10)
	}
	return append(b, '}')
}

// AppendJSONString appends s as json.Marshal encodes it: as is when every
// byte is printable ASCII that needs no escape, else by json.Marshal.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ActivationSummary is the list view of a record without result and logs.
func (a Activation) Summary() Activation {
	s := a
	s.Logs = nil
	s.Response = Response{}
	return s
}

// FilterName is the name an activation list's name filter matches (the
// stores index it): "binding/name" for an activation made through a
// binding, "pkg/name" for a packaged action's, else the name (OpenWhisk:
// `wsk activation list pkg/a`).
func (a *Activation) FilterName() string {
	var path string
	for _, kv := range a.Annotations {
		switch kv.Key {
		case AnnBinding:
			if b := annString(kv.Value); b != "" {
				if _, bare, ok := strings.Cut(b, "/"); ok {
					return bare + "/" + a.Name
				}
			}
		case AnnPath:
			path = annString(kv.Value)
		}
	}
	// path is ns/name or ns/pkg/name.
	if i := strings.IndexByte(path, '/'); i >= 0 {
		if pkg, _, ok := strings.Cut(path[i+1:], "/"); ok {
			return pkg + "/" + a.Name
		}
	}
	return a.Name
}

// annString returns a JSON string annotation value ("" when it is not one).
func annString(v json.RawMessage) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}
