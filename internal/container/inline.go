package container

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Inline logs: Eddy's runtime server, asked in /init (InitRequest.Logs =
// InlineLogs) and confirming it in its answer (ConfirmsInlineLogs), hands
// each run's log lines over in the run's answer instead of writing them,
// and the sentinels, to the container's stdout and stderr; the container's
// log stream then carries nothing on the warm path. The answer's header
// InlineLogsHeader gives the length of the result at the start of the
// body; the rest of the body is the lines, each "<o|e><unix nanoseconds>
// <text>\n" (stdout or stderr). POST /logs answers the lines of a run whose
// caller gave up on it (its time limit) the same way. A runtime that does
// not know the extension ignores the field, and its output is read from the
// container's stream as before.
const (
	InlineLogs       = "inline"
	InlineLogsHeader = "Eddy-Logs"
)

// ConfirmsInlineLogs reports whether an /init answer confirmed inline logs.
func ConfirmsInlineLogs(body []byte) bool {
	if !bytes.Contains(body, []byte(`"logs"`)) {
		return false
	}
	var b struct {
		Logs string `json:"logs"`
	}
	return json.Unmarshal(body, &b) == nil && b.Logs == InlineLogs
}

// splitInline splits an answer whose InlineLogsHeader is h into its
// result and its lines; ok is false when h is not a length within body.
func splitInline(h string, body []byte) (result []byte, lines []LogLine, ok bool) {
	n, err := strconv.Atoi(h)
	if err != nil || n < 0 || n > len(body) {
		return body, nil, false
	}
	return body[:n:n], ParseInlineLogs(body[n:]), true
}

// ParseInlineLogs decodes the lines of an inline-logs answer; a line that
// does not parse is kept as a stderr line of its own text.
func ParseInlineLogs(b []byte) []LogLine {
	if len(b) == 0 {
		return nil
	}
	lines := make([]LogLine, 0, bytes.Count(b, []byte{'\n'})+1)
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		l := LogLine{Stream: Stderr, Text: string(line)}
		if sp := bytes.IndexByte(line, ' '); sp > 1 && (line[0] == 'o' || line[0] == 'e') {
			if ns, err := strconv.ParseInt(string(line[1:sp]), 10, 64); err == nil {
				l.Time = time.Unix(0, ns)
				l.Text = string(line[sp+1:])
				if line[0] == 'o' {
					l.Stream = Stdout
				}
			}
		}
		if l.Time.IsZero() {
			l.Time = time.Now()
		}
		lines = append(lines, l)
	}
	return lines
}

// Logs asks a runtime in inline-logs mode for the lines of the run under
// way so far (POST /logs): the run's caller gave up on it, and the
// container is about to go.
func (c *Client) Logs(ctx context.Context) ([]LogLine, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/logs", http.NoBody)
	if err != nil {
		return nil, err
	}
	// A connection of its own: the run's may still be in use.
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return nil, &TransportError{Op: "logs", Addr: c.addr, Err: unwrapURL(err, ctx)}
	}
	defer hresp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(hresp.Body); err != nil {
		return nil, &TransportError{Op: "logs", Addr: c.addr, Err: unwrapURL(err, ctx)}
	}
	_, lines, _ := splitInline(hresp.Header.Get(InlineLogsHeader), buf.Bytes())
	return lines, nil
}

// LimitLines formats lines as an activation's logs (FormatLogLine) up to
// limitBytes, with CollectLogs's truncation rule.
func LimitLines(lines []LogLine, limitBytes int64) (logs []string, truncated bool) {
	ll := limitedLines{limit: limitBytes, logs: make([]string, 0, len(lines))}
	for _, l := range lines {
		ll.add(l)
	}
	return ll.logs, ll.truncated
}
