package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/minio/minio-go/v7"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/csi"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/internal/images"
)

// startRealCluster starts a control plane for real nodes and two real nodes, in zones a and b
// of one region, with images imported into their containerd and a registry they pull from.
func startRealCluster(ctx context.Context, t *testing.T, env *harness.Env, images []string, registry string) (*harness.Cluster, []*harness.RealNode) {
	t.Helper()
	nodeBins := harness.RequireNodeBinaries(t)
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "real", RealNodes: true})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*harness.RealNode
	for i, zone := range []string{"zone-a", "zone-b"} {
		start := time.Now()
		n, err := c.StartRealNode(ctx, nodeBins, harness.RealNodeOptions{Name: fmt.Sprintf("real-%d", i+1), Images: images, Registries: []string{registry},
			Labels: map[string]string{"topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": zone}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("real node %s Ready in %s", n.Name, time.Since(start).Round(time.Millisecond))
		nodes = append(nodes, n)
	}
	return c, nodes
}

// waitPodPhase waits for a pod to reach phase and returns it.
func waitPodPhase(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string, phase corev1.PodPhase, timeout time.Duration) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	err := c.WaitFor(ctx, timeout, "pod "+ns+"/"+name+" "+string(phase), func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if pod.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			return false, fmt.Errorf("pod %s/%s failed: %s", ns, name, podSummary(pod))
		}
		return pod.Status.Phase == phase, nil
	})
	if err != nil {
		t.Fatalf("%v (%s)", err, podSummary(pod))
	}
	return pod
}

func podSummary(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		switch {
		case s.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message)
		case s.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s exit %d %s", s.Name, s.State.Terminated.Reason, s.State.Terminated.ExitCode, s.State.Terminated.Message)
		case s.State.Running != nil:
			fmt.Fprintf(&b, "; %s running (ready %v, restarts %d)", s.Name, s.Ready, s.RestartCount)
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue && cond.Message != "" {
			fmt.Fprintf(&b, "; %s: %s", cond.Type, cond.Message)
		}
	}
	return b.String()
}

