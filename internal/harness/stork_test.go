package harness

import (
	"strings"
	"testing"
)

func TestEnoughFree(t *testing.T) {
	for _, tc := range []struct {
		pct  float64
		want string // "" for no error
	}{
		{50, ""},
		{minFreePercent, ""},
		{11.9, "has 11.9% free, under 12%: stork-agent would report the node NearlyFull"},
		{7.7, "/tmp/stork-bench-backup"},
	} {
		err := enoughFree("/node/root", tc.pct)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%.1f%% free: %v, want no error", tc.pct, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/node/root")):
			t.Errorf("%.1f%% free: %v, want an error naming the root and saying %q", tc.pct, err, tc.want)
		}
	}
}
