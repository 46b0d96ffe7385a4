package container

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestRunRequestEncodingMatchesMarshal checks the hand-written /run body
// against json.Marshal byte for byte, on plain and on awkward input.
func TestRunRequestEncodingMatchesMarshal(t *testing.T) {
	base := RunRequest{
		Value: json.RawMessage(`{"a":1,"b":[true,null,"x"]}`), Namespace: "guest", ActionName: "/guest/pkg/hello",
		ActionVersion: "0.0.1", ActivationID: "0123456789abcdef0123456789abcdef", TransactionID: "tid-1",
		Deadline: "1790000000000",
	}
	cases := map[string]func(r *RunRequest){
		"plain":           func(r *RunRequest) {},
		"api key":         func(r *RunRequest) { r.APIKey = "uuid:key" },
		"empty object":    func(r *RunRequest) { r.Value = json.RawMessage(`{}`) },
		"spaces in value": func(r *RunRequest) { r.Value = json.RawMessage("{ \"a\" :\n 1 }") },
		"space in string": func(r *RunRequest) { r.Value = json.RawMessage(`{"a":"x y"}`) },
		"html in value":   func(r *RunRequest) { r.Value = json.RawMessage(`{"a":"<b>&</b>"}`) },
		"u2028 in value":  func(r *RunRequest) { r.Value = json.RawMessage("{\"a\":\"\u2028\u2029\"}") },
		"unicode value":   func(r *RunRequest) { r.Value = json.RawMessage(`{"a":"héllo ☃"}`) },
		"escaped value":   func(r *RunRequest) { r.Value = json.RawMessage(`{"a":"\"\\\n\u0001"}`) },
		"awkward strings": func(r *RunRequest) {
			r.Namespace = "a\"b\\c"
			r.ActionName = "<x>&y\u2028"
			r.TransactionID = "tab\there\x01"
			r.APIKey = "é☃"
		},
	}
	for name, mod := range cases {
		r := base
		mod(&r)
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		got, err := r.appendJSON(nil)
		if err != nil {
			t.Fatalf("%s: appendJSON: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// TestRunRequestEncodingRejectsInvalidValue: an invalid value is an error,
// as with json.Marshal, not a malformed body.
func TestRunRequestEncodingRejectsInvalidValue(t *testing.T) {
	for _, v := range []string{`{"a":`, `{a:1}`, `nul`} {
		r := RunRequest{Value: json.RawMessage(v)}
		if _, err := r.appendJSON(nil); err == nil {
			t.Errorf("value %q: no error", v)
		}
	}
}
