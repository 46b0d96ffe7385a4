package whisk

// Identity is an authenticated subject: the owner of an API key and the
// namespace the key acts in.
type Identity struct {
	Subject   string          `json:"subject"`
	Namespace string          `json:"namespace"`
	UUID      string          `json:"uuid"`
	Key       string          `json:"key"`
	Limits    NamespaceLimits `json:"limits"`
}

// AuthKey renders "uuid:key".
func (i Identity) AuthKey() string { return i.UUID + ":" + i.Key }

// NamespaceLimits are per-namespace limits; zero means "the system default".
type NamespaceLimits struct {
	InvocationsPerMinute int `json:"invocationsPerMinute,omitempty"`
	ConcurrentContainers int `json:"concurrentInvocations,omitempty"`
}

// GuestUUID and GuestKey are OpenWhisk's well-known development credentials
// of the "guest" namespace, used by standalone.
const (
	GuestNamespace = "guest"
	GuestUUID      = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
	GuestKey       = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)