// TestRealNode runs Stork on two real kubelets: Stork installed with the kustomize base as a
// user would (controller, agents, the stork scheduler and the pod webhook), its pods from the
// images of `make images` in Debian's containerd and runc, networked by the CNI bridges, finding
// each other through the cluster DNS and reaching the API server through kube-proxy; then an
// application placed by the stork scheduler, its data snapshotted with a hook run through
// pods/exec, backed up to MinIO and restored into another namespace, where the restored
// application reads it back.
func TestRealNode(t *testing.T) {
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// Stork's image reaches the nodes as it reaches a user's: pushed to a registry (by the
	// function behind `make images IMAGES_ARGS="-push REGISTRY"`), named in the kustomization,
	// pulled by the kubelets. The pause image, the test application's and kube-scheduler's
	// (upstream's, in a user's cluster) are imported.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	regHost := strings.TrimPrefix(reg.URL, "http://")
	storkImage, storkDigest, imported := pushStorkImage(ctx, t, regHost+"/stork")
	c, nodes := startRealCluster(ctx, t, env, imported, regHost)
	n := nodes[0]
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	// A CSI driver, as a cluster has before Stork is installed: its controller side (the test
	// plugin, csi-provisioner, csi-snapshotter, snapshot-controller) runs on this machine, its
	// node side registers with the kubelet, which mounts its volumes into pods.
	driver, err := c.StartCSI(ctx, harness.CSIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, env.Bins.Path("kubectl"), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Run("the kubelet refuses clients without credentials", func(t *testing.T) {
		// The kubelet's certificate checks out against the cluster's authority; a client
		// with no certificate or token gets 401, whatever it asks (kube-apiserver's own
		// certificate is proven by every `kubectl logs` and exec below).
		ca, err := os.ReadFile(n.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		for _, path := range []string{"/pods", "/runningpods/", "/exec/default/x/y?command=id", "/configz"} {
			url := fmt.Sprintf("https://%s:%d%s", c.HostIP, n.KubeletPort, path)
			resp, err := hc.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without credentials: %s, want 401 Unauthorized", url, resp.Status)
			}
		}
	})

	t.Run("a pod runs from the stork image, pulled from the registry", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "version"},
			Spec: corev1.PodSpec{NodeName: n.Name, RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
				Name: "storkctl", Image: storkImage, ImagePullPolicy: corev1.PullAlways, Command: []string{"/storkctl", "version"}}}}}
		start := time.Now()
		mustCreate(t, c, pod)
		pod = waitPodPhase(ctx, t, c, "default", "version", corev1.PodSucceeded, 2*time.Minute)
		t.Logf("pod Succeeded %s after creation (image pulled)", time.Since(start).Round(time.Millisecond))
		if st := pod.Status.ContainerStatuses[0]; !strings.HasSuffix(st.ImageID, "@"+storkDigest) {
			t.Errorf("container image %s (%s), want the pushed %s", st.Image, st.ImageID, storkDigest)
		}
		if got := strings.TrimSpace(kubectl(t, "logs", "-n", "default", "version")); got != "dev" {
			t.Errorf("storkctl version printed %q, want dev", got)
		}
	})

	// Stork as users install it: the kustomize base, with the agents' storage root moved, as a
	// user with another disk layout would: into the first node's directory, a shared mount
	// (which the agent's mountPropagation needs). Both nodes are this machine, so both agents
	// see the one directory; each works only on the volumes of its own node.
	storage := filepath.Join(n.Dir, "storage")
	t.Run("kustomize installs Stork and its pods become ready", func(t *testing.T) {
		dir := t.TempDir()
		overlay, err := filepath.Abs("../deploy")
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(dir, overlay)
		if err != nil {
			t.Fatal(err)
		}
		kust := fmt.Sprintf(`resources:
- %[1]s
images:
- name: stork
  newName: %[3]s
patches:
- target: {kind: Deployment, name: stork}
  patch: |
    - {op: test, path: /spec/template/spec/containers/0/args/1, value: "--driver-config=local.roots=/var/lib/stork/local"}
    - {op: replace, path: /spec/template/spec/containers/0/args/1, value: "--driver-config=local.roots=%[2]s"}
- target: {kind: DaemonSet, name: stork-agent}
  patch: |
    - {op: replace, path: /spec/template/spec/containers/0/command/2, value: "--root=%[2]s"}
    - {op: replace, path: /spec/template/spec/containers/0/volumeMounts/0/mountPath, value: "%[2]s"}
    - {op: replace, path: /spec/template/spec/volumes/0/hostPath/path, value: "%[2]s"}
`, rel, storage, strings.TrimSuffix(storkImage, ":dev"))
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		kubectl(t, "apply", "--server-side", "-k", dir)
		kubectl(t, "-n", "stork-system", "wait", "--for=condition=Available", "--timeout=180s", "deployment/stork", "deployment/stork-scheduler")
		kubectl(t, "-n", "stork-system", "rollout", "status", "--timeout=180s", "daemonset/stork-agent")
		t.Logf("stork and stork-scheduler Deployments Available and agent DaemonSet rolled out %s after apply", time.Since(start).Round(time.Millisecond))

		pods, err := cs.CoreV1().Pods("stork-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=stork"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 6 {
			t.Fatalf("%d stork pods, want 2 controllers, 2 agents and 2 schedulers", len(pods.Items))
		}
		leaders := 0
		schedulers := map[string]bool{}
		for _, p := range pods.Items {
			image := storkImage
			if p.Labels["app.kubernetes.io/component"] == "scheduler" {
				image = "registry.k8s.io/kube-scheduler:v1.37.2"
			}
			for _, st := range p.Status.ContainerStatuses {
				if !st.Ready || st.RestartCount != 0 || st.Image != image {
					t.Errorf("pod %s container %s: ready %v, restarts %d, image %s", p.Name, st.Name, st.Ready, st.RestartCount, st.Image)
				}
			}
			if p.Labels["app.kubernetes.io/component"] == "scheduler" {
				// kube-scheduler's liveness probe (/healthz, HTTPS) passed: no restarts. Its
				// RBAC (60-scheduler.yaml) is enough: it was refused nothing it watches.
				schedulers[p.Name] = true
				for _, line := range strings.Split(kubectl(t, "-n", "stork-system", "logs", p.Name), "\n") {
					if strings.Contains(line, "forbidden") {
						t.Errorf("scheduler %s was refused: %s", p.Name, line)
					}
				}
				continue
			}
			// The probes' endpoints and /metrics, from this machine to the pod's address on
			// the bridge, as Prometheus would scrape them.
			httpGet(ctx, t, "http://"+p.Status.PodIP+":8081/healthz")
			httpGet(ctx, t, "http://"+p.Status.PodIP+":8081/readyz")
			metrics := httpGet(ctx, t, "http://"+p.Status.PodIP+":8080/metrics")
			switch p.Labels["app.kubernetes.io/component"] {
			case "controller":
				// Both replicas report the election; one leads.
				// Every replica serves the dashboard over TLS, with the certificate of the CA
				// in Secret stork-dashboard-certs, for its Service's name.
				checkDashboardTLS(ctx, t, c, p.Status.PodIP+":8443")
				if strings.Contains(metrics, `leader_election_master_status{name="stork-controller.stork.dev"} 1`) {
					leaders++
				} else if !strings.Contains(metrics, `leader_election_master_status{name="stork-controller.stork.dev"} 0`) {
					t.Errorf("controller %s: no leader_election_master_status in /metrics", p.Name)
				}
			case "agent":
				if !strings.Contains(metrics, `controller_runtime_reconcile_total{controller=`) {
					t.Errorf("agent %s: no controller_runtime_reconcile_total in /metrics", p.Name)
				}
			}
			logs := kubectl(t, "-n", "stork-system", "logs", p.Name)
			if !strings.Contains(logs, `"version":"dev"`) && !strings.Contains(logs, "starting") {
				t.Errorf("logs of %s lack the start line:\n%s", p.Name, logs)
			}
		}
		if leaders != 1 {
			t.Errorf("%d controller replicas lead, want 1", leaders)
		}
		// One stork scheduler leads, under the lease its configuration names (an identity is
		// the pod's hostname and a suffix).
		err = c.WaitFor(ctx, time.Minute, "a stork scheduler to lead", func(ctx context.Context) (bool, error) {
			lease, err := cs.CoordinationV1().Leases("stork-system").Get(ctx, "stork-scheduler", metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil {
				return false, client.IgnoreNotFound(err)
			}
			holder, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
			if !schedulers[holder] {
				return false, fmt.Errorf("lease stork-system/stork-scheduler held by %q, not a scheduler pod (%v)", *lease.Spec.HolderIdentity, schedulers)
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The agents reached the API server from their pods: each node's storage is reported.
		err = c.WaitFor(ctx, time.Minute, "a StorageNode per node", func(ctx context.Context) (bool, error) {
			var sns storkv1.StorageNodeList
			if err := c.Client.List(ctx, &sns); err != nil {
				return false, err
			}
			reported := map[string]bool{}
			for _, sn := range sns.Items {
				reported[sn.Spec.NodeName] = true
			}
			return reported[nodes[0].Name] && reported[nodes[1].Name], nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		return
	}

	m, err := env.StartMinIOAt(ctx, "minio", c.HostIP.String())
	if err != nil {
		t.Fatal(err)
	}
	var before string
	t.Run("an application writes into a local volume", func(t *testing.T) {
		mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
		vol := filepath.Join(storage, "app-volumes", "shop-data")
		if err := os.MkdirAll(vol, 0o755); err != nil {
			t.Fatal(err)
		}
		// The application runs as the images' non-root user, 65532, which owns its volume.
		if err := os.Chown(vol, 65532, 65532); err != nil {
			t.Fatal(err)
		}
		if err := c.Volume(ctx, "shop", "data", n.Name, vol, map[string]string{"app": "shop"}); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, c, testApp("shop"))
		kubectl(t, "-n", "shop", "wait", "--for=condition=Available", "--timeout=120s", "deployment/shop")
		before = logTreeSum(ctx, t, c, kubectl, "shop")

		// Placement, end to end: the API server called Stork's webhook through its Service
		// (kube-proxy), which gave the pod the stork scheduler; that scheduler, finding the
		// extender by its Service name (cluster DNS), asked it and bound the pod to the node
		// holding its volume.
		pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("pods of shop: %v, %v", pods, err)
		}
		pod := pods.Items[0]
		if pod.Spec.SchedulerName != "stork" || pod.Spec.NodeName != n.Name {
			t.Errorf("pod %s: scheduler %q, node %q; want stork, %s", pod.Name, pod.Spec.SchedulerName, pod.Spec.NodeName, n.Name)
		}
		evs, err := cs.EventsV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "reason=Scheduled,regarding.name=" + pod.Name})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) != 1 || evs.Items[0].ReportingController != "stork" {
			t.Errorf("Scheduled events of pod %s: %+v, want one reported by stork", pod.Name, evs.Items)
		}
		if filters := extenderCalls(ctx, t, cs, "filter"); filters == 0 {
			t.Error("no controller counted a filter call of the extender")
		}
	})

	t.Run("a snapshot with a hook through pods/exec is backed up to MinIO", func(t *testing.T) {
		createLocationIn(ctx, t, c, m, "shop")
		snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly"},
			Spec: storkv1.SnapshotSpec{
				Source:           storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}},
				IncludeResources: true, BackupLocation: "minio",
				PreHooks: []storkv1.Hook{{Name: "flush", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
					Command: []string{"/testapp", "hook", "/data", "flushed-before-snapshot"}}},
			}}
		mustCreate(t, c, snap)
		waitSnapshot(t, c, snap, storkv1.SnapshotReady)
		if len(snap.Status.Hooks) != 1 || !snap.Status.Hooks[0].Succeeded {
			t.Fatalf("hook results %+v", snap.Status.Hooks)
		}
		// The hook ran in the application's container: its file is in the volume, and the
		// tree the snapshot took is the tree with it.
		before = treeSum(t, kubectl(t, "-n", "shop", "exec", "deploy/shop", "--", "/testapp", "sum", "/data"))
		if _, err := os.Stat(filepath.Join(storage, "app-volumes", "shop-data", "flushed-before-snapshot")); err != nil {
			t.Errorf("the pre-hook's file is not in the volume: %v", err)
		}
		waitBackupCompleted(ctx, t, c, "shop", "nightly")
		objects := 0
		for range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			objects++
		}
		if objects == 0 {
			t.Error("the bucket is empty after a Completed backup")
		}
	})

	t.Run("a restore into another namespace runs the application on the restored data", func(t *testing.T) {
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: "shop-dr"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "nightly", Namespace: "shop"},
				NamespaceMapping: map[string]string{"shop": "shop-dr"}}}
		mustCreate(t, c, rs)
		waitRestore(t, c, rs, storkv1.RestoreCompleted)
		kubectl(t, "-n", "shop-dr", "wait", "--for=condition=Available", "--timeout=120s", "deployment/shop")
		after := logTreeSum(ctx, t, c, kubectl, "shop-dr")
		if after != before {
			t.Errorf("the restored application reads %q, the snapshot held %q", after, before)
		}
	})

	// The csi driver's data path: the kubelet mounts the CSI volumes (through the driver's node
	// registration) into Stork's mover pods, which run from the stork image.
	t.Run("a CSI volume is backed up and restored by mover pods the kubelet runs", func(t *testing.T) {
		movers := moverPods(ctx, t, cs)
		mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ledger"}})
		mustCreate(t, c, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ledger", Name: "data", Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(driver.WFFCClass), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}}})
		mustCreate(t, c, testApp("ledger"))
		kubectl(t, "-n", "ledger", "wait", "--for=condition=Available", "--timeout=120s", "deployment/shop")
		before := logTreeSum(ctx, t, c, kubectl, "ledger")

		createLocationIn(ctx, t, c, m, "ledger")
		snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "ledger", Name: "nightly"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}},
				IncludeResources: true, BackupLocation: "minio"}}
		mustCreate(t, c, snap)
		waitSnapshot(t, c, snap, storkv1.SnapshotReady)
		if len(snap.Status.Volumes) != 1 || snap.Status.Volumes[0].Driver != csi.Name {
			t.Fatalf("snapshot volumes %+v, want one of driver %s", snap.Status.Volumes, csi.Name)
		}
		bk := waitBackupCompleted(ctx, t, c, "ledger", "nightly")
		if bk.Status.Progress.BytesDone == 0 {
			t.Errorf("backup progress %+v", bk.Status.Progress)
		}

		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: "ledger-dr"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "nightly", Namespace: "ledger"},
				NamespaceMapping: map[string]string{"ledger": "ledger-dr"}}}
		mustCreate(t, c, rs)
		waitRestore(t, c, rs, storkv1.RestoreCompleted)
		kubectl(t, "-n", "ledger-dr", "wait", "--for=condition=Available", "--timeout=120s", "deployment/shop")
		if after := logTreeSum(ctx, t, c, kubectl, "ledger-dr"); after != before {
			t.Errorf("the restored application reads %q, the backed-up one %q", after, before)
		}

		// One backup and one restore mover ran to completion in containerd on the real node,
		// from the stork image, with the CSI volume mounted by the kubelet.
		verbs := map[string]int{}
		for name, p := range movers() {
			ok := (p.Spec.NodeName == nodes[0].Name || p.Spec.NodeName == nodes[1].Name) && len(p.Status.ContainerStatuses) == 1
			if ok {
				st := p.Status.ContainerStatuses[0]
				ok = st.State.Terminated != nil && st.State.Terminated.ExitCode == 0 &&
					strings.HasPrefix(st.ContainerID, "containerd://") && st.Image == storkImage
			}
			if !ok {
				t.Errorf("mover pod %s: node %s, %s", name, p.Spec.NodeName, podSummary(&p))
				continue
			}
			verbs[strings.Join(p.Spec.Containers[0].Command, " ")]++
		}
		if len(verbs) != 2 {
			t.Errorf("mover pods ran %v, want one backup and one restore", verbs)
		}

		// A second backup of the unchanged claim: its mover reads a new clone (new inodes and
		// ctimes) yet takes every file from the first backup.
		snap2 := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "ledger", Name: "nightly-2"}, Spec: snap.Spec}
		mustCreate(t, c, snap2)
		waitSnapshot(t, c, snap2, storkv1.SnapshotReady)
		bk2 := waitBackupCompleted(ctx, t, c, "ledger", "nightly-2")
		for _, v := range bk2.Status.Volumes {
			if v.Progress.BytesTotal == 0 || v.Progress.BytesSkipped != v.Progress.BytesTotal {
				t.Errorf("second backup of claim %s: %d of %d bytes skipped, want all", v.ClaimName, v.Progress.BytesSkipped, v.Progress.BytesTotal)
			}
		}
	})
}

