package cli

import (
	"bytes"
	"maps"
	"strings"
	"testing"
)

func TestParseMap(t *testing.T) {
	for _, c := range []struct {
		name  string
		pairs []string
		want  map[string]string
		err   string
	}{
		{"none", nil, nil, ""},
		{"pairs", []string{"a=b", "c=d=e"}, map[string]string{"a": "b", "c": "d=e"}, ""},
		{"later wins", []string{"a=b", "a=c"}, map[string]string{"a": "c"}, ""},
		{"no equals", []string{"a"}, nil, `--tag "a": want KEY=VALUE`},
		{"empty key", []string{"=b"}, nil, `--tag "=b": want KEY=VALUE`},
		{"empty value", []string{"a="}, nil, `--tag "a=": want KEY=VALUE`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMap("tag", "KEY=VALUE", c.pairs)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestBarOffTerminal: a bar on anything but a terminal draws nothing, so logs stay clean.
func TestBarOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := NewBar(&buf, "copying")
	b.Update(5, 10)
	b.Finish()
	if b.Active() || buf.Len() != 0 {
		t.Errorf("active %v, wrote %q: want an inactive bar that writes nothing", b.Active(), strings.TrimSpace(buf.String()))
	}
}
