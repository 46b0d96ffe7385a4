package whisk

import "strings"

// QualifiedName is an entity's fully qualified name: namespace, package
// ("" for the default package) and name, as sequences and conductor
// actions name their components.
type QualifiedName struct {
	Namespace string
	Package   string
	Name      string
}

// String renders "/ns/name" or "/ns/pkg/name" (OpenWhisk's
// qualifiedNameWithLeadingSlash: how sequences store their components).
func (q QualifiedName) String() string { return "/" + q.Path() }

// Path renders "ns/name" or "ns/pkg/name" (the activation's path annotation).
func (q QualifiedName) Path() string {
	if q.Package == "" {
		return q.Namespace + "/" + q.Name
	}
	return q.Namespace + "/" + q.Package + "/" + q.Name
}

// Resolve replaces the namespace "_" by ns.
func (q QualifiedName) Resolve(ns string) QualifiedName {
	if q.Namespace == DefaultNamespace {
		q.Namespace = ns
	}
	return q
}

// entityPath splits an OpenWhisk EntityPath ("/a/b/c" or "a/b/c") into
// its segments, each a valid name; ok is false otherwise.
func entityPath(s string) (segs []string, leadingSlash, ok bool) {
	leadingSlash = strings.HasPrefix(s, "/")
	segs = strings.Split(strings.TrimPrefix(s, "/"), "/")
	for _, seg := range segs {
		if !ValidName(seg) {
			return nil, leadingSlash, false
		}
	}
	return segs, leadingSlash, true
}

// ParseComponent parses a sequence component: at least a namespace and a
// name ("/ns/a", "/ns/pkg/a"; the leading slash is optional, "_" is kept
// for the caller to Resolve). A bad one is an Invalid error with
// OpenWhisk's message.
func ParseComponent(s string) (QualifiedName, error) {
	segs, _, ok := entityPath(s)
	switch {
	case ok && len(segs) == 2:
		return QualifiedName{Namespace: segs[0], Name: segs[1]}, nil
	case ok && len(segs) == 3:
		return QualifiedName{Namespace: segs[0], Package: segs[1], Name: segs[2]}, nil
	case ok && len(segs) < 2:
		return QualifiedName{}, E("whisk.ParseComponent", Invalid, MsgMalformed+MsgComponentNotQualified, nil)
	}
	return QualifiedName{}, E("whisk.ParseComponent", Invalid, MsgMalformed+MsgBadEntityName, nil)
}

// ResolveName is OpenWhisk's FullyQualifiedEntityName.resolveName, how a
// conductor action's "action" is read: "/ns/a" and "/ns/pkg/a" are fully
// qualified, "a" and "pkg/a" are in namespace ns; "_" becomes ns. ok is
// false for anything else ("/a", more than three segments, bad names).
func ResolveName(s, ns string) (QualifiedName, bool) {
	segs, slash, ok := entityPath(s)
	if !ok || len(segs) > 3 || slash && len(segs) == 1 {
		return QualifiedName{}, false
	}
	if !slash && len(segs) < 3 {
		segs = append([]string{ns}, segs...)
	}
	q := QualifiedName{Namespace: segs[0], Name: segs[len(segs)-1]}
	if len(segs) == 3 {
		q.Package = segs[1]
	}
	return q.Resolve(ns), true
}
