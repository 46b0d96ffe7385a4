package alarms

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Params are the parameters of a feed call, as JSON values by name.
type Params map[string]json.RawMessage

// truthy reports whether p[k] is set to a JavaScript-truthy value (the
// alarms package tests its parameters with `if (params.x)`).
func (p Params) truthy(k string) bool {
	v, ok := p[k]
	if !ok {
		return false
	}
	switch s := string(bytes.TrimSpace(v)); s {
	case "", "null", "false", `""`, "0", "-0", "0.0":
		return false
	default:
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == 0 {
			return false
		}
		return true
	}
}

// has reports whether p[k] is present (hasOwnProperty).
func (p Params) has(k string) bool { _, ok := p[k]; return ok }

// text renders p[k] as JavaScript's `${v}` does: strings as they are,
// numbers, booleans and null as their JSON text, objects as
// "[object Object]".
func (p Params) text(k string) string { return jsText(p[k]) }

func jsText(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "undefined"
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	case '{':
		return "[object Object]"
	case '[':
		var a []json.RawMessage
		if json.Unmarshal(v, &a) == nil {
			parts := make([]string, len(a))
			for i, e := range a {
				if s := string(bytes.TrimSpace(e)); s != "null" {
					parts[i] = jsText(e)
				}
			}
			return strings.Join(parts, ",")
		}
	default:
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return string(v)
}

// isString reports whether p[k] is a JSON string.
func (p Params) isString(k string) bool {
	v := bytes.TrimSpace(p[k])
	return len(v) > 0 && v[0] == '"'
}

// dateMs parses a date parameter as JavaScript's `new Date(v)` does for
// the forms the alarms package documents: a number of epoch milliseconds
// or an ISO 8601 string (a date alone, a date and time with or without
// fractional seconds and with Z, an offset or nothing, read as UTC); also
// the RFC 1123 form Date.prototype.toUTCString prints.
func dateMs(v json.RawMessage) (int64, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0, false
	}
	if v[0] != '"' {
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 8.64e15 {
			return 0, false
		}
		return int64(f), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return 0, false
	}
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02",
		"2006-01",
		"2006",
		time.RFC1123,
		time.RFC1123Z,
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}
