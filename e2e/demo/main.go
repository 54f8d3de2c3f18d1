package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

func main() {
	wait := flag.Duration("wait", -1, "how long to keep the cluster up after setting it up; "+
		"default: until Ctrl-C when run from a terminal, not at all otherwise")
	keep := flag.Bool("keep", false, "keep the demo's directory (logs, etcd data, bucket) after it stops")
	flag.Parse()
	if *wait < 0 {
		*wait = 0
		if term.IsTerminal(int(os.Stdin.Fd())) {
			*wait = 365 * 24 * time.Hour
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *wait, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

const namespace = "stork-demo"

func run(ctx context.Context, out io.Writer, wait time.Duration, keep bool) (err error) {
	step := func(s string) { fmt.Fprintf(out, "\n» %s\n", s) }
	bins, err := harness.FindBinaries()
	if err != nil {
		return err
	}
	env, err := harness.NewEnv(bins, "")
	if err != nil {
		return err
	}
	env.KeepRoot = keep
	defer func() {
		fmt.Fprintln(out, "\n» Stopping the control plane and every process the demo started …")
		err = errors.Join(err, env.Close())
		if err == nil {
			fmt.Fprintln(out, "  all stopped, nothing left running.")
		}
	}()

	step("Starting site A's Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
	started := time.Now()
	cluster, err := env.StartCluster(ctx, harness.ClusterOptions{
		Name:  "site-a",
		Nodes: harness.Nodes("node", "region-1", []string{"zone-a", "zone-b"}, 2),
	})
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cluster.Config)
	if err != nil {
		return err
	}
	version, err := dc.ServerVersion()
	if err != nil {
		return fmt.Errorf("asking the API server its version: %w", err)
	}
	fmt.Fprintf(out, "  Kubernetes %s up in %.1fs, with Stork's CRDs installed.\n", version.GitVersion, time.Since(started).Seconds())

	step("Simulated nodes (no kubelet runs here; the harness heartbeats for them)")
	if err := printNodes(ctx, out, cluster.Client); err != nil {
		return err
	}

	// Site B runs on a real node (a kubelet with containerd) when this machine can run one;
	// its pods then reach the bucket over S3, as they see none of this machine's directories.
	real, noReal := findRealNode()
	var bk bucket
	if real != nil {
		step("Creating namespace " + namespace + ", an encryption-key Secret and a BackupLocation on a MinIO bucket")
		bk, err = minioBucket(ctx, env)
	} else {
		step("Creating namespace " + namespace + ", an encryption-key Secret and a file:// BackupLocation")
		bk, err = fileBucket(env)
	}
	if err != nil {
		return err
	}
	// A fresh random passphrase: Stork has no default key.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := createLocation(ctx, cluster.Client, namespace, bk, base64.RawURLEncoding.EncodeToString(key), storkv1.AccessReadWrite); err != nil {
		return err
	}
	fmt.Fprintf(out, "  BackupLocation %s/backups → %s\n", namespace, bk.url)
	if real == nil {
		fmt.Fprintf(out, "  (site B will run on simulated nodes: %v)\n", noReal)
	}

	step("The API rejects invalid objects with messages that name the field")
	bad := &storkv1.BackupLocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "bad"},
		Spec: storkv1.BackupLocationSpec{
			URL:                    "ftp://example/backups",
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "stork-demo-key", Key: "passphrase"},
		},
	}
	if err := cluster.Client.Create(ctx, bad); err == nil {
		return errors.New("the API server accepted a BackupLocation with an ftp:// url")
	} else {
		fmt.Fprintf(out, "  %v\n", err)
	}

	step("kube-scheduler places a pod on a simulated node")
	node, err := schedulePod(ctx, cluster)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  pod %s/hello bound to %s\n", namespace, node)

	siteB, err := storkStory(ctx, out, step, env, cluster, bk, real)
	if err != nil {
		return err
	}

	step("The clusters are yours")
	kubectl := bins.Path("kubectl")
	fmt.Fprintf(out, `  site A:  export KUBECONFIG=%s
  %s get nodes -L topology.kubernetes.io/zone,stork.dev/rack
  %s get backuplocations,snapshots,snapshotschedules,backups,volumetasks -n %s
  %s/storkctl snapshot describe db-snap -n %s
  site B:  export KUBECONFIG=%s
  %s get backups -n %s; %s get restores -n stork-system -o yaml
  %s get all,configmaps,secrets,pvc -n %s-dr
`, cluster.Kubeconfig, kubectl, kubectl, namespace, storkctlDir(), namespace, siteB.Kubeconfig, kubectl, drNamespace, kubectl, kubectl, namespace)
	if real != nil {
		fmt.Fprintf(out, `  site B's real node runs Stork's pods and the restored application:
  %s get pods -A -o wide
  %s -n stork-system logs deployment/stork
  %s -n %s-dr logs deployment/db
  %s -n %s-dr exec deployment/db -- /testapp sum /data-0 /data-1
`, kubectl, kubectl, kubectl, namespace, kubectl, namespace)
	}
	if wait <= 0 {
		fmt.Fprintln(out, "  (not waiting: run `make demo` from a terminal to keep the cluster up until Ctrl-C)")
		return nil
	}
	fmt.Fprintln(out, "\n  Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
	return nil
}

func printNodes(ctx context.Context, out io.Writer, c client.Client) error {
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  NODE\tREGION\tZONE\tRACK\tREADY")
	for _, n := range nodes.Items {
		ready := "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = string(c.Status)
			}
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", n.Name, n.Labels[storkv1.LabelRegion], n.Labels[storkv1.LabelZone], n.Labels[storkv1.LabelRack], ready)
	}
	return w.Flush()
}

func schedulePod(ctx context.Context, cluster *harness.Cluster) (string, error) {
	return cluster.SchedulePod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "hello"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "registry.k8s.io/pause:3.10"}}},
	})
}
