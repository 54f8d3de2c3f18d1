package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// watchdogScript kills every process whose command line mentions $STORK_HARNESS_ROOT once the
// harness process ($1) is gone, then removes the root directory. It exists because envtest starts
// etcd and kube-apiserver without a parent-death signal: when a test binary is killed (go test's
// -timeout, kill -9, a crash) nothing else would stop them; nor unmount what a test mounted. The root comes in through the
// environment, not the command line, so the watchdog never matches itself.
const watchdogScript = `
trap '' INT TERM HUP
owner=$1
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
	case "$cmd" in *"$STORK_HARNESS_ROOT"*) kill -9 "$pid" 2>/dev/null ;; esac
done
# File systems a test mounted under the root (the fault campaign's tmpfs), deepest first.
awk -v root="$STORK_HARNESS_ROOT/" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
case "$STORK_HARNESS_ROOT" in */stork-harness-*) rm -rf -- "$STORK_HARNESS_ROOT" ;; esac
`

// startWatchdog starts the watchdog for root in a process group of its own, so that a Ctrl-C
// aimed at the test does not stop it before it has done its work.
func startWatchdog(root string) (*exec.Cmd, error) {
	cmd := exec.Command("bash", "-c", watchdogScript, "stork-harness-watchdog", strconv.Itoa(os.Getpid()))
	cmd.Env = append(os.Environ(), "STORK_HARNESS_ROOT="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the harness watchdog: %w", err)
	}
	return cmd, nil
}
