package whisk

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The names of the limits a 429 reports in its "limit" field.
const (
	LimitInvocationsPerMinute = "invocationsPerMinute"
	LimitConcurrentContainers = "concurrentContainers"
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

// ParseTooManyConcurrent recognises MsgTooManyConcurrent's text (the error
// the queue records when the namespace's concurrent-containers limit fails
// an activation) and returns its count and limit.
func ParseTooManyConcurrent(msg string) (count, allowed int, ok bool) {
	if !strings.HasPrefix(msg, "Too many concurrent requests in flight (") {
		return 0, 0, false
	}
	n, err := fmt.Sscanf(msg, "Too many concurrent requests in flight (count: %d, allowed: %d).", &count, &allowed)
	if err != nil || n != 2 || MsgTooManyConcurrent(count, allowed) != msg {
		return 0, 0, false
	}
	return count, allowed, true
}
