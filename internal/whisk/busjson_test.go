package whisk

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestActivationMessageAppendJSONMatchesMarshal checks the hand-written
// encoding against json.Marshal byte for byte, on plain and awkward input.
func TestActivationMessageAppendJSONMatchesMarshal(t *testing.T) {
	base := func() ActivationMessage {
		return ActivationMessage{
			ActivationID: "0123456789abcdef0123456789abcdef", TransactionID: "tid",
			Action: ActionMeta{
				Namespace: "guest", Name: "pkg/hello", Version: "0.0.1", Rev: 3, Kind: "python:3.11",
				Limits:      Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1},
				Annotations: Params{{Key: "exec", Value: json.RawMessage(`"python:3.11"`)}, {Key: "n", Value: json.RawMessage(`[1,{"a":null}]`)}},
			},
			Subject: "guest", Params: json.RawMessage(`{"a":1}`), Blocking: true, ControllerID: "controller0",
			Published: 1790000000123,
		}
	}
	cases := map[string]func(m *ActivationMessage){
		"plain": func(m *ActivationMessage) {},
		"api key and more": func(m *ActivationMessage) {
			m.APIKey = "u:k"
			m.NamespaceLimit = 100
			m.Action.Image = "img"
			m.Action.Limits.Instances = 2
		},
		"cause":  func(m *ActivationMessage) { m.Cause = "fedcba9876543210fedcba9876543210" },
		"repeat": func(m *ActivationMessage) { m.Repeat = true },
		"caller and binding": func(m *ActivationMessage) {
			m.CallerNamespace = "alice"
			m.Binding = "alice/b"
		},
		"no annotations":    func(m *ActivationMessage) { m.Action.Annotations = nil },
		"empty annotations": func(m *ActivationMessage) { m.Action.Annotations = Params{} },
		"nil values":        func(m *ActivationMessage) { m.Params = nil; m.Action.Annotations = Params{{Key: "x"}} },
		"init params":       func(m *ActivationMessage) { m.InitParams = map[string]string{"b": "2", "a": "1"} },
		"spaced params":     func(m *ActivationMessage) { m.Params = json.RawMessage("{ \"a\": 1 }") },
		"html params":       func(m *ActivationMessage) { m.Params = json.RawMessage(`{"a":"<&>"}`) },
		"u2028 annotation":  func(m *ActivationMessage) { m.Action.Annotations[0].Value = json.RawMessage("\"\u2028\"") },
		"awkward strings": func(m *ActivationMessage) {
			m.TransactionID = "a\"b\\c\n"
			m.Action.Name = "<x>&é"
			m.Action.Annotations[0].Key = "k\u2029"
			m.Subject = "\x01"
		},
	}
	for name, mod := range cases {
		m := base()
		mod(&m)
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		got, err := m.AppendJSON(nil)
		if err != nil {
			t.Fatalf("%s: AppendJSON: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// An invalid raw value is an error, as with json.Marshal.
func TestActivationMessageAppendJSONInvalid(t *testing.T) {
	for _, v := range []string{``, `{"a":`, `nul`} {
		m := ActivationMessage{Params: json.RawMessage(v)}
		if _, err := m.AppendJSON(nil); err == nil {
			t.Errorf("params %q: no error", v)
		}
	}
}
