package whisk

import (
	"fmt"
	"strings"
)

// DefaultPackage is the name web URLs give a namespace's implicit package
// (its unpackaged actions); no package may be created under it.
const DefaultPackage = "default"

// AnnFeed marks an action of a package as a feed (any value).
const AnnFeed = "feed"

// Binding names the package a binding points at. The zero Binding (JSON
// {}) means "not a binding".
type Binding struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// IsZero reports whether b names nothing (the package is not a binding).
func (b Binding) IsZero() bool { return b.Namespace == "" && b.Name == "" }

// String renders "ns/name".
func (b Binding) String() string { return b.Namespace + "/" + b.Name }

// Package is a package or, when Binding is set, a package binding, in
// OpenWhisk's JSON shape. Its actions are stored as actions of Namespace
// named "<package>/<action>" (see PackagedName).
type Package struct {
	Namespace   string  `json:"namespace"`
	Name        string  `json:"name"`
	Binding     Binding `json:"binding"`
	Parameters  Params  `json:"parameters"`
	Version     string  `json:"version"`
	Publish     bool    `json:"publish"`
	Annotations Params  `json:"annotations"`
	Updated     int64   `json:"updated"` // epoch ms
	Rev         int64   `json:"-"`
}

// IsBinding reports whether p is a binding.
func (p *Package) IsBinding() bool { return !p.Binding.IsZero() }

// FullName renders "ns/name".
func (p *Package) FullName() string { return p.Namespace + "/" + p.Name }

// PackageAction is an action as a package's GET lists it.
type PackageAction struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Annotations Params `json:"annotations"`
}

// PackageWithActions is GET .../packages/{p}: the package (for a binding:
// the binding with its target's parameters under its own) and its (the
// target's) actions and feeds.
type PackageWithActions struct {
	Package
	Actions []PackageAction `json:"actions"`
	Feeds   []PackageAction `json:"feeds"`
}

// PackagedName is the stored name of action a of package pkg: "pkg/a"
// ("a" when pkg is empty, the default package). A packaged action is stored
// under its package's namespace; OpenWhisk shows it as namespace "ns/pkg",
// name "a" (Action.View).
func PackagedName(pkg, a string) string {
	if pkg == "" {
		return a
	}
	return pkg + "/" + a
}

// SplitPackaged splits a stored action name into its package ("" for the
// default package) and its bare name.
func SplitPackaged(name string) (pkg, bare string) {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// EntityPath is what OpenWhisk shows as an action's namespace: "ns" for
// the default package, "ns/pkg" for a packaged action.
func (a *Action) EntityPath() string {
	if pkg, _ := SplitPackaged(a.Name); pkg != "" {
		return a.Namespace + "/" + pkg
	}
	return a.Namespace
}

// BareName is the action's name without its package.
func (a *Action) BareName() string {
	_, bare := SplitPackaged(a.Name)
	return bare
}

// ResolvedAction is an action found through its package or binding: the
// action as stored, with Parameters merged package < binding < action, and
// Binding "ns/binding" when it was reached through a binding ("" otherwise).
// Its path, "ownerNs/pkg/a", is Action.FQN().String().
type ResolvedAction struct {
	Action  Action
	Binding string
}

// Entity names: ParseEntityName reads "/ns/a", "/ns/pkg/a", "ns/a" (a
// leading slash optional when there are at least two segments, as
// OpenWhisk's fully qualified names), "pkg/a" or "a" relative to def.

// EntityName is a parsed action reference: Namespace ("_" allowed, for
// the caller's), Package ("" for the default package) and Name.
type EntityName struct {
	Namespace string
	Package   string
	Name      string
}

// String renders "/ns/pkg/name" or "/ns/name".
func (n EntityName) String() string {
	if n.Package == "" {
		return "/" + n.Namespace + "/" + n.Name
	}
	return "/" + n.Namespace + "/" + n.Package + "/" + n.Name
}

// StoredName is the name the action has in the store (PackagedName).
func (n EntityName) StoredName() string { return PackagedName(n.Package, n.Name) }

// ParseFullName parses a fully qualified action name, "/ns/a" or
// "/ns/pkg/a" (the leading '/' optional), as sequence components, rule
// actions and conductor steps give them.
func ParseFullName(s string) (EntityName, error) {
	parts := strings.Split(strings.TrimPrefix(s, "/"), "/")
	var n EntityName
	switch len(parts) {
	case 2:
		n = EntityName{Namespace: parts[0], Name: parts[1]}
	case 3:
		n = EntityName{Namespace: parts[0], Package: parts[1], Name: parts[2]}
	default:
		return n, Errorf(Invalid, MsgMalformed+"requirement failed: "+MsgFQNTooShort)
	}
	for _, p := range parts {
		if !ValidName(p) {
			return n, Errorf(Invalid, MsgBadEntityName)
		}
	}
	return n, nil
}

// Messages of packages and entitlement (OpenWhisk's wording).
const (
	MsgFQNTooShort            = "The fully qualified name of the entity must contain at least the namespace and the name of the entity."
	MsgWrongCollectionBinding = "Cannot bind to a resource that is not a package."
	MsgBindingMissing         = "Binding references a package that does not exist."
	MsgBindingToBinding       = "Cannot bind to another package binding."
	MsgPackageCannotBeBinding = "Resource is a package and cannot be converted into a binding."
	MsgNotAllowedOnBinding    = "Operation not permitted on package binding."
)

// MsgNotAuthorized is OpenWhisk's 403 naming the resource refused:
// "ns" for a collection, "ns/entity" for an entity or a package.
func MsgNotAuthorized(resource string) string {
	return fmt.Sprintf("The supplied authentication is not authorized to access '%s'.", resource)
}

// MsgPackageReserved is the 400 for a package named "default".
func MsgPackageReserved(name string) string {
	return fmt.Sprintf("Package name '%s' is reserved.", name)
}

// MsgBindingCircular is the 422 for a binding that names itself.
func MsgBindingCircular(name string) string {
	return fmt.Sprintf("Package binding '%s' contains a circular reference.", name)
}

// MsgPackageNotEmpty is the 409 of deleting a package that holds actions.
func MsgPackageNotEmpty(n int) string {
	what := "entities"
	if n == 1 {
		what = "entity"
	}
	return fmt.Sprintf("Package not empty (contains %d %s). Set force param or delete package contents.", n, what)
}

// MsgFieldTooLarge is the 413 of parameters or annotations over their limit.
func MsgFieldTooLarge(field string, size, limit int) string {
	return fmt.Sprintf("%s larger than allowed: %d > %d bytes.", field, size, limit)
}