// pushStorkImage pushes the stork image of `make images` to registry (host:port/prefix) and
// returns its reference there, its digest, and the other images' tarballs.
func pushStorkImage(ctx context.Context, t *testing.T, registry string) (ref, digest string, others []string) {
	t.Helper()
	tarballs, err := harness.FindImages()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tarballs {
		if filepath.Base(tb) != "stork.tar" {
			others = append(others, tb)
			continue
		}
		tag, err := name.NewTag("docker.io/library/stork:dev")
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(tb, &tag)
		if err != nil {
			t.Fatal(err)
		}
		refs, err := images.Push(ctx, registry, []images.Named{{Ref: tag.String(), Image: img}})
		if err != nil {
			t.Fatal(err)
		}
		_, digest, _ = strings.Cut(refs[0], "@")
		ref = registry + "/stork:dev"
	}
	if ref == "" {
		t.Fatalf("no stork.tar among %v", tarballs)
	}
	return ref, digest, others
}

// extenderCalls sums the controllers' count of the extender's successful calls of verb, from
// each controller pod's /metrics.
func extenderCalls(ctx context.Context, t *testing.T, cs kubernetes.Interface, verb string) float64 {
	t.Helper()
	pods, err := cs.CoreV1().Pods("stork-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=controller"})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	want := fmt.Sprintf(`stork_extender_requests_total{result="ok",verb=%q} `, verb)
	for _, p := range pods.Items {
		for _, line := range strings.Split(httpGet(ctx, t, "http://"+p.Status.PodIP+":8080/metrics"), "\n") {
			if v, ok := strings.CutPrefix(line, want); ok {
				var f float64
				if _, err := fmt.Sscan(v, &f); err != nil {
					t.Fatalf("metrics of %s: %q: %v", p.Name, line, err)
				}
				sum += f
			}
		}
	}
	return sum
}

