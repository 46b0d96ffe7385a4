package postgres

import (
	"encoding/json"
	"testing"
)

func TestSanitizeJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{`"\u0000"`, `"\ufffd"`},
		{`"a\u0000b\u0000"`, `"a\ufffdb\ufffd"`},
		{`"\\u0000"`, `"\\u0000"`},           // an escaped backslash, then text
		{`"\\\u0000"`, `"\\\ufffd"`},         // an escaped backslash, then NUL
		{`"\u0001\u00e9"`, `"\u0001\u00e9"`}, // other escapes stay
		{`"\ud83d\ude00"`, `"\ud83d\ude00"`}, // a pair stays
		{`"\uD83D\uDE00"`, `"\uD83D\uDE00"`},
		{`"\ud83d"`, `"\ufffd"`},             // lone high
		{`"\ude00x"`, `"\ufffdx"`},           // lone low
		{`"\ud83d\u0041"`, `"\ufffd\u0041"`}, // high, then not a low
		{`"\ud83d\ud83d\ude00"`, `"\ufffd\ud83d\ude00"`},
		{`["\ud800","\n\"\u0000"]`, `["\ufffd","\n\"\ufffd"]`},
	}
	for _, c := range cases {
		got := string(sanitizeJSON([]byte(c.in)))
		if got != c.want {
			t.Errorf("sanitizeJSON(%s) = %s, want %s", c.in, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("sanitizeJSON(%s) = %s: not valid JSON", c.in, got)
		}
	}
	// Nothing to replace: the same slice comes back.
	in := []byte(`{"a":"\u00e9"}`)
	if out := sanitizeJSON(in); &out[0] != &in[0] {
		t.Error("sanitizeJSON copied an input it did not change")
	}
}
