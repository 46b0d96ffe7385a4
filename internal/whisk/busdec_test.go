package whisk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// gen makes random messages with awkward content.
type gen struct{ r *rand.Rand }

var strPieces = []string{
	"a", "guest", "hello", "0123456789abcdef", " ", "é", "日本", "\u2028", "\u2029", "<", ">", "&",
	`"`, `\`, "/", "\n", "\t", "\x01", "\x7f", "\xff", "\xed\xa0\x80", "😀", "\ufffd", "\x00",
}

func (g gen) str() string {
	if g.r.Intn(4) == 0 {
		return ""
	}
	var b strings.Builder
	for n := g.r.Intn(6); n >= 0; n-- {
		b.WriteString(strPieces[g.r.Intn(len(strPieces))])
	}
	return b.String()
}

// plainStr is a string our encoders write as is.
func (g gen) plainStr() string {
	const abc = "abcdefghijklmnopqrstuvwxyz0123456789-_./:@"
	b := make([]byte, g.r.Intn(20))
	for i := range b {
		b[i] = abc[g.r.Intn(len(abc))]
	}
	return string(b)
}

var numbers = []string{
	"0", "-0", "1", "-1", "42", "3.25", "-0.5", "1e3", "1E-7", "2.5e+300", "123456789012345678901234567890",
	"9223372036854775807", "-9223372036854775808", "9223372036854775808", "0.000001",
}

var rawStrings = []string{
	`""`, `"a"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\"\\\/\b\f\n\r\t"`, `"é"`, `"\u003c\u0026"`, "\"\xff\"",
}

// raw writes a random JSON value as text (compact unless spaced).
func (g gen) raw(b *bytes.Buffer, depth int, spaced bool) {
	sp := func() {
		if spaced && g.r.Intn(3) == 0 {
			b.WriteString([]string{" ", "\n", "\t", "\r"}[g.r.Intn(4)])
		}
	}
	k := g.r.Intn(8)
	if depth > 3 {
		k = 2 + g.r.Intn(6)
	}
	switch k {
	case 0, 1:
		b.WriteByte('{')
		for i, n := 0, g.r.Intn(4); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			sp()
			b.WriteString(rawStrings[g.r.Intn(len(rawStrings))])
			sp()
			b.WriteByte(':')
			sp()
			g.raw(b, depth+1, spaced)
			sp()
		}
		b.WriteByte('}')
	case 2:
		b.WriteByte('[')
		for i, n := 0, g.r.Intn(4); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			sp()
			g.raw(b, depth+1, spaced)
			sp()
		}
		b.WriteByte(']')
	case 3:
		b.WriteString(numbers[g.r.Intn(len(numbers))])
	case 4:
		b.WriteString(rawStrings[g.r.Intn(len(rawStrings))])
	case 5:
		b.WriteString([]string{"true", "false", "null"}[g.r.Intn(3)])
	default:
		s, _ := json.Marshal(g.str())
		b.Write(s)
	}
}

func (g gen) rawMsg(nilOK bool) json.RawMessage {
	if nilOK && g.r.Intn(5) == 0 {
		return nil
	}
	var b bytes.Buffer
	g.raw(&b, 0, g.r.Intn(6) == 0)
	return b.Bytes()
}

func (g gen) params() Params {
	switch g.r.Intn(5) {
	case 0:
		return nil
	case 1:
		return Params{}
	}
	p := make(Params, g.r.Intn(4)+1)
	for i := range p {
		p[i] = KeyValue{Key: g.pick(), Value: g.rawMsg(true)}
	}
	return p
}

// pick is a plain string mostly, an awkward one sometimes.
func (g gen) pick() string {
	if g.r.Intn(3) == 0 {
		return g.str()
	}
	return g.plainStr()
}

func (g gen) int64() int64 {
	switch g.r.Intn(4) {
	case 0:
		return 0
	case 1:
		return g.r.Int63()
	case 2:
		return -g.r.Int63() - 1
	}
	return int64(g.r.Intn(100000))
}

func (g gen) activationMessage() ActivationMessage {
	m := ActivationMessage{
		ActivationID: ActivationID(g.pick()), TransactionID: g.pick(),
		Action: ActionMeta{
			Namespace: g.pick(), Name: g.pick(), Version: g.pick(), Rev: g.int64(), Kind: g.pick(),
			Limits: Limits{Timeout: g.int64(), Memory: g.int64(), Logs: g.int64(), Concurrency: int(g.int64())},
		},
		Subject: g.pick(), Params: g.rawMsg(true), Blocking: g.r.Intn(2) == 0, ControllerID: g.pick(),
		Published: g.int64(),
	}
	if g.r.Intn(2) == 0 {
		m.Action.Annotations = g.params()
	}
	if g.r.Intn(3) == 0 {
		m.Action.Image = g.pick()
		m.Action.Limits.Instances = int(g.int64())
		m.APIKey = g.pick()
		m.NamespaceLimit = int(g.int64())
	}
	if g.r.Intn(3) == 0 {
		m.CallerNamespace = g.pick()
		m.Binding = g.pick()
	}
	if g.r.Intn(3) == 0 {
		m.Cause = ActivationID(g.pick())
	}
	if g.r.Intn(4) == 0 {
		m.Repeat = true
	}
	if g.r.Intn(10) == 0 {
		m.InitParams = map[string]string{g.pick(): g.str()}
	}
	return m
}

func (g gen) completion() Completion {
	a := Activation{
		Namespace: g.pick(), Name: g.pick(), Version: g.pick(), Subject: g.pick(), ActivationID: ActivationID(g.pick()),
		Start: g.int64(), End: g.int64(), Duration: g.int64(), StatusCode: g.r.Intn(4),
		Response: NewResponse(g.r.Intn(4), g.rawMsg(true)), Annotations: g.params(), Publish: g.r.Intn(2) == 0,
	}
	if g.r.Intn(4) != 0 {
		a.Logs = []string{}
		for n := g.r.Intn(4); n > 0; n-- {
			a.Logs = append(a.Logs, g.pick())
		}
	}
	if g.r.Intn(4) == 0 {
		n := int(g.int64())
		a.Response.Size = &n
	}
	if g.r.Intn(3) == 0 {
		a.Cause = ActivationID(g.pick())
	}
	c := Completion{Activation: a}
	if g.r.Intn(2) == 0 {
		c.InvokerID = g.pick()
	}
	return c
}

const mutations = " \n,:{}[]\"\\0-.eE"

// mutate breaks or reshapes b a little.
func (g gen) mutate(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) == 0 {
		return b
	}
	switch i := g.r.Intn(len(b)); g.r.Intn(6) {
	case 0:
		return append(b[:i:i], b[i+1:]...)
	case 1:
		return append(b[:i:i], append([]byte{mutations[g.r.Intn(len(mutations))]}, b[i:]...)...)
	case 2:
		b[i] = byte(g.r.Intn(256))
	case 3:
		return b[:i]
	case 4:
		// Upper-case a key letter: json.Unmarshal matches keys without case.
		if j := bytes.IndexByte(b[i:], '"'); j >= 0 && i+j+1 < len(b) && b[i+j+1] >= 'a' && b[i+j+1] <= 'z' {
			b[i+j+1] -= 'a' - 'A'
		}
	default:
		return append(b, " "...)
	}
	return b
}

// same checks that decode gives what json.Unmarshal gives into a zero value.
func same[T any](t *testing.T, in []byte, decode func([]byte, *T) error) {
	t.Helper()
	var want, got T
	werr := json.Unmarshal(in, &want)
	gerr := decode(in, &got)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("input %q:\nerror %v, json.Unmarshal's %v", in, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q:\n got %#v\nwant %#v", in, got, want)
	}
}

// fastAM and fastCompletion report whether the fast path alone reads in.
func fastAM(in []byte) bool {
	d := newDec(in)
	var m ActivationMessage
	return d.activationMessage(&m) && d.end()
}

func fastCompletion(in []byte) bool {
	d := newDec(in)
	var c Completion
	return d.completion(&c) && d.end()
}

// TestDecodeActivationMessageMatchesUnmarshal decodes many generated
// messages, as our encoder and json.Marshal write them and mutated, and
// checks each against json.Unmarshal; it also checks that the fast path
// (not the fallback) read the canonical messages with plain content.
func TestDecodeActivationMessageMatchesUnmarshal(t *testing.T) {
	g := gen{rand.New(rand.NewSource(1))}
	fast := 0
	const n = 5000
	for i := 0; i < n; i++ {
		m := g.activationMessage()
		enc, err := m.AppendJSON(nil)
		if err != nil {
			continue // an invalid raw value: nothing to decode
		}
		same(t, enc, DecodeActivationMessage)
		if fastAM(enc) {
			fast++
			var back ActivationMessage
			if err := DecodeActivationMessage(enc, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := back.AppendJSON(nil)
			if want, _ := json.Marshal(back); !bytes.Equal(again, want) {
				t.Fatalf("round trip:\n got %s\nwant %s", again, want)
			}
		}
		for k := 0; k < 4; k++ {
			same(t, g.mutate(enc), DecodeActivationMessage)
		}
	}
	t.Logf("fast path read %d of %d messages", fast, n)
	if fast < n/4 {
		t.Errorf("fast path read only %d of %d messages", fast, n)
	}
}

// TestDecodeCompletionMatchesUnmarshal is the same for completions.
func TestDecodeCompletionMatchesUnmarshal(t *testing.T) {
	g := gen{rand.New(rand.NewSource(2))}
	fast := 0
	const n = 5000
	for i := 0; i < n; i++ {
		c := g.completion()
		enc, err := c.AppendJSON(nil)
		if err != nil {
			continue
		}
		same(t, enc, DecodeCompletion)
		if fastCompletion(enc) {
			fast++
		}
		for k := 0; k < 4; k++ {
			same(t, g.mutate(enc), DecodeCompletion)
		}
	}
	t.Logf("fast path read %d of %d completions", fast, n)
	if fast < n/4 {
		t.Errorf("fast path read only %d of %d completions", fast, n)
	}
}

// TestCompletionAppendJSONMatchesMarshal checks the hand-written encoding
// of completions against json.Marshal byte for byte.
func TestCompletionAppendJSONMatchesMarshal(t *testing.T) {
	g := gen{rand.New(rand.NewSource(3))}
	for i := 0; i < 5000; i++ {
		c := g.completion()
		want, werr := json.Marshal(c)
		got, gerr := c.AppendJSON([]byte("x"))
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%#v: error %v, json.Marshal's %v", c, gerr, werr)
		}
		if werr == nil && !bytes.Equal(got[1:], want) {
			t.Fatalf("\n got %s\nwant %s", got[1:], want)
		}
	}
}

// TestActivationMessageAppendJSONGenerated is the generated counterpart of
// TestActivationMessageAppendJSONMatchesMarshal.
func TestActivationMessageAppendJSONGenerated(t *testing.T) {
	g := gen{rand.New(rand.NewSource(4))}
	for i := 0; i < 5000; i++ {
		m := g.activationMessage()
		want, werr := json.Marshal(m)
		got, gerr := m.AppendJSON(nil)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%#v: error %v, json.Marshal's %v", m, gerr, werr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	}
}

// TestDecodeFastPathCases pins which inputs the fast path reads and which
// it leaves to json.Unmarshal; every one must decode as json.Unmarshal does.
func TestDecodeFastPathCases(t *testing.T) {
	cases := []struct {
		in   string
		fast bool
	}{
		{`{}`, true},
		{`{"activationId":"a","params":{"x":[1,2.5e3,"\u00e9",null,true]},"published":-5}`, true},
		{`{"params":null}`, true},
		{`{"action":{"annotations":[]}}`, true},
		{`{"action":{"annotations":null}}`, true},
		{`{"action":{"annotations":[{"key":"k"},{}]}}`, true},
		{`{"subject":"é\"\\n"}`, true},
		{"{\"subject\":\"\xff\"}", true},
		{`{"subject":"\ud800"}`, true},
		{`{"namespaceLimit":3,"callerNamespace":"c","binding":"c/b","cause":"0123"}`, true},
		{`{"cause":"0123","binding":"c/b"}`, false},        // order
		{`{"published":1,"activationId":"a"}`, false},      // order
		{`{"activationId":"a","activationId":"b"}`, false}, // twice
		{`{"ActivationId":"a"}`, false},                    // case
		{`{"other":1}`, false},
		{`{"published":1.0}`, false},
		{`{"published":1e3}`, false},
		{`{"published":9223372036854775808}`, false},
		{`{"published":01}`, false},
		{`{"subject":null}`, false},
		{`{"subject":1}`, false},
		{`{"initParams":{"a":"b"}}`, false},
		{`{"params":{"a": 1}}`, false},
		{`{"params":{"a":01}}`, false},
		{`{"params":{"a":"\x"}}`, false},
		{"{\"params\":\"\x01\"}", false},
		{`{"params":[1,]}`, false},
		{`{"params":tru}`, false},
		{` {}`, false},
		{`{} `, false},
		{`{}{}`, false},
		{`null`, false},
		{``, false},
		{`{"params":` + strings.Repeat("[", maxRawDepth+1) + strings.Repeat("]", maxRawDepth+1) + `}`, false},
		{`{"params":` + strings.Repeat("[", maxRawDepth) + strings.Repeat("]", maxRawDepth) + `}`, true},
	}
	for _, c := range cases {
		if got := fastAM([]byte(c.in)); got != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.in, got, c.fast)
		}
		same(t, []byte(c.in), DecodeActivationMessage)
	}
}

// TestDecodeDoesNotAlias checks that raw values do not share the input's
// memory (the bus may reuse it) nor each other's capacity.
func TestDecodeDoesNotAlias(t *testing.T) {
	in := []byte(`{"action":{"annotations":[{"key":"a","value":1},{"key":"b","value":2}]},"params":{"x":1}}`)
	var m ActivationMessage
	if err := DecodeActivationMessage(in, &m); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'z'
	}
	_ = append(m.Action.Annotations[0].Value, '9')
	if string(m.Params) != `{"x":1}` || string(m.Action.Annotations[1].Value) != `2` || m.Action.Annotations[1].Key != "b" {
		t.Fatalf("decoded message changed with its input: %+v", m)
	}
}

func fuzzSeeds(f *testing.F, enc func(g gen) ([]byte, error)) {
	g := gen{rand.New(rand.NewSource(5))}
	for i := 0; i < 40; i++ {
		if b, err := enc(g); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"params":{"a":[1,-2.5e-3,"\u00e9\ud800",{"b":null}]}}`))
}

