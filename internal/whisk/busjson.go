package whisk

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends m as json.Marshal encodes it, without reflection on
// the invoke path. A message json.Marshal would rewrite (a raw value with
// whitespace, <, > or &, U+2028 or U+2029, or that is not valid JSON) or
// that has init parameters goes through json.Marshal.
func (m *ActivationMessage) AppendJSON(b []byte) ([]byte, error) {
	if len(m.InitParams) > 0 || !PlainJSON(m.Params) {
		return marshalAppend(b, m)
	}
	if !m.Action.Annotations.plainValues() {
		return marshalAppend(b, m)
	}
	b = append(b, `{"activationId":`...)
	b = AppendJSONString(b, string(m.ActivationID))
	b = append(b, `,"transid":`...)
	b = AppendJSONString(b, m.TransactionID)
	b = append(b, `,"action":`...)
	b = m.Action.appendJSON(b)
	b = append(b, `,"subject":`...)
	b = AppendJSONString(b, m.Subject)
	if m.APIKey != "" {
		b = append(b, `,"apiKey":`...)
		b = AppendJSONString(b, m.APIKey)
	}
	b = append(b, `,"params":`...)
	if m.Params == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Params...)
	}
	b = append(b, `,"blocking":`...)
	b = strconv.AppendBool(b, m.Blocking)
	b = append(b, `,"controller":`...)
	b = AppendJSONString(b, m.ControllerID)
	b = append(b, `,"published":`...)
	b = strconv.AppendInt(b, m.Published, 10)
	if m.NamespaceLimit != 0 {
		b = append(b, `,"namespaceLimit":`...)
		b = strconv.AppendInt(b, int64(m.NamespaceLimit), 10)
	}
	if m.CallerNamespace != "" {
		b = append(b, `,"callerNamespace":`...)
		b = AppendJSONString(b, m.CallerNamespace)
	}
	if m.Binding != "" {
		b = append(b, `,"binding":`...)
		b = AppendJSONString(b, m.Binding)
	}
	if m.Cause != "" {
		b = append(b, `,"cause":`...)
		b = AppendJSONString(b, string(m.Cause))
	}
	if m.Repeat {
		b = append(b, `,"repeat":true`...)
	}
	if m.ResultOnly {
		b = append(b, `,"resultOnly":true`...)
	}
	if m.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = AppendJSONString(b, m.TraceParent)
	}
	return append(b, '}'), nil
}

// appendJSON appends a as json.Marshal encodes it; the caller checked
// that every annotation value is PlainJSON.
func (a *ActionMeta) appendJSON(b []byte) []byte {
	b = append(b, `{"namespace":`...)
	b = AppendJSONString(b, a.Namespace)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, a.Name)
	b = append(b, `,"version":`...)
	b = AppendJSONString(b, a.Version)
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, a.Rev, 10)
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, a.Kind)
	if a.Image != "" {
		b = append(b, `,"image":`...)
		b = AppendJSONString(b, a.Image)
	}
	b = append(b, `,"limits":`...)
	b = a.Limits.appendJSON(b)
	if len(a.Annotations) > 0 {
		b = append(b, `,"annotations":`...)
		b = a.Annotations.appendJSON(b)
	}
	return append(b, '}')
}

// plainValues reports whether every value of p is PlainJSON.
func (p Params) plainValues() bool {
	for _, kv := range p {
		if !plainValue(kv.Value) {
			return false
		}
	}
	return true
}

// PlainJSON reports whether v is nil or valid JSON that json.Marshal copies
// as is (it compacts and HTML-escapes a json.RawMessage): no whitespace
// outside strings, no <, > or &, and no byte 0xE2 (which starts U+2028 and
// U+2029). Spaces inside strings are kept by json.Marshal, so a result such
// as {"greeting":"Hello, World!"} is plain.
func PlainJSON(v []byte) bool {
	if v == nil {
		return true
	}
	in, esc := false, false
	for _, c := range v {
		switch {
		case esc:
			esc = false
		case c == '<' || c == '>' || c == '&' || c == 0xE2:
			return false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return json.Valid(v)
}
