package whisk

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error so that every transport maps it the same way.
// HTTPStatus maps a Kind to its REST status; the gRPC mapping lives with the
// gRPC adapter and uses the same kinds.
type Kind int

// The error kinds. Other is the zero value and means "unclassified"; it maps
// to an internal error.
const (
	Other        Kind = iota
	Invalid           // the request is malformed or out of range (400)
	Unauthorized      // no or bad credentials (401)
	Forbidden         // credentials fine, entitlement missing (403)
	NotFound          // the entity does not exist (404)
	Conflict          // exists already, or concurrent modification (409)
	TooLarge          // a payload over its limit (413)
	Throttled         // a rate or concurrency limit was hit (429)
	Unavailable       // no capacity, a dependency is down (503)
	Internal          // a bug or an unexpected failure (500)
	Timeout           // a deadline passed (504 on the API; activation records use their own statuses)
)

var kindNames = [...]string{
	Other: "other", Invalid: "invalid", Unauthorized: "unauthorized", Forbidden: "forbidden",
	NotFound: "not found", Conflict: "conflict", TooLarge: "too large", Throttled: "throttled",
	Unavailable: "unavailable", Internal: "internal", Timeout: "timeout",
}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// HTTPStatus is the one place a Kind becomes an HTTP status code.
func (k Kind) HTTPStatus() int {
	switch k {
	case Invalid:
		return http.StatusBadRequest
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Throttled:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	case Timeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error with a Kind and a message meant for the API caller.
// Op names the operation that failed (for logs); Msg is what the user sees;
// Err is the cause, kept for errors.Is/As and for logs, never shown to users
// unless Msg is empty.
type Error struct {
	Op   string
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	} else if e.Err != nil {
		msg = msg + ": " + e.Err.Error()
	}
	if e.Op != "" {
		return e.Op + ": " + msg
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an *Error. Arguments are taken by type: a string is the op, a Kind
// the kind, an error the cause; use Msg for the user-facing message.
func E(op string, kind Kind, msg string, cause error) error {
	return &Error{Op: op, Kind: kind, Msg: msg, Err: cause}
}

// Errorf is E with a formatted user message and no cause.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the Kind of the outermost *Error in err's chain that has
// one, or Internal when none does. A nil error has kind Other.
func KindOf(err error) Kind {
	if err == nil {
		return Other
	}
	var e *Error
	for errors.As(err, &e) {
		if e.Kind != Other {
			return e.Kind
		}
		if e.Err == nil {
			break
		}
		err = e.Err
	}
	return Internal
}

// UserMessage returns the message a caller should see for err: the Msg of
// the first *Error with one; for errors without one, a generic message by kind
// so internal details do not leak.
func UserMessage(err error) string {
	var e *Error
	for errors.As(err, &e) {
		if e.Msg != "" {
			return e.Msg
		}
		if e.Err == nil {
			break
		}
		err = e.Err
	}
	switch KindOf(err) {
	case NotFound:
		return MsgNotFound
	case Unauthorized:
		return MsgAuthInvalid
	case Forbidden:
		return MsgForbidden
	default:
		return MsgInternal
	}
}

// IsKind reports whether err has kind k.
func IsKind(err error, k Kind) bool { return err != nil && KindOf(err) == k }
