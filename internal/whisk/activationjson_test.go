package whisk

import (
	"bytes"
	"encoding/json"
	"syscall"
	"testing"
	"time"
)

// TestActivationAppendJSONMatchesMarshal checks the hand-written encoding
// of records against json.Marshal byte for byte, on plain and awkward
// input.
func TestActivationAppendJSONMatchesMarshal(t *testing.T) {
	base := func() Activation {
		a := Activation{
			Namespace: "guest", Name: "pkg/hello", Version: "0.0.1", Subject: "guest",
			ActivationID: "0123456789abcdef0123456789abcdef", Start: 1790000000123, End: 1790000000125, Duration: 2,
			Response: NewResponse(StatusSuccess, json.RawMessage(`{"greeting":"hi","n":[1,2.5,null]}`)),
			Logs:     []string{"2026-11-27T13:00:00.000000000Z stdout: hello"},
		}
		meta := ActionMeta{Namespace: "guest", Name: "pkg/hello", Version: "0.0.1", Kind: "python:3.11",
			Limits: Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1}}
		a.Annotate(meta, Timings{Queued: 3, Create: 40, Init: 12, Run: 2, Start: StartCold}, false)
		return a
	}
	size := 12345
	cases := map[string]func(a *Activation){
		"plain":           func(a *Activation) {},
		"error":           func(a *Activation) { a.StatusCode = 2; a.Response = ErrorResponse(2, "boom <&>") },
		"no result":       func(a *Activation) { a.Response.Result = nil },
		"empty result":    func(a *Activation) { a.Response.Result = json.RawMessage{} },
		"size":            func(a *Activation) { a.Response.Size = &size },
		"nil logs":        func(a *Activation) { a.Logs = nil },
		"empty logs":      func(a *Activation) { a.Logs = []string{} },
		"nil annotations": func(a *Activation) { a.Annotations = nil },
		"empty annotations": func(a *Activation) {
			a.Annotations = Params{}
		},
		"nil value":       func(a *Activation) { a.Annotations = append(a.Annotations, KeyValue{Key: "x"}) },
		"publish":         func(a *Activation) { a.Publish = true },
		"cause":           func(a *Activation) { a.SetCause("fedcba9876543210fedcba9876543210") },
		"zero":            func(a *Activation) { *a = Activation{} },
		"negative":        func(a *Activation) { a.Start, a.Duration, a.StatusCode = -1, -2, -3 },
		"spaced result":   func(a *Activation) { a.Response.Result = json.RawMessage("{ \"a\": 1 }\n") },
		"html result":     func(a *Activation) { a.Response.Result = json.RawMessage(`{"a":"<&>"}`) },
		"u2028 result":    func(a *Activation) { a.Response.Result = json.RawMessage("\"\u2028\"") },
		"html annotation": func(a *Activation) { a.Annotations[0].Value = json.RawMessage(`"<b>"`) },
		"awkward strings": func(a *Activation) {
			a.Name = "<x>&é"
			a.Subject = "a\"b\\c\n\x01"
			a.Logs = []string{"tab\there", "bad utf8 \xff\xfe", "\u2029", `</script>`, ""}
			a.Annotations[0].Key = "k\u2028"
			a.Response.Status = "é"
		},
	}
	for name, mod := range cases {
		a := base()
		mod(&a)
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		got, err := a.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatalf("%s: AppendJSON: %v", name, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%s:\n got %s\nwant prefix%s", name, got, want)
		}
		for _, inv := range []string{"", "invoker0", "<é>"} {
			c := Completion{Activation: a, InvokerID: inv}
			want, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("%s: json.Marshal completion: %v", name, err)
			}
			got, err := c.AppendJSON(nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s, invoker %q: completion\n got %s (%v)\nwant %s", name, inv, got, err, want)
			}
		}
	}
}

// An invalid raw value is an error, as with json.Marshal.
func TestActivationAppendJSONInvalid(t *testing.T) {
	for _, v := range []string{`{"a":`, `nul`, `1 2`} {
		a := Activation{Response: Response{Result: json.RawMessage(v)}}
		if _, err := a.AppendJSON(nil); err == nil {
			t.Errorf("result %q: no error", v)
		}
		a = Activation{Annotations: Params{{Key: "k", Value: json.RawMessage(v)}}}
		if _, err := a.AppendJSON(nil); err == nil {
			t.Errorf("annotation %q: no error", v)
		}
	}
	a := Activation{Annotations: Params{{Key: "k", Value: json.RawMessage{}}}}
	if _, err := a.AppendJSON(nil); err == nil {
		t.Error("empty annotation value: no error")
	}
	c := Completion{Activation: a, InvokerID: "i"}
	if _, err := c.AppendJSON(nil); err == nil {
		t.Error("completion of an invalid record: no error")
	}
}

