package whisk

import (
	"encoding/json"
)

// Bus topics. Every topic name is built here.
//
//	action-<ns>-<name>   controller → leader queue: ActivationMessage
//	invoker-<iid>        scheduler → invoker: ContainerCreation
//	creation-<sid>       invoker → scheduler: CreationAck
//	completed-<cid>      invoker/scheduler → controller: Completion
func ActionTopic(f FQN) string {
	return "action-" + TopicSafe(f.Namespace) + "-" + TopicSafe(f.Name)
}

// IsActionTopic reports whether topic is an action's (ActionTopic).
func IsActionTopic(topic string) bool { return len(topic) > 7 && topic[:7] == "action-" }

// InvokerTopic is the topic an invoker reads creation requests from.
func InvokerTopic(invokerID string) string { return "invoker-" + TopicSafe(invokerID) }

// CreationAckTopic is the topic a scheduler reads creation acknowledgements from.
func CreationAckTopic(schedulerID string) string { return "creation-" + TopicSafe(schedulerID) }

// CompletionTopic is the topic a controller reads completions from.
func CompletionTopic(controllerID string) string { return "completed-" + TopicSafe(controllerID) }

// ActivationMessage is one invocation on its way to a container.
type ActivationMessage struct {
	ActivationID  ActivationID      `json:"activationId"`
	TransactionID string            `json:"transid"`
	Action        ActionMeta        `json:"action"`
	Subject       string            `json:"subject"`
	APIKey        string            `json:"apiKey,omitempty"` // only when provide-api-key allows
	Params        json.RawMessage   `json:"params"`           // the merged parameters, a JSON object
	InitParams    map[string]string `json:"initParams,omitempty"`
	Blocking      bool              `json:"blocking"`
	ControllerID  string            `json:"controller"`
	Published     int64             `json:"published"` // epoch ms, when the controller published it
	// NamespaceLimit is the namespace's concurrent-container limit (the
	// identity's or the system default), for the queue's scaling decisions.
	NamespaceLimit int `json:"namespaceLimit,omitempty"`
	// CallerNamespace is the invoking subject's namespace when it is not
	// the action's (an action of another namespace's shared package): the
	// record goes there and __OW_NAMESPACE names it. Empty otherwise.
	CallerNamespace string `json:"callerNamespace,omitempty"`
	// Binding is "ns/binding" when the action was reached through a
	// package binding (the record's binding annotation).
	Binding string `json:"binding,omitempty"`
	// Cause is the id of the sequence or composition this activation is a
	// step of; the record carries it (Activation.SetCause).
	Cause ActivationID `json:"cause,omitempty"`
	// Repeat says the publisher may have published this activation id
	// before (an alarm tick fired again after its owner died mid-fire):
	// the queue then looks for its record whenever it consumes it, not
	// only when it was published before the queue got the topic.
	Repeat bool `json:"repeat,omitempty"`
	// ResultOnly says the blocking caller takes only the result
	// (?result=true): the invoker may publish the completion before it
	// has the activation's logs, which go to the record only (as
	// OpenWhisk's invoker sends the result before it collects logs).
	ResultOnly bool `json:"resultOnly,omitempty"`
	// TraceParent is the W3C trace context of the invocation (the API's
	// traceparent header, or the controller's span): the invoker's spans
	// continue the trace and the record carries its id (trace.go).
	TraceParent string `json:"traceparent,omitempty"`
}

// RecordNamespace is the namespace the activation belongs to: the
// invoking subject's (OpenWhisk's invocation namespace).
func (m *ActivationMessage) RecordNamespace() string {
	if m.CallerNamespace != "" {
		return m.CallerNamespace
	}
	return m.Action.Namespace
}

// ContainerCreation asks an invoker to create one container for an action.
type ContainerCreation struct {
	CreationID    string     `json:"creationId"`
	Action        ActionMeta `json:"action"`
	SchedulerID   string     `json:"schedulerId"`
	SchedulerAddr string     `json:"schedulerAddr"` // gRPC address of the queue's leader
	Retry         int        `json:"retry"`
	Requested     int64      `json:"requested"` // epoch ms
	// SwapNamespace, when set, is the action's namespace at its container
	// limit: the invoker first removes one of the namespace's idle warm
	// containers (least recently used), deregistered before the new one is
	// registered, so the namespace never holds more than its limit; with
	// none idle any more the creation fails (the scheduler counts it as
	// refused at the limit).
	SwapNamespace string `json:"swapNamespace,omitempty"`
	// Headroom, when > 0, is memory (MB) the invoker must still be able to
	// give a new namespace after this creation (free, idle stem cells and
	// idle warm containers): the action's namespace already uses
	// containers, and the rest is kept for namespaces that use none. The
	// invoker answers MsgHeadroom when the creation would take it.
	Headroom int64 `json:"headroom,omitempty"`
}

// MsgHeadroom is an invoker's answer to a creation that would take the
// headroom kept for other namespaces (ContainerCreation.Headroom): a
// refusal at a limit, not a failure.
const MsgHeadroom = "only the headroom kept for other namespaces is free"

// CreationAck answers a ContainerCreation. Error is empty on success.
// Developer is true when the failure is the action's fault (bad image, bad
// code), which fails queued activations instead of retrying.
type CreationAck struct {
	CreationID  string     `json:"creationId"`
	Action      ActionMeta `json:"action"`
	InvokerID   string     `json:"invokerId"`
	ContainerID string     `json:"containerId,omitempty"`
	Error       string     `json:"error,omitempty"`
	Developer   bool       `json:"developer,omitempty"`
	Retryable   bool       `json:"retryable,omitempty"`
}

// Completion tells a controller an activation finished; it carries the full
// record, which the sender has also written (or is writing) to the store.
type Completion struct {
	Activation Activation `json:"activation"`
	InvokerID  string     `json:"invokerId,omitempty"`
}
