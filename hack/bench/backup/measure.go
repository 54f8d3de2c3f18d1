package main

// Measuring a tool's peak RSS honestly. Linux keeps a process's peak RSS across execve, and Go
// starts a child by vfork (sharing the parent's memory until exec), so a child of this benchmark
// reports at least the benchmark's own peak: after the checksums of a million files, hundreds of
// MiB that the tool never used. Each measured command therefore runs under this binary started
// afresh as `measure`, a process of a few MiB, which starts the tool and reports its rusage.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// rusageEnv names the file `measure` writes the child's "maxrss_kib cpu_seconds anon_kib" to.
const rusageEnv = "BENCH_RUSAGE_FILE"

// measure runs args[0] with args[1:], passing its output through, and exits with its status.
func measure(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: measure COMMAND [ARG...]")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The peak of anonymous memory (the heap, stacks: what the tool allocates), sampled, as
	// rusage's peak RSS also counts the pages of the tool's binary that are mapped.
	var anonKiB atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if kib := rssAnon(status); kib > anonKiB.Load() {
				anonKiB.Store(kib)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(stop)
	<-sampled
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		if werr := os.WriteFile(os.Getenv(rusageEnv), fmt.Appendf(nil, "%d %f %d\n", ru.Maxrss, cpu, anonKiB.Load()), 0o644); werr != nil {
			return werr
		}
	}
	os.Exit(cmd.ProcessState.ExitCode())
	return nil
}

// rssAnon reads RssAnon (KiB) from a /proc/PID/status file; 0 once the process is gone.
func rssAnon(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// readRusage reads what measure wrote into a result.
func readRusage(path string, res *result) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if _, err := fmt.Sscan(string(data), &res.MaxRSSKiB, &res.CPU, &res.AnonKiB); err != nil {
		return fmt.Errorf("%s: %q: %w", path, data, err)
	}
	return nil
}
