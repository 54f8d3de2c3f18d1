package names

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// LabelValue makes s a valid label value: characters other than letters, digits, '-', '_' and
// '.' are dropped, it is cut to 63 characters, and it starts and ends with a letter or digit.
func LabelValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() == 63 {
			break
		}
		if alnum(r) || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		}
	}
	return strings.TrimFunc(b.String(), func(r rune) bool { return !alnum(r) })
}

// Hashed makes a name for an object from the parts that identify it: prefix, a dash and 16 hex
// digits of a hash of the parts. Stable across retries (the same parts give the same name),
// short, and valid whatever the parts are.
func Hashed(prefix string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + "-" + hex.EncodeToString(h[:])[:16]
}

func alnum(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' }
