package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The fetch messages are the vocabulary's (whisk.FetchRequest,
// whisk.FetchResponse): the queue answers them without linking gRPC.
type (
	// FetchRequest asks for the next activation of an action.
	FetchRequest = whisk.FetchRequest
	// FetchResponse answers a FetchRequest.
	FetchResponse = whisk.FetchResponse
)

// Fetch outcomes (whisk.FetchOK...).
const (
	FetchOK          = whisk.FetchOK
	FetchEmpty       = whisk.FetchEmpty
	FetchNoQueue     = whisk.FetchNoQueue
	FetchMismatch    = whisk.FetchMismatch
	FetchUnavailable = whisk.FetchUnavailable
	FetchRelease     = whisk.FetchRelease
)

// CreateQueueRequest asks a scheduler to host the leader queue of an
// action, or, with Role RoleFollower, to follow it.
type CreateQueueRequest struct {
	Action whisk.ActionMeta `json:"action"`
	// Role is RoleLeader (empty: controllers ask for the leader queue) or
	// RoleFollower (a leader recruits a follower: the scheduler writes its
	// follower key, holds no activations, and elects itself when the leader
	// key vanishes).
	Role string `json:"role,omitempty"`
}

// Roles of a CreateQueueRequest.
const (
	RoleLeader   = ""
	RoleFollower = "follower"
)

// CreateQueueResponse says who leads the action's queue after the request.
type CreateQueueResponse struct {
	Leader whisk.LeaderInfo `json:"leader"`
}

// Scheduler is what a scheduler serves.
type Scheduler interface {
	// Fetch long-polls the action's leader queue (about one second).
	Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error)
	// CreateQueue makes sure the action has a leader queue somewhere.
	CreateQueue(ctx context.Context, req *CreateQueueRequest) (*CreateQueueResponse, error)
}

const serviceName = "eddy.scheduler.v1.Scheduler"

// Codec is the JSON codec both ends use; it is named "json" on the wire.
type Codec struct{}

// Marshal encodes v as JSON; a FetchResponse, sent for every activation,
// without reflection (byte for byte what json.Marshal writes).
func (Codec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*FetchResponse); ok && r != nil {
		return appendFetchResponse(make([]byte, 0, 1024), r)
	}
	return json.Marshal(v)
}

// Unmarshal decodes JSON into v (a zero value, as gRPC gives); a
// FetchResponse as appendJSON writes it without reflection.
func (Codec) Unmarshal(data []byte, v any) error {
	if r, ok := v.(*FetchResponse); ok && unmarshalFast(r, data) {
		return nil
	}
	return json.Unmarshal(data, v)
}

// appendFetchResponse appends r as json.Marshal encodes it.
func appendFetchResponse(b []byte, r *FetchResponse) ([]byte, error) {
	b = append(b, `{"status":`...)
	b = whisk.AppendJSONString(b, r.Status)
	var err error
	if r.Activation != nil {
		b = append(b, `,"activation":`...)
		b, err = r.Activation.AppendJSON(b)
	}
	if r.Epoch != 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendInt(b, r.Epoch, 10)
	}
	return append(b, '}'), err
}

// cutEpoch finds a trailing `,"epoch":N}` (as appendFetchResponse writes
// it) in rest, the part after the status. It returns where the body before
// it ends (or before the closing brace, without one) and N.
func cutEpoch(rest []byte) (end int, epoch int64) {
	const key = `,"epoch":`
	last := len(rest) - 1 // the closing brace
	i := last
	for i > 0 && rest[i-1] >= '0' && rest[i-1] <= '9' {
		i--
	}
	if i > 0 && rest[i-1] == '-' {
		i--
	}
	if i == last || i < len(key) || string(rest[i-len(key):i]) != key {
		return last, 0
	}
	n, err := strconv.ParseInt(string(rest[i:last]), 10, 64)
	if err != nil {
		return last, 0
	}
	return i - len(key), n
}

// unmarshalFast decodes data as json.Unmarshal does into a zero r when it
// is as appendFetchResponse writes it: a plain status (printable ASCII, no
// escapes), then an activation object and an epoch, each optional, which whisk.DecodeActivationMessage
// reads (itself falling back to json.Unmarshal for any other valid shape
// of it). It reports false, leaving r as it was, on anything else.
func unmarshalFast(r *FetchResponse, data []byte) bool {
	const head, act = `{"status":"`, `,"activation":`
	if len(data) < len(head)+2 || string(data[:len(head)]) != head || data[len(data)-1] != '}' {
		return false
	}
	i := len(head)
	for ; i < len(data) && data[i] != '"'; i++ {
		if c := data[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	if i >= len(data) {
		return false
	}
	status, rest := string(data[len(head):i]), data[i+1:]
	end, epoch := cutEpoch(rest)
	body := rest[:end] // what comes between the status and the epoch
	if len(body) == 0 {
		*r = FetchResponse{Status: status, Epoch: epoch}
		return true
	}
	// The activation is a complete JSON object when the decoder takes it,
	// so the whole is valid JSON and json.Unmarshal would decode the
	// object into a new ActivationMessage just the same.
	if len(body) < len(act)+2 || string(body[:len(act)]) != act || body[len(act)] != '{' {
		return false
	}
	m := new(whisk.ActivationMessage)
	if whisk.DecodeActivationMessage(body[len(act):], m) != nil {
		return false
	}
	*r = FetchResponse{Status: status, Activation: m, Epoch: epoch}
	return true
}

// Name is the codec's content subtype.
func (Codec) Name() string { return "json" }

// Register serves s on srv. The server must be created with
// grpc.ForceServerCodecV2 or ServerOptions() so it speaks JSON.
func Register(srv *grpc.Server, s Scheduler) {
	srv.RegisterService(&serviceDesc, s)
}

// ServerOptions are the options a scheduler's gRPC server needs.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodec(Codec{})}
}

// DialOptions are the options a client connection needs (plus credentials).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{}))}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*Scheduler)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Fetch", Handler: fetchHandler},
		{MethodName: "CreateQueue", Handler: createQueueHandler},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "eddy/scheduler.json",
}

