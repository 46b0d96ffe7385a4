package whisk

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"regexp"
	"strings"
)

// Identity is an authenticated subject: the owner of an API key and the
// namespace the key acts in.
//
// Key is the plain key and is known only where it comes from outside: the
// caller's credentials of a request (set by authentication), or a key being
// created. Stores keep only KeyHash (HashKey of the key) and return Key
// empty: nothing reads a key back.
type Identity struct {
	Subject   string          `json:"subject"`
	Namespace string          `json:"namespace"`
	UUID      string          `json:"uuid"`
	Key       string          `json:"key,omitempty"`
	KeyHash   string          `json:"-"`
	Limits    NamespaceLimits `json:"limits"`
	// Blocked is set on every key of a subject an operator blocked
	// (eddy admin user block): its keys authenticate nothing, as
	// OpenWhisk's identities view leaves blocked subjects out.
	Blocked bool `json:"-"`
}

// AuthKey renders "uuid:key" (the key is empty for an identity read from a
// store).
func (i Identity) AuthKey() string { return i.UUID + ":" + i.Key }

// keyHashPrefix starts every HashKey result; a plain key (alphanumeric)
// never contains '$', so the two can't be mistaken for each other.
const keyHashPrefix = "sha256$"

// HashKey returns the stored form of a key: "sha256$SALT$HASH", SALT 16
// random bytes and HASH the SHA-256 of SALT followed by the key, both in
// hex. A fast hash is enough: keys are 64 random characters (~381 bits),
// far beyond what guessing can reach, so a slow KDF would add nothing.
func HashKey(key string) string {
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the runtime guarantees Read never fails
	}
	return keyHashPrefix + hex.EncodeToString(salt[:]) + "$" + hex.EncodeToString(saltedSum(salt[:], key))
}

// IsKeyHash reports whether s is a HashKey result (rather than a plain key).
func IsKeyHash(s string) bool { return strings.HasPrefix(s, keyHashPrefix) }

func saltedSum(salt []byte, key string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(key))
	return h.Sum(nil)
}

// KeyMatches reports whether key is the one hashed in stored (a HashKey
// result), comparing the digests in constant time. A malformed stored
// hash matches nothing.
func KeyMatches(stored, key string) bool {
	salt, sum, ok := strings.Cut(strings.TrimPrefix(stored, keyHashPrefix), "$")
	if !IsKeyHash(stored) || !ok {
		return false
	}
	s, err1 := hex.DecodeString(salt)
	want, err2 := hex.DecodeString(sum)
	if err1 != nil || err2 != nil || len(want) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(saltedSum(s, key), want) == 1
}

// Authenticate reports whether key is the identity's (KeyMatches on its
// stored hash) and, if so, keeps it in Key: the store holds only the hash,
// so the plain key of an identity comes from whoever presented it.
//
// A blocked identity authenticates no key.
func (i *Identity) Authenticate(key string) bool {
	if i.Blocked || !KeyMatches(i.KeyHash, key) {
		return false
	}
	i.Key = key
	return true
}

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
