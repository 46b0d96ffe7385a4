package whisk

import "strings"

// Names as sequences and conductor actions give them (EntityName is in
// package.go).

// Path renders "ns/name" or "ns/pkg/name": an action's path annotation,
// and the resource a 403 or a conductor's error names.
func (n EntityName) Path() string { return strings.TrimPrefix(n.String(), "/") }

// Resolve replaces the namespace "_" by ns.
func (n EntityName) Resolve(ns string) EntityName {
	if n.Namespace == DefaultNamespace {
		n.Namespace = ns
	}
	return n
}

// ResolveName is OpenWhisk's FullyQualifiedEntityName.resolveName, how a
// conductor action's "action" is read: "/ns/a" and "/ns/pkg/a" are fully
// qualified, "a" and "pkg/a" are in namespace ns, and so is "x/y/z"
// without a leading slash; "_" becomes ns. ok is false for anything else
// ("/a", more than three segments, bad names).
func ResolveName(s, ns string) (EntityName, bool) {
	slash := strings.HasPrefix(s, "/")
	segs := strings.Split(strings.TrimPrefix(s, "/"), "/")
	for _, seg := range segs {
		if !ValidName(seg) {
			return EntityName{}, false
		}
	}
	if len(segs) > 3 || slash && len(segs) == 1 {
		return EntityName{}, false
	}
	if !slash && len(segs) < 3 {
		segs = append([]string{ns}, segs...)
	}
	n := EntityName{Namespace: segs[0], Name: segs[len(segs)-1]}
	if len(segs) == 3 {
		n.Package = segs[1]
	}
	return n.Resolve(ns), true
}
