package postgres

import "bytes"

// sanitizeJSON returns b, valid JSON, with the escapes that PostgreSQL's
// JSONB rejects replaced by \ufffd (U+FFFD, the replacement character):
// \u0000, which its text type cannot hold, and UTF-16 surrogate escapes that
// are not part of a high-low pair. encoding/json writes neither for Go
// strings (it writes NUL as \u0000, though), but json.RawMessage values
// (action results, parameters) pass through as the action wrote them.
//
// b is returned unchanged, without copying, when there is nothing to
// replace.
func sanitizeJSON(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u`)) {
		return b
	}
	var out []byte // nil until the first replacement
	last := 0      // b[last:i] not yet copied to out
	replace := func(from, to int) {
		if out == nil {
			out = make([]byte, 0, len(b)+16)
		}
		out = append(out, b[last:from]...)
		out = append(out, `\ufffd`...)
		last = to
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			i++
			continue
		}
		switch {
		case r == 0:
			replace(i, i+6)
		case r >= 0xD800 && r <= 0xDBFF: // high surrogate: needs a low one next
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11 // keep the pair
					continue
				}
			}
			replace(i, i+6)
		case r >= 0xDC00 && r <= 0xDFFF: // low surrogate on its own
			replace(i, i+6)
		}
		i += 5
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