// moverPods records every data mover pod in Stork's namespace as last seen, until ctx ends.
func moverPods(ctx context.Context, t *testing.T, cs kubernetes.Interface) func() map[string]corev1.Pod {
	t.Helper()
	w, err := cs.CoreV1().Pods(harness.StorkNamespace).Watch(ctx, metav1.ListOptions{LabelSelector: csi.LabelMover + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]corev1.Pod{}
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				mu.Lock()
				seen[p.Name] = *p
				mu.Unlock()
			}
		}
	}()
	return func() map[string]corev1.Pod {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// waitBackupCompleted waits for Backup ns/name to complete and returns it.
func waitBackupCompleted(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string) *storkv1.Backup {
	t.Helper()
	bk := &storkv1.Backup{}
	err := c.WaitFor(ctx, 5*time.Minute, "Backup "+ns+"/"+name+" Completed", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bk); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if bk.Status.Phase == storkv1.BackupFailed || bk.Status.Phase == storkv1.BackupPartiallyFailed {
			return false, fmt.Errorf("backup %s: %+v", bk.Status.Phase, bk.Status)
		}
		return bk.Status.Phase == storkv1.BackupCompleted, nil
	})
	if err != nil {
		t.Fatalf("%v (status %+v)", err, bk.Status)
	}
	return bk
}

