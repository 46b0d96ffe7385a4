package whisk

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decoding of the bus messages on every activation's path (the activation
// message a queue reads, the completion a controller reads) without
// reflection. The fast path reads the shape our encoders write: the
// struct's fields in declaration order (any of them may be absent), no
// whitespace outside strings, raw values (params, annotation values, the
// result) compact. Anything else (another order, an unknown or differently
// cased key, whitespace, null where a string or number belongs, a number
// that is not a plain integer, init parameters, nesting deeper than
// maxRawDepth) makes it give up, and the message is decoded by
// json.Unmarshal instead; so the result is always exactly json.Unmarshal's
// into a zero value, and an error is json.Unmarshal's error.

// DecodeActivationMessage decodes b into *m as json.Unmarshal does into a
// zero ActivationMessage; what m held before is discarded.
func DecodeActivationMessage(b []byte, m *ActivationMessage) error {
	d := newDec(b)
	var v ActivationMessage
	if d.activationMessage(&v) && d.end() {
		*m = v
		return nil
	}
	var w ActivationMessage // declared here, so that only a fallback allocates it
	err := json.Unmarshal(b, &w)
	*m = w
	return err
}

// DecodeCompletion decodes b into *c as json.Unmarshal does into a zero
// Completion; what c held before is discarded.
func DecodeCompletion(b []byte, c *Completion) error {
	d := newDec(b)
	var v Completion
	if d.completion(&v) && d.end() {
		*c = v
		return nil
	}
	var w Completion // declared here, so that only a fallback allocates it
	err := json.Unmarshal(b, &w)
	*c = w
	return err
}

// maxRawDepth bounds the nesting of a raw value the fast path validates
// (json.Unmarshal takes deeper ones, up to its own limit).
const maxRawDepth = 128

// dec reads one message. Strings are cut from one string copy of the input
// and raw values from one byte copy, so a message costs two copies however
// many fields it has; a string with escapes is unquoted by json.Unmarshal.
type dec struct {
	s   string // the input
	raw []byte // a private copy of the input, for raw values
	i   int
}

func newDec(b []byte) *dec {
	return &dec{s: string(b)}
}

// end reports whether the whole input was read.
func (d *dec) end() bool { return d.i == len(d.s) }

// byte consumes c if it comes next.
func (d *dec) byte(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// lit consumes s if it comes next.
func (d *dec) lit(s string) bool {
	if len(d.s)-d.i >= len(s) && d.s[d.i:d.i+len(s)] == s {
		d.i += len(s)
		return true
	}
	return false
}

// object reads an object whose keys are keys[j] for increasing j (each at
// most once, any absent), calling field(j) to read each value.
func (d *dec) object(keys []string, field func(j int) bool) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return true
	}
	for next := 0; ; {
		j := d.key(keys, next)
		if j < 0 || !field(j) {
			return false
		}
		next = j + 1
		if d.byte('}') {
			return true
		}
		if !d.byte(',') {
			return false
		}
	}
}

// key reads `"k":` where k is keys[j] for some j ≥ from and returns j, or
// -1 when the key is another (or has an escape).
func (d *dec) key(keys []string, from int) int {
	if !d.byte('"') {
		return -1
	}
	start := d.i
	for d.i < len(d.s) && d.s[d.i] != '"' && d.s[d.i] != '\\' {
		d.i++
	}
	if d.i+1 >= len(d.s) || d.s[d.i] != '"' || d.s[d.i+1] != ':' {
		return -1
	}
	k := d.s[start:d.i]
	d.i += 2
	for j := from; j < len(keys); j++ {
		if keys[j] == k {
			return j
		}
	}
	return -1
}

// str reads a JSON string.
func (d *dec) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	escaped, nonASCII := false, false
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return d.unquote(start-1, d.i, escaped, nonASCII)
		case c == '\\':
			escaped = true
			d.i += 2
		case c < 0x20:
			return "", false
		default:
			if c >= utf8.RuneSelf {
				nonASCII = true
			}
			d.i++
		}
	}
	return "", false
}

// unquote decodes the quoted string s[from:to], which str found to have
// escapes or bytes past ASCII or neither: as is when it has no escape and
// is valid UTF-8, else by json.Unmarshal (which replaces invalid UTF-8 and
// lone surrogates as it does anywhere).
func (d *dec) unquote(from, to int, escaped, nonASCII bool) (string, bool) {
	in := d.s[from+1 : to-1]
	if !escaped && (!nonASCII || utf8.ValidString(in)) {
		return in, true
	}
	var s string
	if json.Unmarshal([]byte(d.s[from:to]), &s) != nil {
		return "", false
	}
	return s, true
}

