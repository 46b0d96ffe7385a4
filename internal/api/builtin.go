package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Builtins runs the built-in actions the controller serves in its own
// process rather than in a container: the feed actions of
// /whisk.system/alarms (internal/alarms.Feed has it). A feed action is a
// lifecycle call on the alarms provider's state, answered in milliseconds;
// running it in a container would need a runtime image for it and an API
// key for it to call back with, and it would only forward the call to the
// provider (OpenWhisk's alarm.js forwards it to a web action).
type Builtins interface {
	// BuiltinPath is the URL path (below /api/v1/namespaces/) of the
	// built-in actions' package, e.g. "whisk.system/actions/alarms".
	BuiltinPath() string
	// InvokeBuiltin runs built-in action name of that package for caller
	// with the invoke body; it returns the activation's result and
	// whether it succeeded. ok=false with a nil result: no such action.
	InvokeBuiltin(ctx context.Context, caller whisk.Identity, name string, params json.RawMessage) (result json.RawMessage, ok bool)
}

// Records stores activation records (store.Store has it).
type Records interface {
	PutActivation(ctx context.Context, a whisk.Activation) error
}

// builtinRoutes serves POST on the built-in actions: every namespace may
// invoke them (their package is shared), as OpenWhisk lets anyone invoke
// the actions of a published package.
func (s *server) builtinRoutes(m *http.ServeMux) {
	if s.builtins == nil {
		return
	}
	m.Handle("POST /api/v1/namespaces/"+s.builtins.BuiltinPath()+"/{name}", s.authed(map[string]authedFunc{
		http.MethodPost: s.invokeBuiltin,
	}))
}

// invokeBuiltin is POST .../actions/<pkg>/{name}?blocking&result for a
// built-in action: it runs at once, writes the activation record (namespace
// and subject of the caller, annotation path of the action, as OpenWhisk
// records an invocation of a packaged action) and answers as invokeAction.
func (s *server) invokeBuiltin(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.invokeBuiltin"
	name := r.PathValue("name")
	q := r.URL.Query()
	blocking, err := queryBool(q, "blocking", false)
	if err != nil {
		return err
	}
	resultOnly, err := queryBool(q, "result", false)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, s.limits.MaxPayload)
	if err != nil {
		return err
	}
	if t := bytes.TrimSpace(body); len(t) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(t, &obj); err != nil || obj == nil {
			detail := "the parameters must be a JSON object"
			if err != nil {
				detail = err.Error()
			}
			return whisk.E(op, whisk.Invalid, whisk.MsgMalformed+detail, err)
		}
	}
	return s.runBuiltin(w, r, caller, name, body, "", blocking, resultOnly)
}

// builtinAction reports whether a (as the catalog resolved it) is one of
// the built-in actions, and its name in their package.
func (s *server) builtinAction(a whisk.Action) (string, bool) {
	if s.builtins == nil {
		return "", false
	}
	ns, pkg, found := strings.Cut(s.builtins.BuiltinPath(), "/actions/")
	if !found || a.Namespace != ns {
		return "", false
	}
	p, name := whisk.SplitPackaged(a.Name)
	return name, p == pkg
}

// invokeBuiltinAs runs built-in action name reached through a binding (or
// another path the catalog resolved): the invoke body merged over the
// resolved action's parameters (package < binding < action < body), as
// OpenWhisk merges a binding's parameters into an invocation.
func (s *server) invokeBuiltinAs(w http.ResponseWriter, r *http.Request, caller whisk.Identity, name string,
	ra whisk.ResolvedAction, body []byte, blocking, resultOnly bool) error {
	var given map[string]json.RawMessage
	if t := bytes.TrimSpace(body); len(t) > 0 {
		if err := json.Unmarshal(t, &given); err != nil {
			return whisk.E("api.invokeBuiltinAs", whisk.Invalid, whisk.MsgMalformed+err.Error(), err)
		}
	}
	extra := whisk.ObjectParams(given)
	obj := map[string]json.RawMessage{}
	for _, kv := range ra.Action.Parameters.Merge(extra) {
		v := kv.Value
		if len(bytes.TrimSpace(v)) == 0 {
			v = json.RawMessage("null")
		}
		obj[kv.Key] = v
	}
	merged, err := json.Marshal(obj)
	if err != nil {
		return whisk.E("api.invokeBuiltinAs", whisk.Internal, "", err)
	}
	return s.runBuiltin(w, r, caller, name, merged, ra.Binding, blocking, resultOnly)
}

// runBuiltin runs built-in action name with params, writes its record
// (with the binding annotation when reached through one) and answers.
func (s *server) runBuiltin(w http.ResponseWriter, r *http.Request, caller whisk.Identity, name string,
	body []byte, binding string, blocking, resultOnly bool) error {
	const op = "api.runBuiltin"
	start := s.now()
	result, ok := s.builtins.InvokeBuiltin(r.Context(), caller, name, body)
	if !ok && result == nil {
		return whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil)
	}
	end := s.now()
	code := whisk.StatusSuccess
	if !ok {
		code = whisk.StatusApplicationError
	}
	path := s.builtins.BuiltinPath()
	if ns, rest, found := bytes.Cut([]byte(path), []byte("/actions/")); found {
		path = string(ns) + "/" + string(rest)
	}
	kind, _ := json.Marshal("builtin")
	pathJSON, _ := json.Marshal(path + "/" + name)
	act := whisk.Activation{
		Namespace:    caller.Namespace,
		Name:         name,
		Version:      "0.0.1",
		Subject:      caller.Subject,
		ActivationID: whisk.NewActivationID(),
		Start:        start.UnixMilli(),
		End:          end.UnixMilli(),
		Duration:     end.Sub(start).Milliseconds(),
		StatusCode:   code,
		Response:     whisk.NewResponse(code, result),
		Logs:         []string{},
		Annotations:  whisk.Params{{Key: whisk.AnnPath, Value: pathJSON}, {Key: whisk.AnnKind, Value: kind}},
	}
	if binding != "" {
		act.Annotations = append(act.Annotations, whisk.KeyValue{Key: whisk.AnnBinding, Value: whisk.AppendJSONString(nil, binding)})
	}
	if s.records != nil {
		if err := s.records.PutActivation(context.WithoutCancel(r.Context()), act); err != nil {
			s.log.Warn("built-in action's record not written", "action", path+"/"+name, "err", err)
		}
	}
	w.Header().Set("X-Openwhisk-Activation-Id", string(act.ActivationID))
	if !blocking {
		writeJSON(w, http.StatusAccepted, map[string]whisk.ActivationID{"activationId": act.ActivationID})
		return nil
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusBadGateway
	}
	if resultOnly {
		writeRaw(w, status, result)
		return nil
	}
	writeJSON(w, status, activationView(act))
	return nil
}