// testApp is a Deployment of the test application (hack/images/testapp) on claim data.
func testApp(ns string) *appsv1.Deployment {
	labels := map[string]string{"app": "shop"}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				// The kubelet gives the volume to the images' user's group where the volume's
				// driver lets it (the CSI driver's fsGroupPolicy File).
				SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](65532)},
				Containers: []corev1.Container{{Name: "app", Image: "stork-testapp:dev", ImagePullPolicy: corev1.PullIfNotPresent,
					Command:      []string{"/testapp", "run", "/data"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
			}}}}
}

// logTreeSum waits for the application of namespace ns to log the sum of its data, and
// returns it.
func logTreeSum(ctx context.Context, t *testing.T, c *harness.Cluster, kubectl func(*testing.T, ...string) string, ns string) string {
	t.Helper()
	var out string
	err := c.WaitFor(ctx, time.Minute, "the application in "+ns+" to log its data's sum", func(ctx context.Context) (bool, error) {
		out = kubectl(t, "-n", ns, "logs", "deployment/shop")
		return strings.Contains(out, "tree-sum "), nil
	})
	if err != nil {
		t.Fatalf("%v; logs:\n%s", err, out)
	}
	return treeSum(t, out)
}

// treeSum returns the testapp's "tree-sum" line in out.
func treeSum(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "tree-sum ") {
			return line
		}
	}
	t.Fatalf("no tree-sum line in:\n%s", out)
	return ""
}

func httpGet(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}
