package names

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestLabelValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"site-a", "site-a"},
		{"Site A (Paris)", "SiteAParis"},
		{"-x-", "x"},
		{strings.Repeat("ab", 40), strings.Repeat("ab", 31) + "a"},
		{"pvc-0123-" + strings.Repeat("9", 60) + "-", "pvc-0123-" + strings.Repeat("9", 54)},
		{"___", ""},
	} {
		got := LabelValue(tc.in)
		if got != tc.want {
			t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q, not a label value: %v", tc.in, got, errs)
		}
	}
}
