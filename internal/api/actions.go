package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-faas/eddy/internal/controller"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Server-side action annotations.
const (
	annExec          = "exec"
	annProvideAPIKey = "provide-api-key"
)

// putSlack is what an action PUT may carry besides its code: parameters,
// annotations and the JSON around them.
const putSlack = 64 << 10

// actionPut is the body of PUT .../actions/{name} (OpenWhisk's
// WhiskActionPut); every field is optional on update.
type actionPut struct {
	Exec           *execPut      `json:"exec"`
	Parameters     *whisk.Params `json:"parameters"`
	Annotations    *whisk.Params `json:"annotations"`
	Limits         *limitsPut    `json:"limits"`
	Version        *string       `json:"version"`
	Publish        *bool         `json:"publish"`
	DelAnnotations []string      `json:"delAnnotations"`
}

// execPut is the exec of a PUT; binary is never trusted from the client.
type execPut struct {
	Kind       string   `json:"kind"`
	Code       *string  `json:"code"`
	Main       string   `json:"main"`
	Image      string   `json:"image"`
	Components []string `json:"components"`
}

// limitsPut holds the limits a PUT gives; the others keep their values.
type limitsPut struct {
	Timeout     *int64 `json:"timeout"`
	Memory      *int64 `json:"memory"`
	Logs        *int64 `json:"logs"`
	Concurrency *int   `json:"concurrency"`
	Instances   *int   `json:"instances"`
}

// actionRef is the {name...} of an action route: "a" (the default
// package), "pkg/a", or with List set "" or "pkg/" (the list forms).
type actionRef struct {
	Package string
	Name    string
	List    bool
}

// parseActionRef validates the {name...} of an action route. More than two
// segments name no route (404); an illegal name is a 400.
func parseActionRef(r *http.Request) (actionRef, error) {
	const op = "api.actionRef"
	path := r.PathValue("name")
	if path == "" {
		return actionRef{List: true}, nil
	}
	parts := strings.Split(path, "/")
	var ref actionRef
	switch {
	case len(parts) == 1:
		ref = actionRef{Name: parts[0]}
	case len(parts) == 2 && parts[1] == "" && r.Method == http.MethodGet:
		ref = actionRef{Package: parts[0], List: true}
	case len(parts) == 2 && parts[1] != "":
		ref = actionRef{Package: parts[0], Name: parts[1]}
	default:
		return actionRef{}, whisk.E(op, whisk.NotFound, whisk.MsgNotFound, nil)
	}
	if !whisk.ValidName(parts[0]) || (ref.Name != "" && !whisk.ValidName(ref.Name)) {
		return actionRef{}, whisk.E(op, whisk.Invalid, whisk.MsgBadEntityName, nil)
	}
	return ref, nil
}

// entityName is the reference in namespace ns.
func (a actionRef) entityName(ns string) whisk.EntityName {
	return whisk.EntityName{Namespace: ns, Package: a.Package, Name: a.Name}
}

// ownPackage checks the package of a write to a packaged action in the
// caller's namespace: it must exist (404), be a package (409) and not a
// binding (400).
func (s *server) ownPackage(r *http.Request, ns string, ref actionRef) error {
	if ref.Package == "" {
		return nil
	}
	p, err := s.cat.Package(r.Context(), ns, ref.Package)
	if err != nil {
		return err
	}
	if p.IsBinding() {
		return whisk.E("api.ownPackage", whisk.Invalid, whisk.MsgNotAllowedOnBinding, nil)
	}
	return nil
}

// actionView is an action as the API shows it: slices never null, code
// dropped when asked.
// A packaged action shows namespace "ns/pkg" and its bare name.
func actionView(a whisk.Action, code bool) whisk.Action {
	a.Namespace, a.Name = a.EntityPath(), a.BareName()
	if !code {
		a.Exec.Code = ""
	}
	if a.Parameters == nil {
		a.Parameters = whisk.Params{}
	}
	if a.Annotations == nil {
		a.Annotations = whisk.Params{}
	}
	return a
}

// actionSummary is a list item: no code, no kind (the CLI reads the kind
// from the exec annotation).
type actionSummary struct {
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	Version     string       `json:"version"`
	Publish     bool         `json:"publish"`
	Annotations whisk.Params `json:"annotations"`
	Updated     int64        `json:"updated"`
	Limits      whisk.Limits `json:"limits"`
	Exec        struct {
		Binary bool `json:"binary"`
	} `json:"exec"`
}

