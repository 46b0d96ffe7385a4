package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// keyValues are the parameters and annotations given with -p K V, -P FILE,
// -a K V and -A FILE, in command-line order (later keys win).
type keyValues struct {
	params, annots         whisk.Params
	hasParams, hasAnnots   bool
	paramArgs, annotArgs   int // how many -p/-P and -a/-A were given
	paramFiles, annotFiles []string
}

// extractKeyValues takes -p/--param KEY VALUE and -a/--annotation KEY VALUE
// (two values each, which the flag package cannot express) and their -P/-A
// file forms out of args, and returns the other arguments. Annotations are
// accepted only when annots is true.
func extractKeyValues(cmd string, args []string, annots bool) ([]string, *keyValues, error) {
	kv := &keyValues{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, inline, hasInline := strings.Cut(a, "=")
		switch name {
		case "-p", "--param", "-a", "--annotation":
			isAnnot := name == "-a" || name == "--annotation"
			if isAnnot && !annots {
				rest = append(rest, a)
				continue
			}
			if hasInline || i+2 >= len(args) {
				return nil, nil, usageErr(cmd, "Arguments for '%s' must be a key/value pair", name)
			}
			pair := whisk.KeyValue{Key: args[i+1], Value: jsonValue(args[i+2])}
			i += 2
			if isAnnot {
				kv.annots = kv.annots.Merge(whisk.Params{pair})
				kv.hasAnnots = true
				kv.annotArgs++
			} else {
				kv.params = kv.params.Merge(whisk.Params{pair})
				kv.hasParams = true
				kv.paramArgs++
			}
		case "-P", "--param-file", "-A", "--annotation-file":
			isAnnot := name == "-A" || name == "--annotation-file"
			if isAnnot && !annots {
				rest = append(rest, a)
				continue
			}
			file := inline
			if !hasInline {
				if i+1 >= len(args) {
					return nil, nil, usageErr(cmd, "flag needs an argument: %s", name)
				}
				file = args[i+1]
				i++
			}
			data, err := readFile(file)
			if err != nil {
				return nil, nil, generalErr("%v", err)
			}
			obj, err := objectParams(data)
			if err != nil {
				return nil, nil, generalErr("Invalid JSON in file '%s': %v", file, err)
			}
			if isAnnot {
				kv.annots = kv.annots.Merge(obj)
				kv.hasAnnots = true
				kv.annotArgs++
				kv.annotFiles = append(kv.annotFiles, file)
			} else {
				kv.params = kv.params.Merge(obj)
				kv.hasParams = true
				kv.paramArgs++
				kv.paramFiles = append(kv.paramFiles, file)
			}
		default:
			rest = append(rest, a)
		}
	}
	return rest, kv, nil
}

// jsonValue is wsk's rule for -p/-a values: the value as JSON when it
// parses as JSON, else the value as a JSON string.
func jsonValue(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		var b bytes.Buffer
		if json.Compact(&b, []byte(s)) == nil {
			return b.Bytes()
		}
	}
	b, _ := json.Marshal(s)
	return b
}

// objectParams reads a JSON object into ordered key/values.
func objectParams(data []byte) (whisk.Params, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("the content must be a JSON object")
	}
	out := whisk.Params{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = out.Merge(whisk.Params{{Key: key, Value: v}})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected content after the JSON object")
	}
	return out, nil
}

// paramsObject renders params as the JSON object an invoke sends (keys
// sorted, as wsk's map encoding gives).
func paramsObject(p whisk.Params) json.RawMessage {
	m := make(map[string]json.RawMessage, len(p))
	for _, kv := range p {
		m[kv.Key] = kv.Value
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return bytes.TrimSpace(b.Bytes())
}

// printJSON prints v as wsk does: indented by four spaces, HTML characters
// unescaped, a newline at the end. Raw JSON keeps the server's field order.
// printField prints one top-level field of entity v, as `wsk <what> get
// NAME FIELD` does; an unknown field is a usage error of cmd.
func printField(w io.Writer, cmd, what, name string, v any, field string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	f, ok := m[field]
	if !ok {
		return usageErr(cmd, "Invalid field filter '%s'.", field)
	}
	fmt.Fprintf(w, "ok: got %s %s, displaying field %s\n", what, name, field)
	printJSON(w, f)
	return nil
}

func printJSON(w io.Writer, v any) {
	var raw []byte
	switch t := v.(type) {
	case json.RawMessage:
		raw = t
	case []byte:
		raw = t
	default:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(w, "%v\n", v)
			return
		}
		raw = b.Bytes()
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "    "); err != nil {
		fmt.Fprintf(w, "%s\n", raw)
		return
	}
	out.WriteByte('\n')
	_, _ = w.Write(out.Bytes())
}
