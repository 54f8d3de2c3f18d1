package crashpoint

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestHere re-runs this test binary as a child that passes points; the child must die by
// SIGKILL exactly at the named point, after saying so, and pass the other points untouched.
func TestHere(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		Here("other")
		Midway("midway", 4, 10)  // under half moved
		Midway("midway", 10, 10) // all moved
		os.Stdout.WriteString("before\n")
		Here("here")
		Midway("midway", 5, 10) // half moved
		os.Stdout.WriteString("after\n")
		return
	}
	cases := []struct {
		name, at string
		killed   bool
	}{
		{"unset", "", false},
		{"another point", "elsewhere", false},
		{"a point", "here", true},
		{"a midway point", "midway", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHere$")
			cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+tc.at)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			killed := false
			if ee, ok := err.(*exec.ExitError); ok {
				ws := ee.Sys().(syscall.WaitStatus)
				killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
			} else if err != nil {
				t.Fatal(err)
			}
			if killed != tc.killed {
				t.Fatalf("killed by SIGKILL: %v, want %v (err %v, stderr %q)", killed, tc.killed, err, stderr.String())
			}
			if !strings.Contains(string(out), "before") || strings.Contains(string(out), "after") == tc.killed {
				t.Errorf("output %q: want before, and after only if not killed", out)
			}
			if said := tc.at != "" && strings.Contains(stderr.String(), Message(tc.at)); said != tc.killed {
				t.Errorf("stderr %q: says it was killed at %q: %v, want %v", stderr.String(), tc.at, said, tc.killed)
			}
		})
	}
}
