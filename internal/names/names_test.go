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

func TestHashed(t *testing.T) {
	a, b := Hashed("upload", "uid", "claim"), Hashed("upload", "uid", "claim")
	if a != b || len(a) != len("upload-")+16 || !strings.HasPrefix(a, "upload-") {
		t.Errorf("Hashed = %q, %q: want the same upload-<16 hex> twice", a, b)
	}
	// The parts are separated: moving a character between them gives another name.
	if Hashed("upload", "uidc", "laim") == a {
		t.Error("Hashed does not tell the parts apart")
	}
	// Names already in clusters must not change: this is the local driver's task name of
	// snapshot task ("abc", "pv-1") as it was made before Hashed existed.
	if got := Hashed("snapshot", "abc", "pv-1"); got != "snapshot-0834f1e8bd562851" {
		t.Errorf("Hashed changed: %q", got)
	}
}
