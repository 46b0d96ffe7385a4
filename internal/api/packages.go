package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/eddy-faas/eddy/internal/catalog"
	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// Packages (docs/packages.md): stored as entities
// of kind whisk.EntityPackage; their actions are the namespace's actions
// named "pkg/<name>". Who may read what is the catalog's (internal/catalog).

// packagePut is the body of PUT .../packages/{name} (OpenWhisk's
// WhiskPackagePut); every field is optional, others (the CLI's namespace
// and name) are ignored.
type packagePut struct {
	Binding     *whisk.Binding `json:"binding"`
	Parameters  *whisk.Params  `json:"parameters"`
	Annotations *whisk.Params  `json:"annotations"`
	Version     *string        `json:"version"`
	Publish     *bool          `json:"publish"`
}

// packageSummary is a list item: binding is false for a package, the
// {namespace, name} object for a binding.
type packageSummary struct {
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	Version     string       `json:"version"`
	Publish     bool         `json:"publish"`
	Annotations whisk.Params `json:"annotations"`
	Updated     int64        `json:"updated"`
	Binding     any          `json:"binding"`
}

// packageView is a package as the API shows it: slices never null.
func packageView(p whisk.Package) whisk.Package {
	if p.Parameters == nil {
		p.Parameters = whisk.Params{}
	}
	if p.Annotations == nil {
		p.Annotations = whisk.Params{}
	}
	return p
}

// packageName validates the {name} of a package route.
func packageName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !whisk.ValidName(name) {
		return "", whisk.E("api.packageName", whisk.Invalid, whisk.MsgBadEntityName, nil)
	}
	return name, nil
}

