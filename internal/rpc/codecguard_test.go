package rpc

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/eddy-faas/eddy/internal/testenv"
)

// TestCodecGuardFetchResponse: the codec writes a FetchResponse with every
// field set (testenv.Fill), and with each field zeroed in turn, as
// json.Marshal does, and reads it back as json.Unmarshal does: a field
// added to FetchResponse or ActivationMessage and left out of the codec
// fails here.
func TestCodecGuardFetchResponse(t *testing.T) {
	filled := func() *FetchResponse { r := new(FetchResponse); testenv.Fill(r); return r }
	check := func(what string, r *FetchResponse) {
		t.Helper()
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Codec{}.Marshal(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: Marshal = %s, %v\nwant %s", what, got, err, want)
		}
		var dec, std FetchResponse
		if err := (Codec{}).Unmarshal(got, &dec); err != nil {
			t.Fatalf("%s: Unmarshal: %v", what, err)
		}
		if err := json.Unmarshal(got, &std); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dec, std) {
			t.Fatalf("%s: Unmarshal = %+v, json.Unmarshal %+v", what, dec, std)
		}
	}
	check("every field set", filled())
	n := len(testenv.Leaves(filled()))
	for i := range n {
		r := filled()
		leaf := testenv.Leaves(r)[i]
		leaf.Zero()
		check(leaf.Path+" zero", r)
	}
}
