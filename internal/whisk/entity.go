package whisk

import "encoding/json"

// EntityKind names a collection of entities other than actions.
type EntityKind string

// The entity kinds the store keeps beside actions.
const (
	// EntityPackage is a package or a package binding.
	EntityPackage EntityKind = "package"
	// EntityTrigger is a trigger (with its rules' status).
	EntityTrigger EntityKind = "trigger"
	// EntityRule is a rule connecting a trigger to an action.
	EntityRule EntityKind = "rule"
	// EntityAPI is an API gateway document, one per namespace and base
	// path; its names (base paths) live in a name space of their own.
	EntityAPI EntityKind = "api"
	// EntityAlarm is the alarms provider's state for one alarm trigger;
	// its names live in a name space of their own.
	EntityAlarm EntityKind = "alarm"
)

// SharesNames reports whether entities of kind k share one name space per
// namespace with each other and with the namespace's default-package
// actions, as OpenWhisk's document ids ("ns/name") make them: a package,
// a trigger, a rule and an action of one namespace never have the same name.
func (k EntityKind) SharesNames() bool {
	return k == EntityPackage || k == EntityTrigger || k == EntityRule
}

// Valid reports whether k is one of the kinds above.
func (k EntityKind) Valid() bool {
	switch k {
	case EntityPackage, EntityTrigger, EntityRule, EntityAPI, EntityAlarm:
		return true
	}
	return false
}

// Entity is a stored entity other than an action: a JSON document (the
// domain type, marshalled by the package that owns the kind) under
// (Kind, Namespace, Name). The store reads only the fields beside Doc.
type Entity struct {
	Kind      EntityKind
	Namespace string // never contains '/'
	Name      string // any string (API base paths contain '/')
	// Publish marks an entity other namespaces may list (a shared package).
	Publish bool
	Doc     json.RawMessage
	Rev     int64 // bumped on every write, set by the store
	Updated int64 // epoch ms, set by the store
}
