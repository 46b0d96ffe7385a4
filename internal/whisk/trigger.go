package whisk

import (
	"fmt"
	"strings"
)

// Rule statuses. A rule's status lives in its trigger's Rules map, as in
// OpenWhisk; a rule whose trigger or entry is missing is inactive.
const (
	RuleActive   = "active"
	RuleInactive = "inactive"
)

// EntityPath is OpenWhisk's {path, name} reference to an entity: path is
// the namespace, or "namespace/package" for a packaged action.
type EntityPath struct {
	Path string `json:"path"`
	Name string `json:"name"`
}

// String renders "path/name" (OpenWhisk's asString).
func (p EntityPath) String() string { return p.Path + "/" + p.Name }

// Namespace is the first segment of the path.
func (p EntityPath) Namespace() string {
	ns, _, _ := strings.Cut(p.Path, "/")
	return ns
}

// Package is the package segment of the path, "" for a top-level entity.
func (p EntityPath) Package() string {
	_, pkg, _ := strings.Cut(p.Path, "/")
	return pkg
}

// ParseEntityPath parses a reference as OpenWhisk's FullyQualifiedEntityName
// reads it from a string: "/ns/name", "ns/name", "/ns/pkg/name" (a leading
// slash is optional), with "_" replaced by defaultNS. One segment, more than
// three, or an illegal name is an Invalid error.
func ParseEntityPath(s, defaultNS string) (EntityPath, error) {
	parts := strings.Split(strings.TrimPrefix(s, "/"), "/")
	for _, p := range parts {
		if !ValidName(p) {
			return EntityPath{}, Errorf(Invalid, "%s", MsgMalformed+"requirement failed: path contains invalid parts "+s)
		}
	}
	if len(parts) < 2 {
		return EntityPath{}, Errorf(Invalid, "%s", MsgMalformed+"requirement failed: "+MsgFQNMalformed)
	}
	if len(parts) > 3 {
		return EntityPath{}, Errorf(Invalid, "%s", MsgMalformed+"fully qualified name malformed")
	}
	if parts[0] == DefaultNamespace {
		parts[0] = defaultNS
	}
	n := len(parts)
	return EntityPath{Path: strings.Join(parts[:n-1], "/"), Name: parts[n-1]}, nil
}

// TriggerRule is one entry of a trigger's Rules map (OpenWhisk's
// ReducedRule): the rule's action and whether the rule is active.
type TriggerRule struct {
	Action EntityPath `json:"action"`
	Status string     `json:"status"`
}

// Trigger is a trigger in OpenWhisk's JSON shape. Rules is keyed by
// "ns/rule" and absent until a rule was attached. Rev is the store's
// revision (never in JSON).
type Trigger struct {
	Namespace   string                 `json:"namespace"`
	Name        string                 `json:"name"`
	Version     string                 `json:"version"`
	Parameters  Params                 `json:"parameters"`
	Limits      struct{}               `json:"limits"`
	Publish     bool                   `json:"publish"`
	Annotations Params                 `json:"annotations"`
	Updated     int64                  `json:"updated"`
	Rules       map[string]TriggerRule `json:"rules,omitempty"`
	Rev         int64                  `json:"-"`
}

// Rule is a rule in OpenWhisk's JSON shape. Status is set only in views
// that carry it (get, create, update, delete); it is never stored.
type Rule struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Status      string     `json:"status,omitempty"`
	Trigger     EntityPath `json:"trigger"`
	Action      EntityPath `json:"action"`
	Version     string     `json:"version"`
	Publish     bool       `json:"publish"`
	Annotations Params     `json:"annotations"`
	Updated     int64      `json:"updated"`
	Rev         int64      `json:"-"`
}

// Key is the rule's key in its trigger's Rules map: "ns/rule".
func (r Rule) Key() string { return r.Namespace + "/" + r.Name }

// Trigger and rule messages (OpenWhisk's wording).
const (
	MsgFQNMalformed        = "The fully qualified name of the entity must contain at least the namespace and the name of the entity."
	MsgFeedNotValid        = "Feed name is not valid"
	MsgRuleNeedsBoth       = "rule requires a valid trigger and a valid action"
	MsgRuleTriggerMissing  = "Only rules with existing triggers can be activated"
	MsgTriggerFireInternal = "There was an internal server error."
)

// MsgTriggerMissing and MsgActionMissing are the 400s of a rule whose
// trigger or action does not exist.
func MsgTriggerMissing(p EntityPath) string {
	return fmt.Sprintf("trigger /%s does not exist", p)
}

// MsgActionMissing is the 400 of a rule whose action does not exist.
func MsgActionMissing(p EntityPath) string {
	return fmt.Sprintf("action /%s does not exist", p)
}

// MsgRuleInactive is the trigger record's log error of an inactive rule.
func MsgRuleInactive(rule, action string) string {
	return fmt.Sprintf("Rule '%s' is inactive, action '%s' was not activated.", rule, action)
}

// MsgBadRuleStatus is the 400 of a status POST with an unknown state.
func MsgBadRuleStatus(s string) string {
	return fmt.Sprintf("'%s' is not a recognized rule state, must be one of ['active', 'inactive']", s)
}

// MsgRequestTooLarge is OpenWhisk's 413 of a request (a trigger fire) over
// the payload limit.
func MsgRequestTooLarge(size, limit int64) string {
	return fmt.Sprintf("Request larger than allowed: %d > %d bytes.", size, limit)
}