func fetchHandler(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	in := new(FetchRequest)
	if err := dec(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	call := func(ctx context.Context, req any) (any, error) {
		out, err := srv.(Scheduler).Fetch(ctx, req.(*FetchRequest))
		return out, ToStatus(err)
	}
	return intercept(ctx, srv, "Fetch", in, call, icpt)
}

func createQueueHandler(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
	in := new(CreateQueueRequest)
	if err := dec(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	call := func(ctx context.Context, req any) (any, error) {
		out, err := srv.(Scheduler).CreateQueue(ctx, req.(*CreateQueueRequest))
		return out, ToStatus(err)
	}
	return intercept(ctx, srv, "CreateQueue", in, call, icpt)
}

// intercept runs call through the server's interceptor chain (icpt, nil
// without interceptors), as generated gRPC code does.
func intercept(ctx context.Context, srv any, method string, in any, call grpc.UnaryHandler, icpt grpc.UnaryServerInterceptor) (any, error) {
	if icpt == nil {
		return call(ctx, in)
	}
	return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/" + method}, call)
}

// Recover is a unary server interceptor that turns a panic in a handler
// into an Internal status (whisk.MsgInternal) and an error log line with
// the method, the panic and the stack; the server goes on serving.
func Recover(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (out any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("rpc: handler panicked", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				out, err = nil, status.Error(codes.Internal, whisk.MsgInternal)
			}
		}()
		return h(ctx, req)
	}
}

// Client calls a scheduler over a connection made with DialOptions.
type Client struct{ cc grpc.ClientConnInterface }

// NewClient wraps a connection.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Fetch calls Scheduler.Fetch.
func (c *Client) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	out := new(FetchResponse)
	if err := c.cc.Invoke(ctx, "/"+serviceName+"/Fetch", req, out); err != nil {
		return nil, FromStatus(err)
	}
	return out, nil
}

// CreateQueue calls Scheduler.CreateQueue.
func (c *Client) CreateQueue(ctx context.Context, req *CreateQueueRequest) (*CreateQueueResponse, error) {
	out := new(CreateQueueResponse)
	if err := c.cc.Invoke(ctx, "/"+serviceName+"/CreateQueue", req, out); err != nil {
		return nil, FromStatus(err)
	}
	return out, nil
}

// Local calls a Scheduler of the same process directly, without gRPC: a
// standalone invoker fetches from its own scheduler this way. Errors come
// back mapped as they would over the wire (a whisk error with the kind of
// the gRPC code), so callers see the same thing either way.
type Local struct{ s Scheduler }

// NewLocal wraps s.
func NewLocal(s Scheduler) *Local { return &Local{s: s} }

// Fetch calls the scheduler's Fetch.
func (l *Local) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	out, err := l.s.Fetch(ctx, req)
	if err != nil {
		return nil, FromStatus(ToStatus(err))
	}
	return out, nil
}

var kindCodes = map[whisk.Kind]codes.Code{
	whisk.Invalid:      codes.InvalidArgument,
	whisk.Unauthorized: codes.Unauthenticated,
	whisk.Forbidden:    codes.PermissionDenied,
	whisk.NotFound:     codes.NotFound,
	whisk.Conflict:     codes.AlreadyExists,
	whisk.TooLarge:     codes.ResourceExhausted,
	whisk.Throttled:    codes.ResourceExhausted,
	whisk.Unavailable:  codes.Unavailable,
	whisk.Timeout:      codes.DeadlineExceeded,
	whisk.Internal:     codes.Internal,
}

// KindToCode maps a whisk kind to a gRPC code.
func KindToCode(k whisk.Kind) codes.Code {
	if c, ok := kindCodes[k]; ok {
		return c
	}
	return codes.Internal
}

// CodeToKind maps a gRPC code back to a whisk kind.
func CodeToKind(c codes.Code) whisk.Kind {
	switch c {
	case codes.InvalidArgument:
		return whisk.Invalid
	case codes.Unauthenticated:
		return whisk.Unauthorized
	case codes.PermissionDenied:
		return whisk.Forbidden
	case codes.NotFound:
		return whisk.NotFound
	case codes.AlreadyExists:
		return whisk.Conflict
	case codes.ResourceExhausted:
		return whisk.Throttled
	case codes.Unavailable, codes.Canceled:
		return whisk.Unavailable
	case codes.DeadlineExceeded:
		return whisk.Timeout
	default:
		return whisk.Internal
	}
}

// ToStatus turns an error into a gRPC status error carrying its kind.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !errors.As(err, new(*whisk.Error)) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(KindToCode(whisk.KindOf(err)), whisk.UserMessage(err))
}

// FromStatus turns a gRPC status error into a whisk error with its kind.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return whisk.E("rpc", whisk.Unavailable, "", err)
	}
	return whisk.E("rpc", CodeToKind(st.Code()), st.Message(), err)
}
