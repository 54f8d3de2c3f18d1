package treesum

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOf(t *testing.T) {
	write := func(dir, name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree := func(files map[string]string) string {
		dir := t.TempDir()
		for name, data := range files {
			write(dir, name, data)
		}
		return dir
	}
	base := map[string]string{"a": "one", "d/b": "two", "d/e/c": ""}
	want, err := Of(tree(base))
	if err != nil {
		t.Fatal(err)
	}
	if want.Files != 3 || want.Bytes != 6 || len(want.Hex) != 64 {
		t.Fatalf("Of = %+v, want 3 files of 6 bytes", want)
	}
	if got := want.String(); got != "tree-sum "+want.Hex+" files 3 bytes 6" {
		t.Errorf("String() = %q", got)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		same  bool
	}{
		{"same files elsewhere", base, true},
		{"a byte changed", map[string]string{"a": "onE", "d/b": "two", "d/e/c": ""}, false},
		{"a file renamed", map[string]string{"a": "one", "d/B": "two", "d/e/c": ""}, false},
		{"a file moved", map[string]string{"a": "one", "b": "two", "d/e/c": ""}, false},
		{"an empty file less", map[string]string{"a": "one", "d/b": "two"}, false},
		{"content moved between files", map[string]string{"a": "onet", "d/b": "wo", "d/e/c": ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Of(tree(tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tc.same {
				t.Errorf("Of = %+v, base %+v: same %v, want %v", got, want, got == want, tc.same)
			}
		})
	}
	if _, err := Of(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Of of a missing directory: no error")
	}
}
