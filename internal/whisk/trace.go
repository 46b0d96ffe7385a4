package whisk

// AnnTraceID is the annotation of a record whose invocation carried a W3C
// trace context: the trace's id (32 hex digits), to find its spans.
const AnnTraceID = "traceId"

// TraceIDOf returns the trace id of a W3C traceparent header value
// ("00-<trace id>-<parent id>-<flags>"), or "" when tp is not a valid one.
func TraceIDOf(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || (len(tp) > 55 && tp[55] != '-') {
		return ""
	}
	if tp[:2] == "ff" || !lowerHex(tp[:2]) || !lowerHex(tp[3:35]) || !lowerHex(tp[36:52]) || !lowerHex(tp[53:55]) {
		return ""
	}
	if tp[:2] == "00" && len(tp) != 55 {
		return ""
	}
	id := tp[3:35]
	if id == "00000000000000000000000000000000" || tp[36:52] == "0000000000000000" {
		return ""
	}
	return id
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
