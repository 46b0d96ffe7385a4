package whisk

import "encoding/json"

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
)

// Annotate sets the record's standard annotations from the action and the timings.
func (a *Activation) Annotate(meta ActionMeta, t Timings, timedOut bool) {
	add := func(k string, v any) {
		b, _ := json.Marshal(v)
		a.Annotations = a.Annotations.Merge(Params{{Key: k, Value: b}})
	}
	add(AnnPath, meta.Namespace+"/"+meta.Name)
	add(AnnKind, meta.Kind)
	add(AnnLimits, meta.Limits)
	add(AnnTimeout, timedOut)
	add(AnnWaitTime, t.Queued)
	if t.Start != StartWarm && t.Init > 0 {
		add(AnnInitTime, t.Init)
	}
	if t.Start != "" {
		add(AnnStart, t.Start)
	}
	add(AnnTimings, t)
}

// ActivationSummary is the list view of a record without result and logs.
func (a Activation) Summary() Activation {
	s := a
	s.Logs = nil
	s.Response = Response{}
	return s
}
