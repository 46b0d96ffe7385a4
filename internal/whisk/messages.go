package whisk

import "fmt"

// User-facing messages, worded as OpenWhisk words them so that clients and
// people who know OpenWhisk recognise them. Keep every API message here.
const (
	MsgAuthMissing      = "The resource requires authentication, which is not supplied with the request."
	MsgAuthInvalid      = "The supplied authentication is invalid."
	MsgForbidden        = "The supplied authentication is not authorized to access this resource."
	MsgNotFound         = "The requested resource does not exist."
	MsgExists           = "resource already exists"
	MsgConcurrentUpdate = "Concurrent modification to resource detected."
	MsgInternal         = "The server encountered an internal error."
	MsgBadActivationID  = "The activation id is not valid."
	MsgBadTimeout       = "Timeout must be number of milliseconds up to 60000."
	MsgReservedParams   = "Request defines parameters that are not allowed (e.g., reserved properties)."
	MsgMalformed        = "The request content was malformed:\n"
	MsgNoSchedulers     = "No scheduler is available to host the action's queue."
	MsgMethodNotAllowed = "The requested method is not allowed for this resource."
	MsgBadEntityName    = "The name of the entity contains illegal characters."
	MsgWrongCollection  = "Resource by this name exists but is not in this collection."

	// Activation errors (the result of a failed activation).
	MsgInitExited     = "The action did not initialize and exited unexpectedly."
	MsgRunExited      = "The action did not produce a valid response and exited unexpectedly."
	MsgOOM            = "The action exhausted its memory and was aborted."
	MsgLogsMaybeGone  = "The action did not initialize or run as expected. Log data might be missing."
	MsgNoContainer    = "Failed to start a container for the action."
	MsgSchedulerLost  = "The activation was lost with the scheduler that held it."
	MsgInvokerLost    = "The invoker running the activation stopped before it finished."
	MsgStubNotRunning = "The action's container stopped before the activation ran."
)

// MsgContainerLost is the result error of an activation handed to a
// container whose key vanished (its invoker died or lost its lease) before
// a record of it was written.
func MsgContainerLost(invoker, container string) string {
	return fmt.Sprintf("The invoker %s running the activation was lost (container %s is gone) before the activation finished.", invoker, container)
}

// MsgNoRecord is the result error of an activation handed to a container
// that wrote no record of it long past the action's time limit.
func MsgNoRecord(invoker, container string, ms int64) string {
	return fmt.Sprintf("No result came from container %s of invoker %s within %d milliseconds of handing it the activation.", container, invoker, ms)
}

// MsgTimeLimit is the result error of an activation that ran past its limit.
func MsgTimeLimit(ms int64, duringInit bool) string {
	if duringInit {
		return fmt.Sprintf("The action exceeded its time limits of %d milliseconds during initialization.", ms)
	}
	return fmt.Sprintf("The action exceeded its time limits of %d milliseconds.", ms)
}

// MsgInvalidRunResponse is the error when /run answered with something that is not JSON.
func MsgInvalidRunResponse(body string) string {
	return "The action did not produce a valid JSON or JSON Array response: " + body
}

// MsgInitFailed is the error when /init failed without an "error" field.
func MsgInitFailed(body string) string {
	return "The action failed during initialization: " + body
}

// MsgResultTooLarge is the error when a result exceeds the limit.
func MsgResultTooLarge(size, limit int, truncated string) string {
	return fmt.Sprintf("The action produced a response that exceeded the allowed length: %d > %d bytes. The truncated response was: %s", size, limit, truncated)
}

// MsgLogsTruncated is the last log line when logs were cut at the limit.
func MsgLogsTruncated(limit int64) string {
	return fmt.Sprintf("Logs were truncated because the total bytes size exceeds the limit of %d bytes.", limit)
}

// MsgNotInitiated is the error of an activation that stayed queued past the retention.
func MsgNotInitiated(ms int64) string {
	return fmt.Sprintf("Activation processing is not initiated for %d ms", ms)
}

// MsgTooManyPerMinute and MsgTooManyConcurrent are the 429 messages.
func MsgTooManyPerMinute(count, allowed int) string {
	return fmt.Sprintf("Too many requests in the last minute (count: %d, allowed: %d).", count, allowed)
}

// MsgTooManyConcurrent is the 429 message for the concurrent-containers limit.
func MsgTooManyConcurrent(count, allowed int) string {
	return fmt.Sprintf("Too many concurrent requests in flight (count: %d, allowed: %d).", count, allowed)
}

// MsgUnsupportedKind is the message for an exec kind the manifest lacks.
func MsgUnsupportedKind(kind string, valid []string) string {
	return fmt.Sprintf("The specified runtime '%s' is not supported by this platform. Valid values are: %s.", kind, joinQuoted(valid))
}

// MsgPayloadTooLarge is the 413 message.
func MsgPayloadTooLarge(size, limit int64) string {
	return fmt.Sprintf("The request content was too large (%d bytes), the limit is %d bytes.", size, limit)
}

func joinQuoted(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += "'" + s + "'"
	}
	return out
}