// getAction is GET .../actions/{name}[?code=false]: an action of the
// caller's, or of a package it may read (merged with the package's, or
// with the binding's and its target's, parameters). The list forms
// ("" and "pkg/") list.
func (s *server) getAction(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	ref, err := parseActionRef(r)
	if err != nil {
		return err
	}
	if ref.List {
		if ref.Package == "" {
			if err := entitled(caller, r); err != nil {
				return err
			}
			return s.listActions(w, r, caller)
		}
		return s.listPackageActions(w, r, caller, ref.Package)
	}
	code, err := queryBool(r.URL.Query(), "code", true)
	if err != nil {
		return err
	}
	ra, err := s.cat.Action(r.Context(), caller.Namespace, ref.entityName(routeNamespace(caller, r)))
	if err != nil {
		return err
	}
	view := actionView(ra.Action, code)
	if ra.Binding == "" || code {
		writeJSON(w, http.StatusOK, view)
		return nil
	}
	// OpenWhisk's metadata view of an action reached through a binding
	// names the binding (not with code=true).
	writeJSON(w, http.StatusOK, struct {
		whisk.Action
		Binding string `json:"binding"`
	}{view, ra.Binding})
	return nil
}

// listActions is GET .../actions?limit&skip&count: every action of the
// caller's namespace, packaged ones included (OpenWhisk's view).
func (s *server) listActions(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	skip, limit, count, err := listQuery(r, "actions")
	if err != nil {
		return err
	}
	if count {
		n, err := s.store.CountActions(r.Context(), caller.Namespace)
		if err != nil {
			return err
		}
		writeCount(w, "actions", n)
		return nil
	}
	as, err := s.store.ListActions(r.Context(), caller.Namespace, skip, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, summarizeActions(as))
	return nil
}

// listPackageActions is GET .../actions/{pkg}/?limit&skip&count: the
// actions of a package the caller may read (of its target for a
// binding, shown in the target's namespace).
func (s *server) listPackageActions(w http.ResponseWriter, r *http.Request, caller whisk.Identity, pkg string) error {
	skip, limit, count, err := listQuery(r, "actions")
	if err != nil {
		return err
	}
	res, err := s.cat.ReadPackage(r.Context(), caller.Namespace, routeNamespace(caller, r), pkg)
	if err != nil {
		return err
	}
	t := res.Target
	if count {
		n, err := s.store.CountPackageActions(r.Context(), t.Namespace, t.Name)
		if err != nil {
			return err
		}
		writeCount(w, "actions", n)
		return nil
	}
	as, err := s.store.ListPackageActions(r.Context(), t.Namespace, t.Name, skip, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, summarizeActions(as))
	return nil
}

func summarizeActions(as []whisk.Action) []actionSummary {
	out := make([]actionSummary, len(as))
	for i, a := range as {
		a = actionView(a, false)
		out[i] = actionSummary{Namespace: a.Namespace, Name: a.Name, Version: a.Version, Publish: a.Publish,
			Annotations: a.Annotations, Updated: a.Updated, Limits: a.Limits}
		out[i].Exec.Binary = a.Exec.Binary
	}
	return out
}

// deleteAction is DELETE .../actions/{name}: 200 with the deleted action;
// the action's topic goes with it.
func (s *server) deleteAction(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	ref, err := parseActionRef(r)
	if err != nil {
		return err
	}
	if err := s.ownPackage(r, caller.Namespace, ref); err != nil {
		return err
	}
	a, err := s.store.DeleteAction(r.Context(), caller.Namespace, whisk.PackagedName(ref.Package, ref.Name))
	if err != nil {
		return err
	}
	if err := s.topics.DeleteTopic(r.Context(), whisk.ActionTopic(a.FQN())); err != nil {
		s.log.Warn("delete action topic", "tid", transactionID(r), "action", a.FQN().String(), "err", err)
	}
	writeJSON(w, http.StatusOK, actionView(a, true))
	return nil
}

