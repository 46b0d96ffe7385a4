package kafka

import (
	"crypto/sha256"
	"encoding/hex"
)

// maxTopicLen is Kafka's limit on a topic name's length.
const maxTopicLen = 249

// hashLen is the length of the hex hash suffix of a mapped topic name.
const hashLen = 16

// TopicName returns the Kafka topic that holds the bus topic name.
//
// A name of at most 249 characters from Kafka's alphabet ([a-zA-Z0-9._-]),
// other than "." and "..", is used as it is; whisk.TopicSafe output that is
// short enough always is. Any other name is mapped: characters outside the
// alphabet become '_', the result is cut to leave room for the suffix, and
// '.' plus the first 16 hex digits of the SHA-256 of the original name are
// appended, so distinct long names stay distinct (up to a 64-bit hash) and
// the mapping is the same in every process. A mapped name always ends in
// the hash suffix; a caller could forge a collision only by choosing such a
// name on purpose.
func TopicName(name string) string {
	if validTopic(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	prefixLen := min(len(name), maxTopicLen-1-hashLen)
	b := make([]byte, 0, prefixLen+1+hashLen)
	for i := range prefixLen {
		c := name[i]
		if !topicByte(c) {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, '.')
	b = hex.AppendEncode(b, sum[:hashLen/2])
	return string(b)
}

// GroupID returns the Kafka consumer group that reads bus topic topic for
// bus group group: one Kafka group per topic and bus group, so that
// subscribing to one action's topic never rebalances the consumers of
// another.
func GroupID(topic, group string) string {
	return group + "@" + TopicName(topic)
}

func validTopic(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > maxTopicLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !topicByte(name[i]) {
			return false
		}
	}
	return true
}

func topicByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		return true
	}
	return false
}