// FuzzDecodeActivationMessage: for any input, DecodeActivationMessage
// returns exactly what json.Unmarshal returns (value and error).
func FuzzDecodeActivationMessage(f *testing.F) {
	fuzzSeeds(f, func(g gen) ([]byte, error) { m := g.activationMessage(); return m.AppendJSON(nil) })
	f.Fuzz(func(t *testing.T, in []byte) {
		same(t, in, DecodeActivationMessage)
	})
}

// FuzzDecodeCompletion is the same for completions.
func FuzzDecodeCompletion(f *testing.F) {
	fuzzSeeds(f, func(g gen) ([]byte, error) { c := g.completion(); return c.AppendJSON(nil) })
	f.Fuzz(func(t *testing.T, in []byte) {
		same(t, in, DecodeCompletion)
	})
}

// A no-op activation as the controller publishes it and its completion as
// the invoker publishes it, for the benchmarks.
func benchMessages(b *testing.B) (am, comp []byte) {
	m := ActivationMessage{
		ActivationID: NewActivationID(), TransactionID: "f3a9c1d2e4b5a6c7d8e9f0a1b2c3d4e5",
		Action: ActionMeta{
			Namespace: "guest", Name: "noop", Version: "0.0.1", Rev: 1, Kind: "native",
			Limits:      Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1},
			Annotations: Params{{Key: "exec", Value: json.RawMessage(`"native"`)}},
		},
		Subject: "guest", Params: json.RawMessage(`{}`), Blocking: true, ControllerID: "controller0",
		Published: 1790000000123,
	}
	am, err := m.AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	a := Activation{
		Namespace: "guest", Name: "noop", Version: "0.0.1", Subject: "guest", ActivationID: m.ActivationID,
		Start: 1790000000125, End: 1790000000126, Duration: 1, Response: NewResponse(0, json.RawMessage(`{}`)),
		Logs: []string{},
	}
	a.Annotate(m.Action, Timings{Queued: 2, Run: 1, Start: StartWarm}, false)
	c := Completion{Activation: a, InvokerID: "invoker0"}
	comp, err = c.AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	return am, comp
}