// listPackages is GET .../packages?limit&skip&count: the caller's packages
// and bindings, or another namespace's published packages (bindings
// never). OpenWhisk lets anyone list any namespace this way.
func (s *server) listPackages(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	skip, limit, count, err := listQuery(r, "packages")
	if err != nil {
		return err
	}
	ns := routeNamespace(caller, r)
	if !whisk.ValidName(ns) {
		return whisk.E("api.listPackages", whisk.Invalid, whisk.MsgBadNamespace, nil)
	}
	f := store.EntityFilter{Skip: skip, Limit: limit, PublicOnly: ns != caller.Namespace}
	if count {
		n, err := s.store.CountEntities(r.Context(), whisk.EntityPackage, ns, f)
		if err != nil {
			return err
		}
		writeCount(w, "packages", n)
		return nil
	}
	es, err := s.store.ListEntities(r.Context(), whisk.EntityPackage, ns, f)
	if err != nil {
		return err
	}
	out := make([]packageSummary, 0, len(es))
	for _, e := range es {
		p, err := whisk.PackageFromEntity(e)
		if err != nil {
			return err
		}
		ps := packageSummary{Namespace: p.Namespace, Name: p.Name, Version: p.Version, Publish: p.Publish,
			Annotations: packageView(p).Annotations, Updated: p.Updated, Binding: false}
		if p.IsBinding() {
			ps.Binding = p.Binding
		}
		out = append(out, ps)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getPackage is GET .../packages/{name}: a package the caller may read,
// with its actions and feeds; a binding shows its own fields with the
// target's parameters under its own, and the target's actions.
func (s *server) getPackage(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	name, err := packageName(r)
	if err != nil {
		return err
	}
	ns := routeNamespace(caller, r)
	res, err := s.cat.ReadPackage(r.Context(), caller.Namespace, ns, name)
	if whisk.IsKind(err, whisk.NotFound) {
		// OpenWhisk's route names the package (or binding) asked for.
		return whisk.E("api.getPackage", whisk.NotFound, whisk.MsgResourceMissing(ns+"/"+name), err)
	}
	if err != nil {
		return err
	}
	as, err := s.store.ListPackageActions(r.Context(), res.Target.Namespace, res.Target.Name, 0, 0)
	if err != nil {
		return err
	}
	out := whisk.PackageWithActions{Package: packageView(res.Package),
		Actions: []whisk.PackageAction{}, Feeds: []whisk.PackageAction{}}
	out.Parameters = res.Params()
	if out.Parameters == nil {
		out.Parameters = whisk.Params{}
	}
	for _, a := range as {
		a = actionView(a, false)
		pa := whisk.PackageAction{Name: a.Name, Version: a.Version, Annotations: a.Annotations}
		if _, feed := a.Annotations.Get(whisk.AnnFeed); feed {
			out.Feeds = append(out.Feeds, pa)
		} else {
			out.Actions = append(out.Actions, pa)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putPackage is PUT .../packages/{name}?overwrite=B: create, or update by
// merging (parameters and annotations, when sent, replace), as OpenWhisk's
// Packages.create; a binding's target must be a package the caller may
// read, and not a binding.
func (s *server) putPackage(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.putPackage"
	name, err := packageName(r)
	if err != nil {
		return err
	}
	if name == whisk.DefaultPackage {
		return whisk.E(op, whisk.Invalid, whisk.MsgPackageReserved(name), nil)
	}
	put, overwrite, err := readPut[packagePut](w, r, 2*s.limits.MaxPayload+putSlack, false)
	if err != nil {
		return err
	}
	if put.Binding != nil && put.Binding.IsZero() {
		put.Binding = nil // {} is "not a binding"
	}
	if put.Binding != nil {
		if put.Binding.Namespace == "" {
			return whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"binding namespace undefined", nil)
		}
		b := whisk.Binding{Namespace: catalog.Namespace(caller.Namespace, put.Binding.Namespace), Name: put.Binding.Name}
		put.Binding = &b
	}
	if put.Version != nil {
		if _, ok := parseSemver(*put.Version); !ok {
			return whisk.E(op, whisk.Invalid, whisk.MsgMalformed+"version must be major.minor.patch", nil)
		}
	}
	for _, f := range []struct {
		field string
		p     *whisk.Params
	}{{"parameters", put.Parameters}, {"annotations", put.Annotations}} {
		if f.p == nil {
			continue
		}
		if n := paramsSize(*f.p); int64(n) > s.limits.MaxPayload {
			return whisk.E(op, whisk.TooLarge, whisk.MsgFieldTooLarge(f.field, n, int(s.limits.MaxPayload)), nil)
		}
	}

	// As OpenWhisk: the caller's right to read the target first, then
	// whether the package exists, then what the target is.
	var target catalog.Resolved
	if put.Binding != nil {
		if target, err = s.readBindingTarget(r, caller, *put.Binding); err != nil {
			return err
		}
	}
	old, err := s.cat.Package(r.Context(), caller.Namespace, name)
	exists := err == nil
	if err != nil && !whisk.IsKind(err, whisk.NotFound) {
		return err
	}
	if exists && !overwrite {
		return whisk.E(op, whisk.Conflict, whisk.MsgExists, nil)
	}
	var p whisk.Package
	if exists {
		if put.Binding != nil && !old.IsBinding() {
			return whisk.E(op, whisk.Conflict, whisk.MsgPackageCannotBeBinding, nil)
		}
		p = old
		p.Version = bumpPatch(old.Version)
	} else {
		p = whisk.Package{Namespace: caller.Namespace, Name: name, Version: "0.0.1",
			Parameters: whisk.Params{}, Annotations: whisk.Params{}}
	}
	if put.Binding != nil {
		if target.Package.IsBinding() {
			return whisk.E(op, whisk.Invalid, whisk.MsgBindingToBinding, nil)
		}
		p.Binding = *put.Binding
	}
	if put.Parameters != nil {
		p.Parameters = *put.Parameters
	}
	if put.Annotations != nil {
		p.Annotations = *put.Annotations
	}
	if put.Version != nil {
		p.Version = *put.Version
	}
	if put.Publish != nil {
		p.Publish = *put.Publish
	}
	// The binding annotation is the server's: what a client sent is dropped.
	p.Annotations = p.Annotations.Without([]string{whisk.AnnBinding})
	if p.IsBinding() {
		b, _ := json.Marshal(p.Binding)
		p.Annotations = append(p.Annotations, whisk.KeyValue{Key: whisk.AnnBinding, Value: b})
	}
	e, err := p.Entity()
	if err != nil {
		return err
	}
	stored, err := s.store.PutEntity(r.Context(), e, old.Rev)
	if err != nil {
		return err
	}
	out, err := whisk.PackageFromEntity(stored)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, packageView(out))
	return nil
}

// readBindingTarget checks the caller's right to read a binding's target
// (403 naming it), as OpenWhisk's entitlement does, with its rewrites: a
// target missing in the caller's namespace → 400, another kind of entity
// → 409.
func (s *server) readBindingTarget(r *http.Request, caller whisk.Identity, b whisk.Binding) (catalog.Resolved, error) {
	const op = "api.readBindingTarget"
	res, err := s.cat.ReadPackage(r.Context(), caller.Namespace, b.Namespace, b.Name)
	switch {
	case whisk.IsKind(err, whisk.NotFound):
		return res, whisk.E(op, whisk.Invalid, whisk.MsgBindingMissing, err)
	case whisk.IsKind(err, whisk.Conflict):
		return res, whisk.E(op, whisk.Conflict, whisk.MsgWrongCollectionBinding, err)
	}
	return res, err
}

// paramsSize is OpenWhisk's size of parameters: each key's length plus
// its value's compact JSON length.
func paramsSize(p whisk.Params) int {
	n := 0
	for _, kv := range p {
		var b bytes.Buffer
		if json.Compact(&b, kv.Value) == nil {
			n += len(kv.Key) + b.Len()
		} else {
			n += len(kv.Key) + len(kv.Value)
		}
	}
	return n
}

// deletePackage is DELETE .../packages/{name}?force=B: a binding always
// goes; a package holding actions only with force=true, which deletes
// them first (409 otherwise). Answers with the package as it was.
func (s *server) deletePackage(w http.ResponseWriter, r *http.Request, caller whisk.Identity) error {
	const op = "api.deletePackage"
	name, err := packageName(r)
	if err != nil {
		return err
	}
	force, err := queryBool(r.URL.Query(), "force", false)
	if err != nil {
		return err
	}
	p, err := s.cat.Package(r.Context(), caller.Namespace, name)
	if err != nil {
		return err
	}
	if !p.IsBinding() {
		n, err := s.store.CountPackageActions(r.Context(), p.Namespace, p.Name)
		if err != nil {
			return err
		}
		if n > 0 && !force {
			return whisk.E(op, whisk.Conflict, whisk.MsgPackageNotEmpty(n), nil)
		}
		if n > 0 {
			as, err := s.store.ListPackageActions(r.Context(), p.Namespace, p.Name, 0, 0)
			if err != nil {
				return err
			}
			for _, a := range as {
				if _, err := s.store.DeleteAction(r.Context(), a.Namespace, a.Name); err != nil && !whisk.IsKind(err, whisk.NotFound) {
					return err
				}
				if err := s.topics.DeleteTopic(r.Context(), whisk.ActionTopic(a.FQN())); err != nil {
					s.log.Warn("delete action topic", "tid", transactionID(r), "action", a.FQN().String(), "err", err)
				}
			}
		}
	}
	gone, err := s.store.DeleteEntity(r.Context(), whisk.EntityPackage, p.Namespace, p.Name, p.Rev)
	if err != nil {
		return err
	}
	out, err := whisk.PackageFromEntity(gone)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, packageView(out))
	return nil
}