// integer reads a JSON number that is an integer of bitSize bits written
// without fraction or exponent.
func (d *dec) integer(bitSize int) (int64, bool) {
	start := d.i
	d.byte('-')
	first := d.i
	if !d.digits() || d.i-first > 1 && d.s[first] == '0' {
		return 0, false
	}
	if d.i < len(d.s) {
		if c := d.s[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(d.s[start:d.i], 10, bitSize)
	return v, err == nil
}

func (d *dec) int64() (int64, bool) { return d.integer(64) }

func (d *dec) int() (int, bool) {
	v, ok := d.integer(strconv.IntSize)
	return int(v), ok
}

// bool reads true or false.
func (d *dec) bool() (bool, bool) {
	switch {
	case d.lit("true"):
		return true, true
	case d.lit("false"):
		return false, true
	}
	return false, false
}

// rawValue reads one compact JSON value, validating it, and returns its
// bytes (from the private copy, capped so that an append copies).
func (d *dec) rawValue() (json.RawMessage, bool) {
	start := d.i
	if !d.skip(0) {
		return nil, false
	}
	if d.raw == nil {
		d.raw = []byte(d.s)
	}
	return d.raw[start:d.i:d.i], true
}

// skip reads one JSON value without whitespace.
func (d *dec) skip(depth int) bool {
	if d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; c {
	case '{':
		if depth >= maxRawDepth {
			return false
		}
		d.i++
		if d.byte('}') {
			return true
		}
		for {
			if !d.skipString() || !d.byte(':') || !d.skip(depth+1) {
				return false
			}
			if d.byte('}') {
				return true
			}
			if !d.byte(',') {
				return false
			}
		}
	case '[':
		if depth >= maxRawDepth {
			return false
		}
		d.i++
		if d.byte(']') {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			if d.byte(']') {
				return true
			}
			if !d.byte(',') {
				return false
			}
		}
	case '"':
		return d.skipString()
	case 't':
		return d.lit("true")
	case 'f':
		return d.lit("false")
	case 'n':
		return d.lit("null")
	default:
		return d.skipNumber()
	}
}

// skipString reads a JSON string: no control characters, valid escapes
// (any other byte is taken as is, as the json scanner takes it).
func (d *dec) skipString() bool {
	if !d.byte('"') {
		return false
	}
	for d.i < len(d.s) {
		c := d.s[d.i]
		d.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if d.i >= len(d.s) {
				return false
			}
			e := d.s[d.i]
			d.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d.s)-d.i < 4 {
					return false
				}
				for k := 0; k < 4; k++ {
					if !isHex(d.s[d.i+k]) {
						return false
					}
				}
				d.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *dec) skipNumber() bool {
	d.byte('-')
	switch {
	case d.byte('0'):
	case d.i < len(d.s) && d.s[d.i] >= '1' && d.s[d.i] <= '9':
		d.digits()
	default:
		return false
	}
	if d.byte('.') && !d.digits() {
		return false
	}
	if d.byte('e') || d.byte('E') {
		if !d.byte('+') {
			d.byte('-')
		}
		if !d.digits() {
			return false
		}
	}
	return true
}

// digits reads [0-9]* and reports whether there was at least one.
func (d *dec) digits() bool {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// params reads null (nil), or an array of {"key":…,"value":…} objects.
func (d *dec) params() (Params, bool) {
	if d.lit("null") {
		return nil, true
	}
	if !d.byte('[') {
		return nil, false
	}
	if d.byte(']') {
		return Params{}, true
	}
	// Gathered on the stack, then copied once at their exact size.
	var buf [16]KeyValue
	p := buf[:0]
	for {
		var kv KeyValue
		ok := d.object(keyValueKeys[:], func(j int) bool {
			var ok bool
			switch j {
			case 0:
				kv.Key, ok = d.str()
			case 1:
				kv.Value, ok = d.rawValue()
			}
			return ok
		})
		if !ok {
			return nil, false
		}
		p = append(p, kv)
		if d.byte(']') {
			return append(make(Params, 0, len(p)), p...), true
		}
		if !d.byte(',') {
			return nil, false
		}
	}
}

// strings reads null (nil) or an array of strings.
func (d *dec) strings() ([]string, bool) {
	if d.lit("null") {
		return nil, true
	}
	if !d.byte('[') {
		return nil, false
	}
	l := []string{}
	if d.byte(']') {
		return l, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		l = append(l, s)
		if d.byte(']') {
			return l, true
		}
		if !d.byte(',') {
			return nil, false
		}
	}
}

// The keys of each struct in declaration order, as json.Marshal writes them.
var (
	keyValueKeys          = [...]string{"key", "value"}
	limitsKeys            = [...]string{"timeout", "memory", "logs", "concurrency", "instances"}
	actionMetaKeys        = [...]string{"namespace", "name", "version", "rev", "kind", "image", "limits", "annotations"}
	activationMessageKeys = [...]string{"activationId", "transid", "action", "subject", "apiKey", "params", "blocking", "controller", "published", "namespaceLimit", "callerNamespace", "binding", "cause", "repeat", "resultOnly", "traceparent"}
	responseKeys          = [...]string{"status", "statusCode", "success", "result", "size"}
	activationKeys        = [...]string{"namespace", "name", "version", "subject", "activationId", "start", "end", "cause", "duration", "statusCode", "response", "logs", "annotations", "publish"}
	completionKeys        = [...]string{"activation", "invokerId"}
)

func (d *dec) limits(l *Limits) bool {
	return d.object(limitsKeys[:], func(j int) bool {
		var ok bool
		switch j {
		case 0:
			l.Timeout, ok = d.int64()
		case 1:
			l.Memory, ok = d.int64()
		case 2:
			l.Logs, ok = d.int64()
		case 3:
			l.Concurrency, ok = d.int()
		case 4:
			l.Instances, ok = d.int()
		}
		return ok
	})
}

func (d *dec) actionMeta(a *ActionMeta) bool {
	return d.object(actionMetaKeys[:], func(j int) bool {
		var ok bool
		switch j {
		case 0:
			a.Namespace, ok = d.str()
		case 1:
			a.Name, ok = d.str()
		case 2:
			a.Version, ok = d.str()
		case 3:
			a.Rev, ok = d.int64()
		case 4:
			a.Kind, ok = d.str()
		case 5:
			a.Image, ok = d.str()
		case 6:
			ok = d.limits(&a.Limits)
		case 7:
			a.Annotations, ok = d.params()
		}
		return ok
	})
}

func (d *dec) activationMessage(m *ActivationMessage) bool {
	return d.object(activationMessageKeys[:], func(j int) bool {
		var ok bool
		switch j {
		case 0:
			var s string
			s, ok = d.str()
			m.ActivationID = ActivationID(s)
		case 1:
			m.TransactionID, ok = d.str()
		case 2:
			ok = d.actionMeta(&m.Action)
		case 3:
			m.Subject, ok = d.str()
		case 4:
			m.APIKey, ok = d.str()
		case 5:
			m.Params, ok = d.rawValue()
		case 6:
			m.Blocking, ok = d.bool()
		case 7:
			m.ControllerID, ok = d.str()
		case 8:
			m.Published, ok = d.int64()
		case 9:
			m.NamespaceLimit, ok = d.int()
		case 10:
			m.CallerNamespace, ok = d.str()
		case 11:
			m.Binding, ok = d.str()
		case 12:
			var s string
			s, ok = d.str()
			m.Cause = ActivationID(s)
		case 13:
			m.Repeat, ok = d.bool()
		case 14:
			m.ResultOnly, ok = d.bool()
		case 15:
			m.TraceParent, ok = d.str()
		}
		return ok
	})
}

func (d *dec) response(r *Response) bool {
	return d.object(responseKeys[:], func(j int) bool {
		var ok bool
		switch j {
		case 0:
			r.Status, ok = d.str()
		case 1:
			r.StatusCode, ok = d.int()
		case 2:
			r.Success, ok = d.bool()
		case 3:
			r.Result, ok = d.rawValue()
		case 4:
			var n int
			if n, ok = d.int(); ok {
				r.Size = &n
			}
		}
		return ok
	})
}

func (d *dec) activation(a *Activation) bool {
	return d.object(activationKeys[:], func(j int) bool {
		var ok bool
		switch j {
		case 0:
			a.Namespace, ok = d.str()
		case 1:
			a.Name, ok = d.str()
		case 2:
			a.Version, ok = d.str()
		case 3:
			a.Subject, ok = d.str()
		case 4:
			var s string
			s, ok = d.str()
			a.ActivationID = ActivationID(s)
		case 5:
			a.Start, ok = d.int64()
		case 6:
			a.End, ok = d.int64()
		case 7:
			var s string
			s, ok = d.str()
			a.Cause = ActivationID(s)
		case 8:
			a.Duration, ok = d.int64()
		case 9:
			a.StatusCode, ok = d.int()
		case 10:
			ok = d.response(&a.Response)
		case 11:
			a.Logs, ok = d.strings()
		case 12:
			a.Annotations, ok = d.params()
		case 13:
			a.Publish, ok = d.bool()
		}
		return ok
	})
}

func (d *dec) completion(c *Completion) bool {
	return d.object(completionKeys[:], func(j int) bool {
		if j == 0 {
			return d.activation(&c.Activation)
		}
		var ok bool
		c.InvokerID, ok = d.str()
		return ok
	})
}

// CompactField reports whether b is one valid JSON value written without
// whitespace outside strings, so that json.Compact leaves it as it is, and
// when b is an object returns the value of its top-level key (the last one
// when the key repeats, as json.Unmarshal into a map keeps) as a slice of
// b. ok false says only that this scan could not tell (whitespace, a
// top-level key with an escape, deep nesting, or invalid JSON): the caller
// then asks encoding/json.
func CompactField(b []byte, key string) (val json.RawMessage, found, ok bool) {
	d := dec{s: string(b)}
	if !d.byte('{') {
		return nil, false, d.skip(0) && d.end()
	}
	if d.byte('}') {
		return nil, false, d.end()
	}
	for {
		start := d.i
		if !d.skipString() || !d.byte(':') {
			return nil, false, false
		}
		k := d.s[start+1 : d.i-2]
		if strings.IndexByte(k, '\\') >= 0 {
			return nil, false, false
		}
		vstart := d.i
		if !d.skip(1) {
			return nil, false, false
		}
		if k == key {
			val, found = b[vstart:d.i:d.i], true
		}
		if d.byte('}') {
			if !d.end() {
				return nil, false, false
			}
			return val, found, true
		}
		if !d.byte(',') {
			return nil, false, false
		}
	}
}
