package whisk

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/eddy-faas/eddy/internal/testenv"
)

// The codec guard: every hand-written encoder and decoder of the wire
// types is checked against encoding/json on a value with every field set
// (testenv.Fill), and on that value with each field zeroed in turn
// (testenv.Leaves): a field added to a type and left out of its encoder or
// decoder, or written under another field's name, fails here.

// guarded is one hand-encoded type: a new filled value, its encoder and
// (when it has one) its decoder.
type guarded struct {
	name   string
	filled func() any // a pointer to a filled value
	encode func(v any) ([]byte, error)
	decode func(b []byte) (any, error) // nil: no hand-written decoder
}

var guardedTypes = []guarded{
	{
		name:   "ActivationMessage",
		filled: func() any { m := new(ActivationMessage); testenv.Fill(m); return m },
		encode: func(v any) ([]byte, error) { return v.(*ActivationMessage).AppendJSON(nil) },
		decode: func(b []byte) (any, error) { m := new(ActivationMessage); return m, DecodeActivationMessage(b, m) },
	},
	{
		name:   "Completion",
		filled: func() any { c := new(Completion); testenv.Fill(c); return c },
		encode: func(v any) ([]byte, error) { return v.(*Completion).AppendJSON(nil) },
		decode: func(b []byte) (any, error) { c := new(Completion); return c, DecodeCompletion(b, c) },
	},
	{
		name:   "Activation",
		filled: func() any { a := new(Activation); testenv.Fill(a); return a },
		encode: func(v any) ([]byte, error) { return v.(*Activation).AppendJSON(nil) },
	},
}

// TestCodecGuard checks each guarded type's encoder byte for byte against
// json.Marshal, and its decoder against json.Unmarshal and the round trip,
// with every field set and with each one zeroed.
func TestCodecGuard(t *testing.T) {
	for _, g := range guardedTypes {
		t.Run(g.name, func(t *testing.T) {
			checkCodec(t, g, "every field set", g.filled())
			n := len(testenv.Leaves(g.filled()))
			if n < 5 {
				t.Fatalf("only %d fields found", n)
			}
			for i := range n {
				v := g.filled()
				leaf := testenv.Leaves(v)[i]
				leaf.Zero()
				checkCodec(t, g, leaf.Path+" zero", v)
			}
		})
	}
}

func checkCodec(t *testing.T, g guarded, what string, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: json.Marshal: %v", what, err)
	}
	got, err := g.encode(v)
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the encoder differs from json.Marshal:\n got %s\nwant %s", what, got, want)
	}
	if g.decode == nil {
		return
	}
	dec, err := g.decode(got)
	if err != nil {
		t.Fatalf("%s: decode: %v", what, err)
	}
	std := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	if err := json.Unmarshal(got, std); err != nil {
		t.Fatalf("%s: json.Unmarshal: %v", what, err)
	}
	if !reflect.DeepEqual(dec, std) {
		t.Fatalf("%s: the decoder differs from json.Unmarshal:\n got %+v\nwant %+v", what, dec, std)
	}
	// The round trip: what was encoded comes back, but for what JSON
	// cannot tell apart (an empty slice or map and a missing one).
	again, _ := json.Marshal(dec)
	if !bytes.Equal(again, want) {
		t.Fatalf("%s: the round trip changed the value:\n got %s\nwant %s", what, again, want)
	}
}

// TestCodecGuardSeesADroppedField: the guard would fail on an encoder that
// leaves a field out (here json.Marshal of a copy without the field).
func TestCodecGuardSeesADroppedField(t *testing.T) {
	m := new(ActivationMessage)
	testenv.Fill(m)
	full, _ := m.AppendJSON(nil)
	dropped := *m
	dropped.ControllerID = ""
	partial, _ := dropped.AppendJSON(nil)
	if bytes.Equal(full, partial) {
		t.Fatal("the filled value's encoding does not depend on ControllerID")
	}
}
