package whisk

import (
	"encoding/json"
	"regexp"
	"sort"
	"time"
)

// KeyValue is one parameter or annotation, as OpenWhisk encodes them.
type KeyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// Params is an ordered list of key/value pairs.
type Params []KeyValue

// Get returns the value for key and whether it exists.
func (p Params) Get(key string) (json.RawMessage, bool) {
	for _, kv := range p {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Merge returns p with every entry of q added, q winning on equal keys; order
// is p's, then q's new keys.
func (p Params) Merge(q Params) Params {
	out := make(Params, 0, len(p)+len(q))
	idx := map[string]int{}
	for _, kv := range p {
		idx[kv.Key] = len(out)
		out = append(out, kv)
	}
	for _, kv := range q {
		if i, ok := idx[kv.Key]; ok {
			out[i] = kv
			continue
		}
		idx[kv.Key] = len(out)
		out = append(out, kv)
	}
	return out
}

// ObjectParams is a JSON object's members as Params, sorted by key.
func ObjectParams(m map[string]json.RawMessage) Params {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p := make(Params, 0, len(keys))
	for _, k := range keys {
		p = append(p, KeyValue{Key: k, Value: m[k]})
	}
	return p
}

// Without returns p without the given keys.
func (p Params) Without(keys []string) Params {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	out := Params{}
	for _, kv := range p {
		if !drop[kv.Key] {
			out = append(out, kv)
		}
	}
	return out
}

// IsTrue reports whether key holds JSON true.
func (p Params) IsTrue(key string) bool {
	v, ok := p.Get(key)
	return ok && string(v) == "true"
}

// String is key's value when it holds a JSON string ("" when absent or
// not a string).
func (p Params) String(key string) string {
	raw, ok := p.Get(key)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Exec is what an action runs.
type Exec struct {
	Kind       string   `json:"kind"`
	Code       string   `json:"code,omitempty"`
	Main       string   `json:"main,omitempty"`
	Binary     bool     `json:"binary"`
	Image      string   `json:"image,omitempty"`
	Components []string `json:"components,omitempty"`
}

// KindBlackbox is the kind of actions that bring their own image.
const KindBlackbox = "blackbox"

// KindSequence is the kind of a sequence: an action that runs its
// Components one after the other, in the controller (no container).
const KindSequence = "sequence"

// IsSequence reports whether the action is a sequence.
func (a *Action) IsSequence() bool { return a.Exec.Kind == KindSequence }

var base64RE = regexp.MustCompile(`^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?$`)

// LooksBinary is OpenWhisk's rule for exec.binary: code that is non-empty,
// a multiple of 4 long and valid base64.
func LooksBinary(code string) bool {
	return code != "" && len(code)%4 == 0 && base64RE.MatchString(code)
}

// Limits are an action's limits. Timeout is in ms, Memory in MB, Logs in MB.
type Limits struct {
	Timeout     int64 `json:"timeout"`
	Memory      int64 `json:"memory"`
	Logs        int64 `json:"logs"`
	Concurrency int   `json:"concurrency"`
	Instances   int   `json:"instances,omitempty"`
}

// Action is a deployed action. Rev is Eddy's revision counter, bumped on
// every write; it names the code a container runs.
type Action struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	Exec        Exec   `json:"exec"`
	Parameters  Params `json:"parameters"`
	Annotations Params `json:"annotations"`
	Limits      Limits `json:"limits"`
	Publish     bool   `json:"publish"`
	Updated     int64  `json:"updated"` // epoch ms
	Rev         int64  `json:"-"`
}

// FQN returns the action's fully qualified name.
func (a *Action) FQN() FQN { return FQN{Namespace: a.Namespace, Name: a.Name} }

// Timeout returns the action's time limit as a Duration.
func (l Limits) TimeoutDuration() time.Duration { return time.Duration(l.Timeout) * time.Millisecond }

// LogBytes is the log limit in bytes.
func (l Limits) LogBytes() int64 { return l.Logs * 1024 * 1024 }

// MemoryBytes is the memory limit in bytes.
func (l Limits) MemoryBytes() int64 { return l.Memory * 1024 * 1024 }

// ActionMeta is what a scheduler and an invoker need of an action to make
// and run containers for it: everything but the code, which the invoker
// loads from the store by revision.
type ActionMeta struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	Rev         int64  `json:"rev"`
	Kind        string `json:"kind"`
	Image       string `json:"image,omitempty"`
	Limits      Limits `json:"limits"`
	Annotations Params `json:"annotations,omitempty"`
}

// Meta returns the action's metadata.
func (a *Action) Meta() ActionMeta {
	return ActionMeta{
		Namespace: a.Namespace, Name: a.Name, Version: a.Version, Rev: a.Rev,
		Kind: a.Exec.Kind, Image: a.Exec.Image, Limits: a.Limits, Annotations: a.Annotations,
	}
}

// FQN returns the action's fully qualified name.
func (m *ActionMeta) FQN() FQN { return FQN{Namespace: m.Namespace, Name: m.Name} }