// putAction is PUT .../actions/{name}?overwrite=B: create, or with
// overwrite=true update by merging the given fields into the stored action.
func (s *server) putAction(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.putAction"
	ref, err := parseActionRef(r)
	if err != nil {
		return err
	}
	name := whisk.PackagedName(ref.Package, ref.Name)
	put, overwrite, err := readPut[actionPut](w, r, s.limits.MaxCode+s.limits.MaxPayload+putSlack, false)
	if err != nil {
		return err
	}
	if err := s.ownPackage(r, caller.Namespace, ref); err != nil {
		return err
	}

	old, err := s.store.GetAction(r.Context(), caller.Namespace, name)
	exists := err == nil
	if err != nil && !whisk.IsKind(err, whisk.NotFound) {
		return err
	}
	if exists && !overwrite {
		return whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
	}
	if put.Exec != nil && put.Exec.Kind == whisk.KindSequence {
		if err := s.checkSequence(r.Context(), caller, whisk.FQN{Namespace: caller.Namespace, Name: name}, put.Exec); err != nil {
			return err
		}
	}

	var a whisk.Action
	if exists {
		a, err = s.mergeAction(old, put)
	} else {
		a, err = s.newAction(caller.Namespace, name, put)
	}
	if err != nil {
		return err
	}
	a = sequenceParams(a, old, exists, put)
	if err := s.limits.Check(a.Limits); err != nil {
		return err
	}
	if p, _ := json.Marshal(a.Parameters); int64(len(p)) > s.limits.MaxPayload {
		return whisk.E(op, whisk.TooLarge, whisk.MsgPayloadTooLarge(int64(len(p)), s.limits.MaxPayload), nil)
	}

	if !exists && !a.IsSequence() { // a sequence runs in the controller: no topic
		if err := s.topics.EnsureTopic(r.Context(), whisk.ActionTopic(a.FQN())); err != nil {
			return whisk.E(op, whisk.Unavailable, "", err)
		}
	}
	stored, err := s.store.PutAction(r.Context(), a, old.Rev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, actionView(stored, true))
	return nil
}

// newAction builds a created action: exec required, limits from the
// defaults, version 0.0.1 unless a valid one is given, provide-api-key
// false unless given.
func (s *server) newAction(ns, name string, put actionPut) (whisk.Action, error) {
	if put.Exec == nil {
		return whisk.Action{}, whisk.E("api.newAction", whisk.Invalid, whisk.MsgMalformed+"exec undefined", nil)
	}
	exec, err := s.buildExec(*put.Exec)
	if err != nil {
		return whisk.Action{}, err
	}
	version := "0.0.1"
	if put.Version != nil {
		if _, ok := parseSemver(*put.Version); !ok {
			return whisk.Action{}, whisk.E("api.newAction", whisk.Invalid, whisk.MsgMalformed+"version must be major.minor.patch", nil)
		}
		version = *put.Version
	}
	a := whisk.Action{
		Namespace: ns, Name: name, Version: version, Exec: exec,
		Parameters: whisk.Params{}, Annotations: whisk.Params{},
		Limits: mergeLimits(s.limits.Defaults(), put.Limits),
	}
	if put.Parameters != nil {
		a.Parameters = *put.Parameters
	}
	if put.Annotations != nil {
		a.Annotations = *put.Annotations
	}
	if put.Publish != nil {
		a.Publish = *put.Publish
	}
	a.Annotations = a.Annotations.Without(put.DelAnnotations)
	a.Annotations = a.Annotations.Merge(whisk.Params{{Key: annExec, Value: jsonString(exec.Kind)}})
	if _, ok := a.Annotations.Get(annProvideAPIKey); !ok {
		a.Annotations = append(a.Annotations, whisk.KeyValue{Key: annProvideAPIKey, Value: json.RawMessage("false")})
	}
	return a, nil
}

// mergeAction applies an update: missing fields keep their values, limits
// and annotations merge, delAnnotations go, the version's patch is bumped.
func (s *server) mergeAction(old whisk.Action, put actionPut) (whisk.Action, error) {
	a := old
	if put.Exec != nil {
		exec, err := s.buildExec(*put.Exec)
		if err != nil {
			return whisk.Action{}, err
		}
		a.Exec = exec
	}
	if put.Parameters != nil {
		a.Parameters = *put.Parameters
	}
	if put.Annotations != nil {
		a.Annotations = a.Annotations.Merge(*put.Annotations)
	}
	if put.Publish != nil {
		a.Publish = *put.Publish
	}
	a.Annotations = a.Annotations.Without(put.DelAnnotations)
	a.Annotations = a.Annotations.Merge(whisk.Params{{Key: annExec, Value: jsonString(a.Exec.Kind)}})
	a.Limits = mergeLimits(old.Limits, put.Limits)
	a.Version = bumpPatch(old.Version)
	return a, nil
}

