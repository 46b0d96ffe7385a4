package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// fakeScheduler answers Fetch with a fixed activation and CreateQueue with
// an error of the kind it was given.
type fakeScheduler struct{ err error }

func (f fakeScheduler) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &FetchResponse{Status: FetchOK, Activation: &whisk.ActivationMessage{
		ActivationID: "0123456789abcdef0123456789abcdef", Action: whisk.ActionMeta{Namespace: req.Namespace, Name: req.Action, Rev: req.Rev},
	}}, nil
}

func (f fakeScheduler) CreateQueue(ctx context.Context, req *CreateQueueRequest) (*CreateQueueResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &CreateQueueResponse{Leader: whisk.LeaderInfo{SchedulerID: "s1", Addr: "a"}}, nil
}

func serve(t *testing.T, s Scheduler) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	Register(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), append(DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return NewClient(cc)
}

// TestRoundTrip: requests and answers cross a real gRPC connection as JSON.
func TestRoundTrip(t *testing.T) {
	c := serve(t, fakeScheduler{})
	resp, err := c.Fetch(context.Background(), &FetchRequest{Namespace: "guest", Action: "hello", Rev: 3, Alive: true})
	if err != nil || resp.Status != FetchOK || resp.Activation == nil || resp.Activation.Action.Rev != 3 || resp.Activation.Action.Name != "hello" {
		t.Fatalf("Fetch = %+v, %v", resp, err)
	}
	cq, err := c.CreateQueue(context.Background(), &CreateQueueRequest{Action: whisk.ActionMeta{Name: "hello"}})
	if err != nil || cq.Leader.SchedulerID != "s1" {
		t.Fatalf("CreateQueue = %+v, %v", cq, err)
	}
}

// TestErrorKindsCrossTheWire: a kinded error on the server arrives with the
// same kind and its user message on the client.
func TestErrorKindsCrossTheWire(t *testing.T) {
	for _, k := range []whisk.Kind{whisk.Invalid, whisk.NotFound, whisk.Conflict, whisk.Throttled, whisk.Unavailable, whisk.Internal, whisk.Forbidden, whisk.Unauthorized, whisk.Timeout} {
		c := serve(t, fakeScheduler{err: whisk.E("test", k, "the message", nil)})
		_, err := c.Fetch(context.Background(), &FetchRequest{})
		if got := whisk.KindOf(err); got != k {
			t.Errorf("kind %v arrived as %v (%v)", k, got, err)
		}
		if whisk.UserMessage(err) != "the message" {
			t.Errorf("kind %v: message %q", k, whisk.UserMessage(err))
		}
	}
}

// TestLocalMatchesTheWire: a direct call answers as a gRPC call would, and
// its errors arrive with the same kind and user message.
func TestLocalMatchesTheWire(t *testing.T) {
	resp, err := NewLocal(fakeScheduler{}).Fetch(context.Background(), &FetchRequest{Namespace: "guest", Action: "hello", Rev: 3})
	if err != nil || resp.Status != FetchOK || resp.Activation == nil || resp.Activation.Action.Rev != 3 {
		t.Fatalf("Fetch = %+v, %v", resp, err)
	}
	for _, k := range []whisk.Kind{whisk.Invalid, whisk.NotFound, whisk.Unavailable, whisk.Internal, whisk.Timeout} {
		wire := serve(t, fakeScheduler{err: whisk.E("test", k, "the message", nil)})
		_, werr := wire.Fetch(context.Background(), &FetchRequest{})
		_, lerr := NewLocal(fakeScheduler{err: whisk.E("test", k, "the message", nil)}).Fetch(context.Background(), &FetchRequest{})
		if whisk.KindOf(lerr) != whisk.KindOf(werr) || whisk.UserMessage(lerr) != whisk.UserMessage(werr) {
			t.Errorf("kind %v: local %v (%v), wire %v (%v)", k, whisk.KindOf(lerr), lerr, whisk.KindOf(werr), werr)
		}
	}
	_, err = NewLocal(fakeScheduler{err: context.Canceled}).Fetch(context.Background(), &FetchRequest{})
	if whisk.KindOf(err) != whisk.Unavailable {
		t.Errorf("a cancelled fetch: kind %v (%v)", whisk.KindOf(err), err)
	}
}

func fetchResponses() []*FetchResponse {
	m := whisk.ActivationMessage{
		ActivationID: "0123456789abcdef0123456789abcdef", TransactionID: "t\"x\n",
		Action: whisk.ActionMeta{
			Namespace: "guest", Name: "pkg/é", Version: "0.0.1", Rev: 3, Kind: "python:3.11",
			Limits:      whisk.Limits{Timeout: 60000, Memory: 256, Logs: 10, Concurrency: 1},
			Annotations: whisk.Params{{Key: "exec", Value: json.RawMessage(`"python:3.11"`)}},
		},
		Subject: "guest", Params: json.RawMessage(`{"a":[1,2.5,"\u00e9"],"b":{"c":null}}`), Blocking: true,
		ControllerID: "controller0", Published: 1790000000123,
	}
	spaced, withInit, html := m, m, m
	spaced.Params = json.RawMessage(`{ "a": 1 }`)
	withInit.InitParams = map[string]string{"k": "v"}
	html.Params = json.RawMessage(`{"a":"<&>"}`)
	return []*FetchResponse{
		{Status: FetchEmpty}, {Status: FetchOK, Activation: &m}, {Status: FetchOK, Activation: &spaced},
		{Status: FetchOK, Activation: &withInit}, {Status: FetchOK, Activation: &html}, {Status: "\"é"},
	}
}

// TestCodecFetchResponseMatchesJSON: the codec writes a FetchResponse as
// json.Marshal does and reads it (and anything else) as json.Unmarshal does.
func TestCodecFetchResponseMatchesJSON(t *testing.T) {
	for _, r := range fetchResponses() {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Codec{}.Marshal(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Marshal = %s, %v\nwant %s", got, err, want)
		}
		sameFetchResponse(t, got)
		sameFetchResponse(t, append([]byte(" "), got...))
		sameFetchResponse(t, got[:len(got)-1])
		sameFetchResponse(t, bytes.Replace(got, []byte(`"activation":{`), []byte(`"activation":null,"x":{`), 1))
	}
	if !unmarshalFast(&FetchResponse{}, []byte(`{"status":"ok","activation":{}}`)) {
		t.Error("the fast path did not read a plain response")
	}
}

func sameFetchResponse(t *testing.T, in []byte) {
	t.Helper()
	var want, got FetchResponse
	werr := json.Unmarshal(in, &want)
	gerr := Codec{}.Unmarshal(in, &got)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %+v, %v; json.Unmarshal %+v, %v", in, got, gerr, want, werr)
	}
}

// FuzzCodecUnmarshalFetchResponse: for any input the codec decodes a
// FetchResponse exactly as json.Unmarshal does.
func FuzzCodecUnmarshalFetchResponse(f *testing.F) {
	for _, r := range fetchResponses() {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(sameFetchResponse)
}

func BenchmarkCodecFetchResponse(b *testing.B) {
	m := *fetchResponses()[1].Activation // plain strings, as most are
	m.TransactionID, m.Action.Name = "f3a9c1d2e4b5a6c7", "hello"
	r := &FetchResponse{Status: FetchOK, Activation: &m}
	b.Run("Codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ := Codec{}.Marshal(r)
			var back FetchResponse
			if err := (Codec{}).Unmarshal(out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ := json.Marshal(r)
			var back FetchResponse
			if err := json.Unmarshal(out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
}
