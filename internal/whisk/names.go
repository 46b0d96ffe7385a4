package whisk

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// MaxNameLength is the longest entity name OpenWhisk accepts.
const MaxNameLength = 256

// DefaultNamespace is the "_" that means "the caller's own namespace".
const DefaultNamespace = "_"

// ValidName reports whether s is a legal entity or namespace name.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength || !isWordByte(s[0]) || s[len(s)-1] == ' ' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isWordByte(c) && c != '@' && c != ' ' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// isWordByte is the regexp class \w: an ASCII letter, digit or '_'.
func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// FQN names an action within its namespace: namespace/name (packages later:
// the name may then carry "pkg/").
type FQN struct {
	Namespace string
	Name      string
}

// String renders "ns/name".
func (f FQN) String() string { return f.Namespace + "/" + f.Name }

// Path renders "/ns/name", the form OpenWhisk puts in __OW_ACTION_NAME.
func (f FQN) Path() string { return "/" + f.Namespace + "/" + f.Name }

// ActivationID is a 32-character lowercase hex identifier.
type ActivationID string

// NewActivationID mints an activation id: 32 lowercase hex characters, as
// in OpenWhisk, of which the first 12 are the current Unix time in
// milliseconds (48 bits, as in a UUIDv7) and the other 20 are random (80
// bits, so ids stay unguessable and unique). Ids of a later millisecond
// sort later (within one millisecond the order is random), so records are appended at the end of the stores' id indexes instead of
// at a random place (each insert then touches the same few pages). Nothing
// may rely on an id's characters being uniformly random: hash an id
// before partitioning by it.
func NewActivationID() ActivationID {
	return newActivationID(time.Now())
}

// newActivationID mints an id for the time t.
func newActivationID(t time.Time) ActivationID {
	var tail [10]byte
	if _, err := rand.Read(tail[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the runtime guarantees Read never fails
	}
	return activationID(t, tail)
}

// activationID is the id of t in Unix milliseconds (6 bytes) followed by
// tail, hex-encoded.
func activationID(t time.Time, tail [10]byte) ActivationID {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	copy(b[6:], tail[:])
	var h [32]byte
	hex.Encode(h[:], b[:])
	return ActivationID(h[:])
}

// DerivedActivationID is the activation id of one occurrence of something
// that may be done more than once and must count once (an alarm's tick):
// like NewActivationID, the first 12 characters are t in Unix
// milliseconds; the other 20 are the start of key's SHA-256, so the same t
// and key always give the same id. key must name the occurrence uniquely.
func DerivedActivationID(t time.Time, key string) ActivationID {
	sum := sha256.Sum256([]byte(key))
	return activationID(t, [10]byte(sum[:10]))
}

// Child is the id of the activation that id's activation starts as part
// key of itself (a rule activation of a fired trigger): the same id and
// key always give the same child, with id's time prefix.
func (id ActivationID) Child(key string) ActivationID {
	s := string(id)
	if len(s) < 12 {
		s += "000000000000"[len(s):]
	}
	sum := sha256.Sum256([]byte(string(id) + "\x00" + key))
	var h [20]byte
	hex.Encode(h[:], sum[:10])
	return ActivationID(s[:12] + string(h[:]))
}

// ParseActivationID validates s as an activation id.
func ParseActivationID(s string) (ActivationID, error) {
	if len(s) != 32 {
		return "", Errorf(Invalid, MsgBadActivationID)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", Errorf(Invalid, MsgBadActivationID)
		}
	}
	return ActivationID(s), nil
}

// NewTransactionID mints an id for one API request, echoed as "code" in error bodies.
func NewTransactionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TopicSafe turns a name into characters a bus topic name may carry
// ([a-zA-Z0-9._-]); other bytes become '_' followed by their hex code, so
// distinct names stay distinct.
func TopicSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			b.WriteString(hex.EncodeToString([]byte{c}))
		}
	}
	return b.String()
}
