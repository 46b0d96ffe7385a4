package whisk

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
)

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

// NamespaceLimits are per-namespace limits, set by the operator (eddy
// admin limits set) and stored with the namespace; zero means "the system
// default" (SystemLimits). The JSON names are wskadmin's.
type NamespaceLimits struct {
	InvocationsPerMinute int `json:"invocationsPerMinute,omitempty"`
	ConcurrentContainers int `json:"concurrentInvocations,omitempty"`
	FiresPerMinute       int `json:"firesPerMinute,omitempty"` // trigger fires
}

// Effective returns l with each unset (zero) limit replaced by the
// system's default.
func (l NamespaceLimits) Effective(s SystemLimits) NamespaceLimits {
	if l.InvocationsPerMinute == 0 {
		l.InvocationsPerMinute = s.InvocationsPerMinute
	}
	if l.ConcurrentContainers == 0 {
		l.ConcurrentContainers = s.ConcurrentContainers
	}
	if l.FiresPerMinute == 0 {
		l.FiresPerMinute = s.FiresPerMinute
	}
	return l
}

// GuestUUID and GuestKey are OpenWhisk's well-known development credentials
// of the "guest" namespace, used by standalone.
const (
	GuestNamespace = "guest"
	GuestUUID      = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
	GuestKey       = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)

// authKeyLen is the length of a generated key (OpenWhisk's 64 characters).
const authKeyLen = 64

var uuidRE = regexp.MustCompile(`\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\z`)

// keyRE is what a key may hold: OpenWhisk's generated keys are alphanumeric.
var keyRE = regexp.MustCompile(`\A[0-9A-Za-z]+\z`)

// NewAuthKey returns a fresh random UUID (version 4) and 64-character
// alphanumeric key.
func NewAuthKey() (uuid, key string) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the runtime guarantees Read never fails
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	uuid = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	k := make([]byte, 0, authKeyLen)
	var buf [authKeyLen]byte
	for len(k) < authKeyLen {
		rand.Read(buf[:])
		for _, c := range buf {
			// 248 = 4×62: rejecting above it keeps every character equally likely.
			if c < 248 && len(k) < authKeyLen {
				k = append(k, alphabet[c%62])
			}
		}
	}
	return uuid, string(k)
}

// ParseAuthKey splits and validates "uuid:key" as wskadmin does: the UUID
// in the 8-4-4-4-12 hex form, the key at least 64 alphanumeric characters.
// The error has kind Invalid.
func ParseAuthKey(s string) (uuid, key string, err error) {
	uuid, key, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return "", "", Errorf(Invalid, "authorization key must be uuid:key")
	case !uuidRE.MatchString(uuid):
		return "", "", Errorf(Invalid, "authorization id must be a UUID")
	case len(key) < authKeyLen:
		return "", "", Errorf(Invalid, "authorization key must be at least %d characters long", authKeyLen)
	case !keyRE.MatchString(key):
		return "", "", Errorf(Invalid, "authorization key must be alphanumeric")
	}
	return uuid, key, nil
}
