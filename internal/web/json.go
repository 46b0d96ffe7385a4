package web

import (
	"bytes"
	"encoding/json"
	"errors"
)

// field is one member of a JSON object, in document order.
type field struct {
	key   string
	value json.RawMessage
}

// orderedFields is a JSON object's members in document order.
type orderedFields []field

func (f *orderedFields) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	t, err := d.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	out := orderedFields{}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return err
		}
		k, _ := kt.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return err
		}
		out = append(out, field{k, v})
	}
	*f = out
	return nil
}

// get returns the last member named key (JSON's last-wins rule).
func (f orderedFields) get(key string) (json.RawMessage, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].key == key {
			return f[i].value, true
		}
	}
	return nil, false
}

// Pretty renders a JSON value as OpenWhisk's responses do (spray-json's
// PrettyPrinter): objects one member per line indented by two spaces with
// "key": value, arrays inline as [a, b]. Member order is kept. Invalid JSON
// is returned unchanged.
func Pretty(v json.RawMessage) []byte {
	var b bytes.Buffer
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := prettyValue(&b, d, 0); err != nil {
		return v
	}
	return b.Bytes()
}

func prettyValue(b *bytes.Buffer, d *json.Decoder, indent int) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	return prettyToken(b, d, t, indent)
}

func prettyToken(b *bytes.Buffer, d *json.Decoder, t json.Token, indent int) error {
	switch t {
	case json.Delim('{'):
		b.WriteString("{\n")
		first := true
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return err
			}
			k, ok := kt.(string)
			if !ok {
				return errors.New("bad key")
			}
			if !first {
				b.WriteString(",\n")
			}
			first = false
			writeIndent(b, indent+2)
			b.Write(jsonString(k))
			b.WriteString(": ")
			if err := prettyValue(b, d, indent+2); err != nil {
				return err
			}
		}
		if _, err := d.Token(); err != nil {
			return err
		}
		b.WriteByte('\n')
		writeIndent(b, indent)
		b.WriteByte('}')
		return nil
	case json.Delim('['):
		b.WriteByte('[')
		first := true
		for d.More() {
			if !first {
				b.WriteString(", ")
			}
			first = false
			if err := prettyValue(b, d, indent); err != nil {
				return err
			}
		}
		if _, err := d.Token(); err != nil {
			return err
		}
		b.WriteByte(']')
		return nil
	}
	switch x := t.(type) {
	case string:
		b.Write(jsonString(x))
	case json.Number:
		b.WriteString(x.String())
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case nil:
		b.WriteString("null")
	default:
		return errors.New("unexpected token")
	}
	return nil
}

func writeIndent(b *bytes.Buffer, n int) {
	for range n {
		b.WriteByte(' ')
	}
}

// kind is the JSON type of a value: '{', '[', '"', 'n' (null), 't' (true or
// false), '0' (number), or 0 for nothing.
func kind(v json.RawMessage) byte {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; c {
	case '{', '[', '"', 'n':
		return c
	case 't', 'f':
		return 't'
	default:
		return '0'
	}
}

// str decodes a JSON string value.
func str(v json.RawMessage) (string, bool) {
	var s string
	if kind(v) != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}
