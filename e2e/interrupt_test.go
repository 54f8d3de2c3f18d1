package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"stork.dev/stork/internal/harness"
)

// helperEnv makes this test binary, when re-run by TestKilledTestLeavesNothing, start a control
// plane, print its root directory and wait to be killed.
const helperEnv = "STORK_E2E_KILL_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		runKillHelper()
		return
	}
	os.Exit(m.Run())
}

func runKillHelper() {
	bins, err := harness.FindBinaries()
	if err != nil {
		panic(err)
	}
	env, err := harness.NewEnv(bins, "")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "doomed", ControlPlaneOnly: true}); err != nil {
		panic(err)
	}
	if _, err := env.StartMinIO(ctx, "doomed-minio"); err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ROOT " + env.Root + "\n")
	time.Sleep(10 * time.Minute) // killed long before
}

// TestKilledTestLeavesNothing kills (SIGKILL, no cleanup code runs) a test process that has a
// control plane and MinIO up, and checks that the watchdog stops all of it.
func TestKilledTestLeavesNothing(t *testing.T) {
	harness.RequireBinaries(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	root := ""
	for root == "" && lines.Scan() {
		root, _ = strings.CutPrefix(lines.Text(), "ROOT ")
	}
	if root == "" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper did not start its environment: %v", cmd.Wait())
	}
	running := harness.ProcessesUnder(root)
	if len(running) < 3 { // etcd, kube-apiserver, minio
		t.Fatalf("expected etcd, kube-apiserver and minio running under %s, found %v", root, running)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(20 * time.Second)
	for left := harness.ProcessesUnder(root); len(left) > 0; left = harness.ProcessesUnder(root) {
		if time.Now().After(deadline) {
			t.Fatalf("20s after the test process was killed these are still running:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if _, err := os.Stat(root); os.IsNotExist(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the watchdog did not remove %s", root)
}