func BenchmarkDecodeActivationMessage(b *testing.B) {
	am, _ := benchMessages(b)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m ActivationMessage
			if err := DecodeActivationMessage(am, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m ActivationMessage
			if err := json.Unmarshal(am, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeCompletion(b *testing.B) {
	_, comp := benchMessages(b)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c Completion
			if err := DecodeCompletion(comp, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c Completion
			if err := json.Unmarshal(comp, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeCompletion(b *testing.B) {
	_, comp := benchMessages(b)
	var c Completion
	if err := DecodeCompletion(comp, &c); err != nil {
		b.Fatal(err)
	}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.AppendJSON(make([]byte, 0, 1024)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// checkCompactField checks CompactField against encoding/json: when it
// can tell, b is valid, compact, and the field is what json.Unmarshal into
// a map finds.
func checkCompactField(t *testing.T, b []byte, key string) (ok bool) {
	t.Helper()
	val, found, ok := CompactField(b, key)
	if !ok {
		return false
	}
	if !json.Valid(b) {
		t.Fatalf("%q: CompactField ok on invalid JSON", b)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil || !bytes.Equal(c.Bytes(), b) {
		t.Fatalf("%q: CompactField ok, json.Compact gives %q (%v)", b, c.Bytes(), err)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		if found {
			t.Fatalf("%q: not an object, yet %q found", b, key)
		}
		return true
	}
	want, wfound := obj[key]
	if found != wfound || !bytes.Equal(val, want) {
		t.Fatalf("%q: field %q = %q (%v), json.Unmarshal's %q (%v)", b, key, val, found, want, wfound)
	}
	return true
}

func TestCompactField(t *testing.T) {
	g := gen{rand.New(rand.NewSource(6))}
	told := 0
	for i := 0; i < 20000; i++ {
		var b bytes.Buffer
		if g.r.Intn(2) == 0 {
			fmt.Fprintf(&b, `{"a":1,"error":`)
			g.raw(&b, 1, g.r.Intn(8) == 0)
			b.WriteString(`,"error":"x"}`)
		} else {
			g.raw(&b, 0, g.r.Intn(8) == 0)
		}
		in := b.Bytes()
		if g.r.Intn(3) == 0 {
			in = g.mutate(in)
		}
		if checkCompactField(t, in, "error") {
			told++
		}
	}
	if told < 5000 {
		t.Errorf("CompactField could tell only %d of 20000", told)
	}
	for _, c := range []struct {
		in        string
		val       string
		found, ok bool
	}{
		{`{"error":"a","b":[1,{"error":2}],"error":{"c":null}}`, `{"c":null}`, true, true},
		{`{"b":1}`, ``, false, true},
		{`[{"error":1}]`, ``, false, true},
		{`"error"`, ``, false, true},
		{`{"\u0065rror":1}`, ``, false, false},
		{`{"error": 1}`, ``, false, false},
		{`{"error":1} `, ``, false, false},
		{`{"error":1`, ``, false, false},
	} {
		val, found, ok := CompactField([]byte(c.in), "error")
		if string(val) != c.val || found != c.found || ok != c.ok {
			t.Errorf("%s: %q %v %v, want %q %v %v", c.in, val, found, ok, c.val, c.found, c.ok)
		}
	}
}

// FuzzCompactField: whatever CompactField tells is what encoding/json says.
func FuzzCompactField(f *testing.F) {
	for _, s := range []string{`{"error":"x"}`, `{"a":[1,2],"error":{"b":null},"error":3}`, `[1,"a",{}]`, `{"a": 1}`, `-1.5e3`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkCompactField(t, in, "error")
	})
}
