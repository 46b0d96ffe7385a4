package whisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The names of the limits a 429 reports in its "limit" field.
const (
	LimitInvocationsPerMinute = "invocationsPerMinute"
	LimitConcurrentContainers = "concurrentContainers"
	LimitFiresPerMinute       = "firesPerMinute" // trigger fires
)

// Throttle is the cause carried by a Throttled *Error: which limit refused
// the request and how long the caller should wait before retrying. The API's
// error writer finds it with errors.As (see ThrottleOf) to set Retry-After
// and the body's "limit" field.
type Throttle struct {
	Limit      string        // LimitInvocationsPerMinute or LimitConcurrentContainers
	RetryAfter time.Duration // until the limit frees a slot (≥ 1 s when sent)
	Count      int           // the count the message reports
	Allowed    int           // the limit
}

func (t *Throttle) Error() string {
	return fmt.Sprintf("%s limit hit (count: %d, allowed: %d), retry after %s", t.Limit, t.Count, t.Allowed, t.RetryAfter)
}

// Message is OpenWhisk's 429 message for t.
func (t *Throttle) Message() string {
	if t.Limit == LimitConcurrentContainers {
		return MsgTooManyConcurrent(t.Count, t.Allowed)
	}
	return MsgTooManyPerMinute(t.Count, t.Allowed)
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1:
// the value of the Retry-After header.
func (t *Throttle) RetryAfterSeconds() int {
	s := int((t.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// ThrottledError builds the Throttled *Error for t, with OpenWhisk's message.
func ThrottledError(op string, t *Throttle) error {
	return &Error{Op: op, Kind: Throttled, Msg: t.Message(), Err: t}
}

// ThrottleOf returns the *Throttle in err's chain, or nil.
func ThrottleOf(err error) *Throttle {
	var t *Throttle
	if errors.As(err, &t) {
		return t
	}
	return nil
}

// AnnThrottled is the annotation key of the explicit throttle marker: a
// record the queue failed because a limit refused its activation (today the
// namespace's concurrent-containers limit) carries
// {"limit", "count", "allowed", "retryAfterMs"}, so the controller answers
// 429 from the marker, whether the record came in a completion or from the
// store, and never from the message text.
const AnnThrottled = "throttled"

type throttleMark struct {
	Limit        string `json:"limit"`
	Count        int    `json:"count"`
	Allowed      int    `json:"allowed"`
	RetryAfterMs int64  `json:"retryAfterMs"`
}

// MarkThrottled sets the throttle marker on a record.
func (a *Activation) MarkThrottled(t *Throttle) {
	b, _ := json.Marshal(throttleMark{Limit: t.Limit, Count: t.Count, Allowed: t.Allowed, RetryAfterMs: t.RetryAfter.Milliseconds()})
	a.Annotations = a.Annotations.Merge(Params{{Key: AnnThrottled, Value: b}})
}

// ThrottleOfRecord returns the throttle marker of a record the queue failed
// at a limit, or nil (no marker, or one that does not decode to a known
// limit).
func ThrottleOfRecord(a Activation) *Throttle {
	raw, ok := a.Annotations.Get(AnnThrottled)
	if !ok {
		return nil
	}
	var m throttleMark
	if json.Unmarshal(raw, &m) != nil || (m.Limit != LimitConcurrentContainers && m.Limit != LimitInvocationsPerMinute) {
		return nil
	}
	return &Throttle{Limit: m.Limit, Count: m.Count, Allowed: m.Allowed, RetryAfter: time.Duration(m.RetryAfterMs) * time.Millisecond}
}
