package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"stork.dev/stork/internal/harness"
)

// TestDemo runs `make demo`'s program without waiting and checks the story it tells.
func TestDemo(t *testing.T) {
	harness.RequireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 0, false); err != nil {
		t.Fatalf("demo failed: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Kubernetes v1\.37\.2 up in`),
		regexp.MustCompile(`node-zone-b-2\s+region-1\s+zone-b\s+rack-2\s+True`),
		regexp.MustCompile(`BackupLocation stork-demo/backups → (file:///|s3://)`),
		regexp.MustCompile(`spec\.url: Invalid value: .*url must be s3://BUCKET`),
		regexp.MustCompile(`pod stork-demo/hello bound to node-zone-[ab]-[12]`),
		regexp.MustCompile(`local\.node-zone-b-2\s+zone-b\s+Healthy`),
		regexp.MustCompile(`BackupLocation backups: Available \(Verified\) — repository [0-9a-f]{16} initialised`),
		regexp.MustCompile(`db-snap: Ready, .* of .*, 2 of 2 volumes`),
		regexp.MustCompile(`data-0: captured on node-zone-a-1 \(zone-a\)`),
		regexp.MustCompile(`stork-demo-copy/data-0 \(Bound\) on node-zone-a-1: 21 files, .* — identical to the snapshot`),
		regexp.MustCompile(`stork-demo-copy/data-1 \(Bound\) on node-zone-b-1: 21 files, .* — identical to the snapshot`),
		regexp.MustCompile(`schedule "\* \* \* \* \*": next run at \d\d:\d\d:00`),
		regexp.MustCompile(`local\.node-zone-[cd]-1\s+zone-[cd]\s+Healthy`),
		regexp.MustCompile(`BackupLocation stork-system/backups → \S+ \(ReadOnly`),
		regexp.MustCompile(`db-every-minute-\S+: Completed, .* of .*, 2 of 2 volumes`),
		regexp.MustCompile(`data-1 \(zone zone-b\) → repository snapshot [0-9a-f]{12}`),
		regexp.MustCompile(`\d+ Kubernetes objects → repository snapshot [0-9a-f]{12}; record [0-9a-f]{12} written last`),
		regexp.MustCompile(`Backup stork-system/db-every-minute-\S+ imported: from cluster site-a, namespace stork-demo, zones zone-a, zone-b, 2 volumes`),
		regexp.MustCompile(`stork-demo-dr/data-0 \(Bound\) on node-zone-c-1: 22 files, .* — identical to site A's data`),
		regexp.MustCompile(`stork-demo-dr/data-1 \(Bound\) on node-zone-[cd]-1: 22 files, .* — identical to site A's data`),
		regexp.MustCompile(`Deployment stork-demo-dr/db: Created`),
		regexp.MustCompile(`Secret stork-demo-dr/db-auth: Created`),
		regexp.MustCompile(`\$ storkctl repo restore latest \S+ --tag namespace=stork-demo --tag pvc=data-0`),
		regexp.MustCompile(`22 files, .*, sha256 [0-9a-f]{16} — identical to site A's data`),
		regexp.MustCompile(`export KUBECONFIG=/\S+/site-a/kubeconfig`),
		regexp.MustCompile(`export KUBECONFIG=/\S+/site-b/kubeconfig`),
		regexp.MustCompile(`all stopped, nothing left running\.`),
	} {
		if !want.MatchString(got) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// make test builds what a real node needs: site B then runs on one, Stork installed with
	// Helm, and the restored application runs in a real container on the restored data.
	if _, err := findRealNode(); err != nil {
		t.Fatalf("site B cannot run on a real node under make test: %v", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`BackupLocation stork-demo/backups → s3://`),
		regexp.MustCompile(`site B's control plane and real node up in`),
		regexp.MustCompile(`node-zone-c-1\s+region-2\s+zone-c\s+rack-1\s+True`),
		regexp.MustCompile(`\$ helm install stork deploy/helm/stork -n stork-system --create-namespace -f /\S+`),
		regexp.MustCompile(`stork-agent-\S+\s+node-zone-c-1\s+\S*stork:dev\s+true\s+containerd://`),
		regexp.MustCompile(`stork-scheduler-\S+\s+node-zone-c-1\s+registry\.k8s\.io/kube-scheduler:v1\.37\.2\s+true\s+containerd://`),
		regexp.MustCompile(`stork-demo-dr/data-0 \(Bound\) on node-zone-c-1: 22 files`),
		regexp.MustCompile(`\$ kubectl -n stork-demo-dr scale deployment/db --replicas=1`),
		regexp.MustCompile(`pod stork-demo-dr/db-\S+, placed by scheduler "stork" .*, runs on node-zone-c-1 from \S*stork-testapp:dev`),
		regexp.MustCompile(`tree-sum [0-9a-f]{64} files 22 bytes \d+ dir /data-0 — data-0 identical to site A's data`),
		regexp.MustCompile(`tree-sum [0-9a-f]{64} files 22 bytes \d+ dir /data-1 — data-1 identical to site A's data`),
		regexp.MustCompile(`get pods -A -o wide`),
	} {
		if !want.MatchString(got) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("demo output:\n" + strings.TrimSpace(got))
	}
}
