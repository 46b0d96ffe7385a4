// Package catalog resolves names through packages and bindings, with
// OpenWhisk's visibility rules across namespaces, and merges parameters
// package < binding < action (docs/packages.md,
// §1.5; OpenWhisk's PackageCollection and ActionCollection entitlement).
//
// A caller owns its namespace and everything in it. Another namespace's
// package is readable (get it, bind to it, list and invoke its actions)
// only when it is published and is not a binding; its bindings, private
// packages, missing packages and default-package actions are refused with
// 403, never 404, so that nothing leaks about another tenant. For the
// owner, a missing package or action is a 404 and a name held by another
// kind of entity a 409.
//
// Packages are stored entities (whisk.EntityPackage); an action of package
// p in namespace ns is stored as action "p/a" of ns (whisk.PackagedName).
// The catalog only reads: it is the one place these rules live, for the
// REST API, sequences, conductors, rules and web actions alike.
package catalog

import (
	"context"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// Store is what the catalog reads (store.Store and store/cached have it).
type Store interface {
	GetAction(ctx context.Context, namespace, name string) (whisk.Action, error)
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
}

// Catalog resolves names against a Store. It holds no state of its own.
type Catalog struct {
	st Store
}

// New returns a catalog over st.
func New(st Store) *Catalog {
	if st == nil {
		panic("catalog.New: nil store")
	}
	return &Catalog{st: st}
}

// Namespace resolves "_" (whisk.DefaultNamespace) to the caller's namespace.
func Namespace(caller, ns string) string {
	if ns == "" || ns == whisk.DefaultNamespace {
		return caller
	}
	return ns
}

// Package reads a package or binding of namespace ns as stored, without
// any entitlement check (the caller owns ns or checked it). NotFound when
// absent; Conflict(whisk.MsgWrongCollection) when another kind holds the name.
func (c *Catalog) Package(ctx context.Context, ns, name string) (whisk.Package, error) {
	e, err := c.st.GetEntity(ctx, whisk.EntityPackage, ns, name)
	if err != nil {
		return whisk.Package{}, err
	}
	return whisk.PackageFromEntity(e)
}

// Resolved is a package the caller may read, and what it resolves to.
type Resolved struct {
	// Package is the package asked for (a package or a binding).
	Package whisk.Package
	// Target is the package whose actions it has: Package itself, or the
	// package a binding points at.
	Target whisk.Package
}

// Params returns the package's parameters as an invocation sees them:
// the target's, overlaid by the binding's.
func (r Resolved) Params() whisk.Params {
	if !r.Package.IsBinding() {
		return r.Package.Parameters
	}
	return r.Target.Parameters.Merge(r.Package.Parameters)
}

// BindingName is "ns/binding" when Package is a binding, "" otherwise.
func (r Resolved) BindingName() string {
	if !r.Package.IsBinding() {
		return ""
	}
	return r.Package.FullName()
}

// ReadPackage resolves package ns/name for a caller of namespace caller
// ("_" allowed for ns), checking that the caller may read it: the owner
// reads its packages and its bindings whose target it may read; others
// read published packages only. Refusals are 403 naming 'ns/name'; an
// owner's missing package (or a missing target in its own namespace) is
// 404 and a name held by another kind is 409, as in OpenWhisk.
func (c *Catalog) ReadPackage(ctx context.Context, caller, ns, name string) (Resolved, error) {
	const op = "catalog.ReadPackage"
	ns = Namespace(caller, ns)
	refused := whisk.E(op, whisk.Forbidden, whisk.MsgNotAuthorized(ns+"/"+name), nil)
	p, err := c.readable(ctx, ns, name, ns == caller)
	if err != nil {
		if err == errRefused {
			return Resolved{}, refused
		}
		return Resolved{}, err
	}
	if !p.IsBinding() {
		return Resolved{Package: p, Target: p}, nil
	}
	if p.Binding.Namespace == ns && p.Binding.Name == name {
		return Resolved{}, whisk.E(op, whisk.Conflict, whisk.MsgBindingCircular(p.Binding.String()), nil)
	}
	t, err := c.readable(ctx, p.Binding.Namespace, p.Binding.Name, p.Binding.Namespace == caller)
	switch {
	case err == errRefused:
		return Resolved{}, refused
	case err != nil:
		return Resolved{}, err
	case t.IsBinding():
		// Bindings are never made to bindings (PUT refuses it); one that
		// points at one names no actions.
		return Resolved{}, whisk.E(op, whisk.Invalid, whisk.MsgBindingToBinding, nil)
	}
	return Resolved{Package: p, Target: t}, nil
}

// errRefused is readable's "not entitled": the caller turns it into a 403
// naming the resource it was asked for.
var errRefused = whisk.E("catalog", whisk.Forbidden, "", nil)

// readable reads a package and applies the read rule of one level: the
// owner reads anything it has (missing → NotFound, another kind →
// Conflict); others read published non-bindings, and anything else,
// missing included, is errRefused. Bindings are the caller's to follow.
func (c *Catalog) readable(ctx context.Context, ns, name string, owner bool) (whisk.Package, error) {
	if !whisk.ValidName(ns) || !whisk.ValidName(name) {
		if owner {
			return whisk.Package{}, whisk.E("catalog.readable", whisk.NotFound, whisk.MsgNotFound, nil)
		}
		return whisk.Package{}, errRefused
	}
	p, err := c.Package(ctx, ns, name)
	if owner {
		return p, err
	}
	switch {
	case whisk.IsKind(err, whisk.NotFound), whisk.IsKind(err, whisk.Conflict):
		return whisk.Package{}, errRefused
	case err != nil:
		return whisk.Package{}, err
	case p.IsBinding() || !p.Publish:
		return whisk.Package{}, errRefused
	}
	return p, nil
}

// Action resolves an action reference for a caller of namespace caller:
// "_" is the caller's namespace; a default-package action must be the
// caller's own (else 403 'ns/name'); a packaged one needs a package the
// caller may read (ReadPackage), and a binding leads to its target's
// action. The result has Parameters merged package < binding < action and
// Binding set when a binding was followed. A missing action is 404.
func (c *Catalog) Action(ctx context.Context, caller string, ref whisk.EntityName) (whisk.ResolvedAction, error) {
	const op = "catalog.Action"
	ns := Namespace(caller, ref.Namespace)
	if ref.Package == "" {
		if ns != caller {
			return whisk.ResolvedAction{}, whisk.E(op, whisk.Forbidden, whisk.MsgNotAuthorized(ns+"/"+ref.Name), nil)
		}
		a, err := c.st.GetAction(ctx, ns, ref.Name)
		if err != nil {
			return whisk.ResolvedAction{}, err
		}
		return whisk.ResolvedAction{Action: a}, nil
	}
	r, err := c.ReadPackage(ctx, caller, ns, ref.Package)
	if err != nil {
		return whisk.ResolvedAction{}, err
	}
	a, err := c.st.GetAction(ctx, r.Target.Namespace, whisk.PackagedName(r.Target.Name, ref.Name))
	if err != nil {
		return whisk.ResolvedAction{}, err
	}
	a.Parameters = r.Params().Merge(a.Parameters)
	return whisk.ResolvedAction{Action: a, Binding: r.BindingName()}, nil
}
