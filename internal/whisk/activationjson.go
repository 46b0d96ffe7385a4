package whisk

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends a as json.Marshal encodes it, without reflection: it
// is the document every activation record is stored as. A record with a
// raw value json.Marshal would rewrite (see PlainJSON: the result or an
// annotation value with whitespace, <, > or &, U+2028 or U+2029, or that
// is not valid JSON) goes through json.Marshal, so the output is always
// json.Marshal's, and so is the error.
func (a *Activation) AppendJSON(b []byte) ([]byte, error) {
	if len(a.Response.Result) > 0 && !plainValue(a.Response.Result) || !a.Annotations.plainValues() {
		return marshalAppend(b, a)
	}
	b = append(b, `{"namespace":`...)
	b = AppendJSONString(b, a.Namespace)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, a.Name)
	b = append(b, `,"version":`...)
	b = AppendJSONString(b, a.Version)
	b = append(b, `,"subject":`...)
	b = AppendJSONString(b, a.Subject)
	b = append(b, `,"activationId":`...)
	b = AppendJSONString(b, string(a.ActivationID))
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, a.Start, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, a.End, 10)
	if a.Cause != "" {
		b = append(b, `,"cause":`...)
		b = AppendJSONString(b, string(a.Cause))
	}
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, a.Duration, 10)
	b = append(b, `,"statusCode":`...)
	b = strconv.AppendInt(b, int64(a.StatusCode), 10)
	b = append(b, `,"response":`...)
	b = a.Response.appendJSON(b)
	b = append(b, `,"logs":`...)
	if a.Logs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, l := range a.Logs {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, l)
		}
		b = append(b, ']')
	}
	b = append(b, `,"annotations":`...)
	b = a.Annotations.appendJSON(b)
	b = append(b, `,"publish":`...)
	b = strconv.AppendBool(b, a.Publish)
	return append(b, '}'), nil
}

// marshalAppend appends v as json.Marshal encodes it: the hand encoders'
// way out for what they do not write themselves.
func marshalAppend(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	return append(b, j...), err
}

// appendJSON appends r as json.Marshal encodes it; the caller checked that
// the result is PlainJSON.
func (r *Response) appendJSON(b []byte) []byte {
	b = append(b, `{"status":`...)
	b = AppendJSONString(b, r.Status)
	b = append(b, `,"statusCode":`...)
	b = strconv.AppendInt(b, int64(r.StatusCode), 10)
	b = append(b, `,"success":`...)
	b = strconv.AppendBool(b, r.Success)
	if len(r.Result) > 0 {
		b = append(b, `,"result":`...)
		b = append(b, r.Result...)
	}
	if r.Size != nil {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, int64(*r.Size), 10)
	}
	return append(b, '}')
}

// appendJSON appends p as json.Marshal encodes it (null when nil); the
// caller checked that every value is PlainJSON.
func (p Params) appendJSON(b []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, kv := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = AppendJSONString(b, kv.Key)
		b = append(b, `,"value":`...)
		if kv.Value == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, kv.Value...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// plainValue is PlainJSON with a fast path for the values records mostly
// carry (those of Annotate, an empty result): a string of printable ASCII
// without spaces or escapes, an integer, true, false, null, {} or [], which
// are valid and plain without running the JSON scanner.
func plainValue(v []byte) bool {
	switch string(v) {
	case "true", "false", "null", "{}", "[]":
		return true
	}
	if n := len(v); n >= 2 && v[0] == '"' && v[n-1] == '"' {
		for _, c := range v[1 : n-1] {
			if c < ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return PlainJSON(v)
			}
		}
		return true
	}
	if n := len(v); n > 0 && n < 20 {
		i := 0
		if v[0] == '-' {
			i = 1
		}
		if i < n && (v[i] != '0' || i == n-1) {
			for _, c := range v[i:] {
				if c < '0' || c > '9' {
					return PlainJSON(v)
				}
			}
			return true
		}
	}
	return PlainJSON(v)
}

// AppendJSON appends c as json.Marshal encodes it (see
// Activation.AppendJSON): every activation's completion is sent so.
func (c *Completion) AppendJSON(b []byte) ([]byte, error) {
	orig := b
	b = append(b, `{"activation":`...)
	b, err := c.Activation.AppendJSON(b)
	if err != nil {
		return orig, err
	}
	if c.InvokerID != "" {
		b = append(b, `,"invokerId":`...)
		b = AppendJSONString(b, c.InvokerID)
	}
	return append(b, '}'), nil
}