// buildExec validates an exec: the kind resolves in the manifest, blackbox
// needs an image, code kinds need code, binary is derived from the code.
func (s *server) buildExec(e execPut) (whisk.Exec, error) {
	const op = "api.buildExec"
	if e.Kind == "" {
		return whisk.Exec{}, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"exec.kind undefined", nil)
	}
	if e.Kind == whisk.KindSequence { // checked by checkSequence, not a runtime
		return whisk.Exec{Kind: whisk.KindSequence, Components: e.Components}, nil
	}
	kind, err := s.rt.Resolve(e.Kind)
	if err != nil {
		return whisk.Exec{}, err
	}
	code := ""
	if e.Code != nil {
		code = *e.Code
	}
	if int64(len(code)) > s.limits.MaxCode {
		return whisk.Exec{}, whisk.E(op, whisk.TooLarge, whisk.MsgPayloadTooLarge(int64(len(code)), s.limits.MaxCode), nil)
	}
	ex := whisk.Exec{Kind: kind, Code: code, Main: e.Main, Binary: whisk.LooksBinary(code)}
	if kind == whisk.KindBlackbox {
		if e.Image == "" {
			return whisk.Exec{}, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"exec.image undefined (a blackbox action needs an image)", nil)
		}
		ex.Image = e.Image
	} else if code == "" {
		return whisk.Exec{}, whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"exec.code undefined", nil)
	}
	return ex, nil
}

// mergeLimits overlays the given limits on base, field by field.
func mergeLimits(base whisk.Limits, p *limitsPut) whisk.Limits {
	if p == nil {
		return base
	}
	if p.Timeout != nil {
		base.Timeout = *p.Timeout
	}
	if p.Memory != nil {
		base.Memory = *p.Memory
	}
	if p.Logs != nil {
		base.Logs = *p.Logs
	}
	if p.Concurrency != nil {
		base.Concurrency = *p.Concurrency
	}
	if p.Instances != nil {
		base.Instances = *p.Instances
	}
	return base
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// parseSemver parses "major.minor.patch".
func parseSemver(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// bumpPatch returns the next patch version (0.0.1 → 0.0.2).
func bumpPatch(v string) string {
	sv, ok := parseSemver(v)
	if !ok {
		return "0.0.1"
	}
	return fmt.Sprintf("%d.%d.%d", sv[0], sv[1], sv[2]+1)
}

// invokeAction is POST .../actions/{name}?blocking&result&timeout.
func (s *server) invokeAction(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.invokeAction"
	ref, err := parseActionRef(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	blocking, err := queryBool(q, "blocking", false)
	if err != nil {
		return err
	}
	resultOnly, err := queryBool(q, "result", false)
	if err != nil {
		return err
	}
	var wait time.Duration
	if v := q.Get("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 || ms > s.limits.MaxBlockingWait {
			return whisk.E(op, whisk.Invalid, whisk.MsgBadTimeout, err)
		}
		wait = time.Duration(ms) * time.Millisecond
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
	// One cached read for an action of the default package; a packaged
	// one adds its package (and a binding's target), cached too.
	ra, err := s.cat.Action(r.Context(), caller.Namespace, ref.entityName(routeNamespace(caller, r)))
	if err != nil {
		return err
	}
	if name, ok := s.builtinAction(ra.Action); ok {
		// A built-in feed reached through a binding (wsk trigger create
		// --feed mybinding/alarm): the provider answers, not the stored
		// placeholder.
		return s.invokeBuiltinAs(w, r, caller, name, ra, body, blocking, resultOnly)
	}
	res, err := s.inv.Invoke(r.Context(), controller.Request{
		TransactionID: transactionID(r),
		Identity:      caller,
		Action:        ra.Action,
		Binding:       ra.Binding,
		Params:        body,
		Blocking:      blocking,
		ResultOnly:    resultOnly,
		Wait:          wait,
		TraceParent:   r.Header.Get("traceparent"),
	})
	if err != nil {
		return err
	}
	// The canonical form: Set would allocate it on every call.
	w.Header().Set("X-Openwhisk-Activation-Id", string(res.ActivationID))
	if res.Activation == nil {
		writeJSON(w, http.StatusAccepted, map[string]whisk.ActivationID{"activationId": res.ActivationID})
		return nil
	}
	act := *res.Activation
	status := http.StatusOK
	switch act.Response.StatusCode {
	case whisk.StatusSuccess:
	case whisk.StatusApplicationError, whisk.StatusDeveloperError:
		status = http.StatusBadGateway
	default:
		status = http.StatusInternalServerError
	}
	if resultOnly {
		result := act.Response.Result
		if len(bytes.TrimSpace(result)) == 0 {
			result = json.RawMessage("{}")
		}
		writeRaw(w, status, result)
		return nil
	}
	writeJSON(w, status, activationView(act))
	return nil
}