// plainValue, PlainJSON's fast path, agrees with it.
func TestPlainValue(t *testing.T) {
	for _, v := range []string{
		"", "true", "false", "null", "{}", "[]", "tru", "nul", "{ }", `""`, `"a"`, `"a b"`, `"a\"`, `"a\nb"`,
		`"<"`, `"&"`, "\"\u2028\"", "\"\xff\"", `"`, `"a`, `a"`, `"a"b"`, "\"\t\"",
		"0", "-0", "00", "01", "-", "--1", "12", "-12", "1.5", "1e3", "12a", "123456789012345678901234567890", " 1", "1 ",
	} {
		if got, want := plainValue([]byte(v)), PlainJSON([]byte(v)); got != want {
			t.Errorf("plainValue(%q) = %v, PlainJSON says %v", v, got, want)
		}
	}
	if !plainValue(nil) {
		t.Error("plainValue(nil) = false")
	}
}

func BenchmarkActivationJSON(b *testing.B) {
	a := Activation{Namespace: "guest", Name: "noop", Version: "0.0.1", Subject: "guest",
		ActivationID: NewActivationID(), Start: 1790000000123, End: 1790000000124, Duration: 1,
		Response: NewResponse(StatusSuccess, json.RawMessage(`{}`)), Logs: []string{}}
	a.Annotate(ActionMeta{Namespace: "guest", Name: "noop", Version: "0.0.1", Kind: "native",
		Limits: Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1}},
		Timings{Queued: 1, Run: 1, Start: StartWarm}, false)
	b.Run("Marshal", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := json.Marshal(&a); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := a.AppendJSON(make([]byte, 0, 1024)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	})
}

// cpuTime is the CPU time (user + system) this process used so far: on a
// shared machine it is steadier than the wall time of ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// plainJSONCases are raw values around PlainJSON's rules: whitespace in
// and out of strings, escapes next to quotes, the characters json.Marshal
// escapes, invalid JSON.
var plainJSONCases = []string{
	`{"greeting":"Hello, World!"}`, `{"a":"x y","b":[1,2]}`, `{ "a":1}`, `{"a" :1}`, `[1, 2]`, "{\"a\":\n1}",
	`"a b"`, `" "`, `"\" "`, `"\\" `, `"\\"`, `"a\" b"`, `{"a":"\\\" x"}`, `"\u0020"`, `{"a":"<b>"}`, `{"a":"&"}`,
	"\"\u2028\"", "\"\xe2\x82\xac\"", "\"\xff\"", "\"a\tb\"", `{"a":"b"} `, ` {"a":"b"}`, `{"a":}`, `"unterminated`,
	`{"a":"b","c":{"d":"e f"}}`, `[" ", "x"]`, `["x",{"y":" z"}]`, `"x\u003cy"`, `{"k":"v","k2":"a\\\\ b"}`,
}

// PlainJSON's promise: json.Marshal copies a plain value as it is.
func TestPlainJSONIsMarshalIdentity(t *testing.T) {
	for _, v := range plainJSONCases {
		checkPlainJSON(t, []byte(v))
	}
	if !PlainJSON([]byte(`{"greeting":"Hello, World!"}`)) {
		t.Error("a result with a space in a string is not plain")
	}
}

func checkPlainJSON(t *testing.T, v []byte) {
	t.Helper()
	out, err := json.Marshal(json.RawMessage(v))
	identity := err == nil && string(out) == string(v)
	if PlainJSON(v) && !identity {
		t.Errorf("PlainJSON(%q) = true, but json.Marshal gives %q, %v", v, out, err)
	}
	if plainValue(v) != PlainJSON(v) {
		t.Errorf("plainValue(%q) = %v, PlainJSON says %v", v, plainValue(v), PlainJSON(v))
	}
}

func FuzzPlainJSON(f *testing.F) {
	for _, v := range plainJSONCases {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		checkPlainJSON(t, v)
	})
}
