package crashpoint

import (
	"fmt"
	"os"
	"syscall"
)

// EnvVar names the point at which the process kills itself.
const EnvVar = "STORK_CRASH_AT"

// Message is the line written to stderr just before the kill; the campaign reads it to know
// that the point was reached.
func Message(name string) string { return "crashpoint " + name + ": SIGKILL" }

// Here kills the process with SIGKILL if STORK_CRASH_AT names this point.
func Here(name string) {
	if os.Getenv(EnvVar) != name {
		return
	}
	fmt.Fprintln(os.Stderr, Message(name))
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught: the process ends before this blocks for long
}

// Midway calls Here(name) once done is at least half of total but not all of it: half the data
// moved, the rest not.
func Midway(name string, done, total int64) {
	if done*2 >= total && done < total {
		Here(name)
	}
}
