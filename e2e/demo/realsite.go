package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// realNode is what running site B on a real node takes: the kubelet and kube-proxy, the images
// of `make images` and helm (`make demo` builds them all).
type realNode struct {
	bins   harness.NodeBinaries
	images []string
	helm   string
}

// findRealNode returns what a real node needs, or why this machine cannot run one.
func findRealNode() (*realNode, error) {
	bins, err := harness.FindNodeBinaries()
	if err != nil {
		return nil, err
	}
	images, err := harness.FindImages()
	if err != nil {
		return nil, err
	}
	helm, err := harness.FindHelm()
	if err != nil {
		return nil, err
	}
	return &realNode{bins: bins, images: images, helm: helm}, nil
}

// realNodeName is site B's one real node.
const realNodeName = "node-zone-c-1"

// startRealSiteB starts site B with one real node in zone-c (a kubelet with containerd and
// runc) and installs Stork on it with the Helm chart, as a user would: the controller, the
// agent and the stork scheduler run as pods (from the stork image and kube-scheduler's), and the
// chart makes the ReadOnly BackupLocation on site A's bucket.
func startRealSiteB(ctx context.Context, out io.Writer, env *harness.Env, rn *realNode, b bucket, passphrase string) (*harness.Cluster, error) {
	started := time.Now()
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "site-b", RealNodes: true})
	if err != nil {
		return nil, err
	}
	n, err := c.StartRealNode(ctx, rn.bins, harness.RealNodeOptions{Name: realNodeName, Images: rn.images, Labels: map[string]string{
		storkv1.LabelRegion: "region-2", storkv1.LabelZone: "zone-c", storkv1.LabelRack: "rack-1"}})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  site B's control plane and real node up in %.1fs (kubelet, containerd, runc; images imported from bin/images)\n", time.Since(started).Seconds())
	if err := printNodes(ctx, out, c.Client); err != nil {
		return nil, err
	}

	// Everything the node keeps stays under its directory, which the harness removes.
	storage := filepath.Join(n.Dir, "storage")
	location := map[string]any{"create": true, "name": "backups", "url": b.url, "accessMode": "ReadOnly", "syncPeriod": "10s",
		"encryption": map[string]any{"passphrase": passphrase}}
	if b.s3 != nil {
		location["s3"] = b.s3
		location["credentials"] = map[string]any{"data": b.creds}
	}
	values, err := yaml.Marshal(map[string]any{
		"cluster":        c.Name,
		"controller":     map[string]any{"replicas": 1},
		"scheduler":      map[string]any{"replicas": 1},
		"agent":          map[string]any{"root": storage},
		"driverConfig":   map[string]any{"local.roots": storage},
		"backupLocation": location,
	})
	if err != nil {
		return nil, err
	}
	valuesFile := filepath.Join(c.Dir, "stork-values.yaml")
	if err := os.WriteFile(valuesFile, values, 0o600); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  $ helm install stork deploy/helm/stork -n stork-system --create-namespace -f %s\n", valuesFile)
	fmt.Fprintln(out, "    (values: one controller and one stork scheduler replica, the agents' root, and a ReadOnly BackupLocation with the bucket's keys and the passphrase)")
	start := time.Now()
	if err := runCommand(ctx, rn.helm, "install", "stork", chartDir(), "--kubeconfig="+c.Kubeconfig, "-n", harness.StorkNamespace,
		"--create-namespace", "-f", valuesFile, "--wait", "--timeout=3m"); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  Stork's pods ready %.1fs after helm install:\n", time.Since(start).Seconds())
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(harness.StorkNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  POD\tNODE\tIMAGE\tREADY\tCONTAINER")
	for _, p := range pods.Items {
		for _, st := range p.Status.ContainerStatuses {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%v\t%s\n", p.Name, p.Spec.NodeName, st.Image, st.Ready, st.ContainerID[:min(len(st.ContainerID), 25)])
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	// The agent reports its node's storage from its pod.
	if err := c.WaitFor(ctx, time.Minute, "the agent's StorageNode", func(ctx context.Context) (bool, error) {
		var list storkv1.StorageNodeList
		err := c.Client.List(ctx, &list)
		return err == nil && len(list.Items) > 0 && list.Items[0].Status.Health != "", err
	}); err != nil {
		return nil, err
	}
	return c, printStorageNodes(ctx, out, c.Client)
}

// startRestoredApp scales the restored application up on site B's real node and checks that
// it reads site A's data: the test application logs a tree sum per volume.
func startRestoredApp(ctx context.Context, out io.Writer, c *harness.Cluster, want map[string]string) error {
	ns := namespace + "-dr"
	fmt.Fprintf(out, "  $ kubectl -n %s scale deployment/db --replicas=1\n", ns)
	dep := &appsv1.Deployment{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, dep); err != nil {
		return err
	}
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Spec.Replicas = ptr.To(int32(1))
	if err := c.Client.Patch(ctx, dep, patch); err != nil {
		return fmt.Errorf("scaling the restored Deployment: %w", err)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	var pod corev1.Pod
	var logs string
	err = c.WaitFor(ctx, 2*time.Minute, "the restored application to read its data", func(ctx context.Context) (bool, error) {
		var list corev1.PodList
		if err := c.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(db)); err != nil || len(list.Items) == 0 {
			return false, err
		}
		pod = list.Items[0]
		if pod.Status.Phase != corev1.PodRunning {
			return false, nil
		}
		// Through the API server, which calls the kubelet with its client certificate.
		b, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		logs = string(b)
		return err == nil && strings.Count(logs, "tree-sum ") == len(want), nil
	})
	if err != nil {
		return fmt.Errorf("%w; logs:\n%s", err, logs)
	}
	image := ""
	if len(pod.Status.ContainerStatuses) > 0 {
		image = pod.Status.ContainerStatuses[0].Image
	}
	fmt.Fprintf(out, "  pod %s/%s, placed by scheduler %q (Stork's webhook chose it), runs on %s from %s; it logs:\n",
		ns, pod.Name, pod.Spec.SchedulerName, pod.Spec.NodeName, image)
	s := bufio.NewScanner(strings.NewReader(logs))
	for s.Scan() {
		// tree-sum HEX files N bytes B dir /data-0
		f := strings.Fields(s.Text())
		if len(f) != 8 || f[0] != "tree-sum" {
			continue
		}
		claim := strings.TrimPrefix(f[7], "/")
		if f[1] != want[claim] {
			return fmt.Errorf("the restored application reads %s in %s, site A held %s", f[1], claim, want[claim])
		}
		fmt.Fprintf(out, "    %s — %s identical to site A's data\n", s.Text(), claim)
	}
	return nil
}

// chartDir is deploy/helm/stork in this module.
func chartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "stork")
}

// runCommand runs a command, returning its output in the error when it fails.
func runCommand(ctx context.Context, name string, args ...string) error {
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}
