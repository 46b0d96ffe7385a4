package invoker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// outcome is what became of one activation inside its container: the status
// and result of the record, whether the container must be destroyed, and
// whether the time limit was hit.
type outcome struct {
	code     int             // whisk.Status*
	result   json.RawMessage // always set
	destroy  bool            // the container is unusable: remove it
	timedOut bool
}

// success builds a successful outcome.
func success(result json.RawMessage) outcome {
	return outcome{code: whisk.StatusSuccess, result: result}
}

// failure builds an outcome whose result is {"error": msg}.
func failure(code int, msg string, destroy bool) outcome {
	return outcome{code: code, result: errorResult(msg), destroy: destroy}
}

// errorResult renders {"error": msg}.
func errorResult(msg string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

// wrapError renders {"error": <value>} around a JSON value as it came.
func wrapError(v json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(map[string]json.RawMessage{"error": v})
	return b
}

// runOutcome maps a /run reply to an outcome (reference §2.3):
//   - 200 and a JSON object: success, or application error when the object
//     has a top-level "error" key (the result is the object as it came);
//   - 200 and a JSON array: success;
//   - any other status: developer error carrying the reply's "error" field
//     (or, without one, the invalid-response message), container destroyed;
//   - a body that is not a JSON object or array: developer error
//     whisk.MsgInvalidRunResponse, container destroyed;
//   - a valid result over maxResult bytes: application error
//     whisk.MsgResultTooLarge with the result cut at maxResult.
//
// The result may share body's memory (a compact reply is kept as it is):
// body must not be reused after.
func runOutcome(status int, body []byte, maxResult int) outcome {
	body = bytes.TrimSpace(body)
	r := parseJSON(body)
	if status != http.StatusOK {
		if r.hasErr {
			return outcome{code: whisk.StatusDeveloperError, result: wrapError(r.errVal), destroy: true}
		}
		return failure(whisk.StatusDeveloperError, whisk.MsgInvalidRunResponse(string(body)), true)
	}
	if !r.isObj && !r.isArr {
		return failure(whisk.StatusDeveloperError, whisk.MsgInvalidRunResponse(string(body)), true)
	}
	if maxResult > 0 && len(body) > maxResult {
		return failure(whisk.StatusApplicationError, whisk.MsgResultTooLarge(len(body), maxResult, truncate(body, maxResult)), false)
	}
	result := body
	if !r.compact {
		result = compact(body)
	}
	if r.hasErr {
		return outcome{code: whisk.StatusApplicationError, result: result}
	}
	return success(result)
}

// initOutcome maps a failed /init reply (status not 200) to an outcome: the
// reply's "error" field when it has one, else whisk.MsgInitFailed with the
// body. The container is always destroyed.
func initOutcome(body []byte) outcome {
	body = bytes.TrimSpace(body)
	if r := parseJSON(body); r.hasErr {
		return outcome{code: whisk.StatusDeveloperError, result: wrapError(r.errVal), destroy: true}
	}
	return failure(whisk.StatusDeveloperError, whisk.MsgInitFailed(string(body)), true)
}

// reply is what the invoker reads of a /run or /init reply body.
type reply struct {
	isObj, isArr bool            // the body is a valid JSON object or array
	errVal       json.RawMessage // the object's top-level "error" when hasErr
	hasErr       bool
	compact      bool // the body is valid JSON that json.Compact leaves as it is
}

// parseJSON reads body: a compact body in one scan (whisk.CompactField),
// any other by encoding/json.
func parseJSON(body []byte) (r reply) {
	if len(body) == 0 {
		return r
	}
	if v, found, ok := whisk.CompactField(body, "error"); ok {
		r.isObj, r.isArr, r.compact = body[0] == '{', body[0] == '[', true
		r.errVal, r.hasErr = v, found
		return r
	}
	switch body[0] {
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err == nil {
			r.isObj = true
			r.errVal, r.hasErr = obj["error"]
		}
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(body, &arr); err == nil {
			r.isArr = true
		}
	}
	return r
}

// compact drops insignificant whitespace from valid JSON; b without any
// white space is returned as it is (json.Compact would copy it unchanged).
func compact(b []byte) json.RawMessage {
	if !bytes.ContainsAny(b, " \t\r\n") {
		return b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// truncate cuts b to at most n bytes without splitting a UTF-8 character.
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[:n]
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// recordInput is everything a record is built from.
type recordInput struct {
	msg      *whisk.ActivationMessage
	start    int64 // epoch ms: when /init (cold) or /run (warm) began
	end      int64 // epoch ms
	out      outcome
	logs     []string
	logsDone bool // every log line up to the sentinels was collected
	timings  whisk.Timings
}

// buildRecord makes the activation record. Duration is end − start, which
// on a cold start includes /init, as OpenWhisk counts it. Developer errors
// whose logs are incomplete get whisk.MsgLogsMaybeGone as a last log line.
func buildRecord(in recordInput) whisk.Activation {
	meta := in.msg.Action
	logs := in.logs
	if logs == nil {
		logs = []string{}
	}
	if in.out.code == whisk.StatusDeveloperError && !in.logsDone {
		logs = append(logs, whisk.MsgLogsMaybeGone)
	}
	end := in.end
	if end < in.start {
		end = in.start
	}
	a := whisk.RecordOf(in.msg, meta)
	a.Start, a.End, a.Duration = in.start, end, end-in.start
	a.StatusCode, a.Response = in.out.code, whisk.NewResponse(in.out.code, in.out.result)
	a.Logs = logs
	a.Annotate(meta, in.timings, in.out.timedOut)
	return a
}

// queuedMs is how long an activation waited from publication until a
// container took it, never negative.
func queuedMs(published, start int64) int64 {
	if published <= 0 || start < published {
		return 0
	}
	return start - published
}
