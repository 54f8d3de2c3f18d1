// Package names makes valid Kubernetes names and label values out of free text (cluster IDs,
// snapshot IDs), for the labels Stork puts on the objects it makes.
package names

import "strings"

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

func alnum(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' }
