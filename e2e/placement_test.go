package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/deploy"
	"stork.dev/stork/drivers/local"
	"stork.dev/stork/drivers/longhorn"
	"stork.dev/stork/internal/certs"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/placement"
)

// TestPlacement runs the stork scheduler (kube-scheduler with the configuration of
// deploy/base/manifests/60-scheduler.yaml, pointed at the test's Stork) next to the cluster's own, the
// pod webhook of 50-webhook.yaml called by the real API server, Longhorn's objects under a
// minimal CRD, and local volumes with agents. The harness reports bound pods Running and
// finishes their deletion, as kubelets would; kube-controller-manager recreates evicted pods.
func TestPlacement(t *testing.T) {
	ctx := context.Background()
	env := harness.New(t)
	// p-zone-a-1 (rack-1), p-zone-a-2 (rack-2), p-zone-a-3 (rack-1), and the same in zone-b.
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "place", Nodes: harness.Nodes("p", "r1", []string{"zone-a", "zone-b"}, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	installLonghornCRDs(ctx, t, c)
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = env.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	extenderPort, webhookPort, metricsPort := ports[0], ports[1], ports[2]
	storkArgs := []string{"--drivers=local,longhorn",
		fmt.Sprintf("--extender-bind-address=127.0.0.1:%d", extenderPort), "--extender-cert-dir=" + filepath.Join(c.Dir, "extender-certs"),
		fmt.Sprintf("--webhook-port=%d", webhookPort), "--webhook-ips=127.0.0.1", "--webhook-cert-dir=" + filepath.Join(c.Dir, "webhook-certs"),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		"--monitor-probation=5s", "--monitor-interval=1s", "--monitor-batch-interval=1s", "--monitor-stale-after=90s"}
	stork, err := c.StartStork(ctx, storkArgs...)
	if err != nil {
		t.Fatal(err)
	}
	installWebhook(ctx, t, c, webhookPort)
	schedCfg, err := deploy.SchedulerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ext := extenderClient(ctx, t, c, extenderPort)
	// The stork scheduler reaches the extender at this test's Stork, with the client
	// certificate from the Secret it would mount.
	schedCfg = strings.Replace(schedCfg, "https://stork-extender.stork-system.svc:8099", ext.base, 1)
	schedCfg = strings.ReplaceAll(schedCfg, "/etc/stork-extender/", ext.certDir+"/")
	// The stork scheduler runs as its service account of 60-scheduler.yaml: that RBAC is tested too.
	schedKC, err := c.ServiceAccountKubeconfig(harness.StorkNamespace, "stork-scheduler")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartScheduler("stork-scheduler", schedCfg, schedKC); err != nil {
		t.Fatal(err)
	}
	c.RunPods()

	mustCreate(t, c, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "longhorn"}, Provisioner: longhorn.CSIDriver})
	mustCreate(t, c, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)})
	for _, ns := range []string{"longhorn-system", "shop"} {
		mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		setLonghornNode(ctx, t, c, n.Name, n.Labels[storkv1.LabelZone], true)
	}

	t.Run("RBAC: placement gets what it uses and no more", func(t *testing.T) {
		checkAccess(ctx, t, c, []access{
			{"stork", "create", "", "pods", "eviction", "shop", "x", true},
			{"stork", "delete", "", "pods", "", "shop", "x", false},
			{"stork", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "stork-pods", true},
			{"stork", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "someone-elses", false},
			{"stork", "create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "", false},
			{"stork", "patch", "", "secrets", "", harness.StorkNamespace, "stork-webhook-certs", true},
			{"stork", "delete", "", "secrets", "", "shop", "x", false},
			{"stork", "list", "longhorn.io", "replicas", "", "longhorn-system", "", true},
			{"stork", "update", "longhorn.io", "replicas", "", "longhorn-system", "x", false},
			{"stork", "patch", "", "persistentvolumes", "", "", "x", true},
			{"stork", "update", "", "persistentvolumes", "", "", "x", false},
			{"stork", "delete", "", "persistentvolumes", "", "", "x", true}, // restored ones only: admission policy stork-controller-volumes
			{"stork-scheduler", "create", "", "pods", "binding", "shop", "x", true},
			{"stork-scheduler", "list", "", "secrets", "", "shop", "", false},
			{"stork-scheduler", "update", "coordination.k8s.io", "leases", "", harness.StorkNamespace, "stork-scheduler", true},
			{"stork-scheduler", "update", "coordination.k8s.io", "leases", "", harness.StorkNamespace, "stork-controller.stork.dev", false},
		})
	})

	t.Run("the webhook sends pods with Stork volumes to the stork scheduler, which binds them to a replica node", func(t *testing.T) {
		longhornVolume(ctx, t, c, "vol-1", "data-1", "p-zone-a-2", "p-zone-b-3")
		waitLocated(ctx, t, c, ext, "data-1", "p-zone-a-2")
		node, pod := schedule(ctx, t, c, podUsing("reader", nil, "data-1"))
		if pod.Spec.SchedulerName != "stork" || pod.Annotations["stork.dev/scheduler-set"] == "" {
			t.Errorf("the webhook did not send the pod to the stork scheduler: schedulerName %q, annotations %v", pod.Spec.SchedulerName, pod.Annotations)
		}
		if node != "p-zone-a-2" && node != "p-zone-b-3" {
			t.Errorf("pod bound to %s, want a node with a replica (p-zone-a-2 or p-zone-b-3)", node)
		}
		// Pods without Stork volumes, and pods that opt out, keep the default scheduler.
		for _, p := range []*corev1.Pod{podUsing("plain", nil), podUsing("opted-out", map[string]string{"stork.dev/scheduler": "skip"}, "data-1")} {
			_, got := schedule(ctx, t, c, p)
			if got.Spec.SchedulerName != corev1.DefaultSchedulerName {
				t.Errorf("pod %s: schedulerName %q, want the default", p.Name, got.Spec.SchedulerName)
			}
		}
	})

	t.Run("when no replica node fits, the same rack, then zone, wins and an event says so", func(t *testing.T) {
		longhornVolume(ctx, t, c, "vol-2", "data-2", "p-zone-a-1")
		waitLocated(ctx, t, c, ext, "data-2", "p-zone-a-1")
		cordon(ctx, t, c, "p-zone-a-1", true)
		defer cordon(ctx, t, c, "p-zone-a-1", false)
		node, pod := schedule(ctx, t, c, podUsing("rack", nil, "data-2"))
		if node != "p-zone-a-3" || pod.Spec.SchedulerName != "stork" {
			t.Errorf("pod bound to %s by %s, want p-zone-a-3 (same rack and zone as the replica on cordoned p-zone-a-1) by stork", node, pod.Spec.SchedulerName)
		}
		waitEvent(ctx, t, c, "shop", "rack", "NoDataLocalNode")
	})

	t.Run("a Longhorn node fails: after probation the pod is evicted, once its PDB allows, to the healthy replica", func(t *testing.T) {
		longhornVolume(ctx, t, c, "vol-3", "data-3", "p-zone-a-2", "p-zone-b-2")
		waitLocated(ctx, t, c, ext, "data-3", "p-zone-b-2")
		labels := map[string]string{"app": "web"}
		mustCreate(t, c, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(0)), Selector: &metav1.LabelSelector{MatchLabels: labels}}})
		mustCreate(t, c, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podUsing("", nil, "data-3").Spec}}})
		first := waitPod(ctx, t, c, labels, "")
		other := map[string]string{"p-zone-a-2": "p-zone-b-2", "p-zone-b-2": "p-zone-a-2"}[first.Spec.NodeName]
		if other == "" {
			t.Fatalf("web's pod bound to %s, want a replica node", first.Spec.NodeName)
		}
		setLonghornNode(ctx, t, c, first.Spec.NodeName, "", false)
		defer setLonghornNode(ctx, t, c, first.Spec.NodeName, "", true)
		waitEvent(ctx, t, c, "shop", first.Name, "EvictionBlocked")
		still := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(first), still); err != nil || still.DeletionTimestamp != nil {
			t.Fatalf("the PodDisruptionBudget did not hold the pod: %v, %+v", err, still.DeletionTimestamp)
		}
		if err := c.Client.Delete(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}); err != nil {
			t.Fatal(err)
		}
		moved := waitPod(ctx, t, c, labels, string(first.UID))
		if moved.Spec.NodeName != other {
			t.Errorf("recreated pod bound to %s, want %s, the node with the healthy replica", moved.Spec.NodeName, other)
		}
		waitEvent(ctx, t, c, "shop", first.Name, "Evicted")
	})

	// Local volumes: three storage nodes with agents, so that one failing is not a partition.
	agents := map[string]*harness.Process{}
	for _, n := range []string{"p-zone-a-1", "p-zone-a-3", "p-zone-b-1"} {
		if agents[n], err = c.StartAgent(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	var db *corev1.Pod
	t.Run("a local volume's storage fails: its latest backup is restored in the zone, the claim repointed, the pod moved", func(t *testing.T) {
		mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "key"}, StringData: map[string]string{"passphrase": "placement test key"}})
		mustCreate(t, c, &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bucket"},
			Spec: storkv1.BackupLocationSpec{URL: "file://" + filepath.Join(c.Dir, "bucket"), EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}}})
		vol := makeLocalVolume(t, c, "shop", "data-db-0", "p-zone-a-1", map[string]string{"app": "db"})
		writeTree(t, vol, 7, 1<<20)
		want := t.TempDir() + "/want"
		copyTree(t, vol, want)
		orig := optIntoFailover(ctx, t, c)
		snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-nightly"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-db-0"}, BackupLocation: "bucket"}}
		mustCreate(t, c, snap)
		backup := &storkv1.Backup{}
		if err := c.WaitFor(ctx, 2*time.Minute, "the Backup of db-nightly", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "db-nightly"}, backup)
			return err == nil && backup.Status.Phase == storkv1.BackupCompleted, client.IgnoreNotFound(err)
		}); err != nil {
			t.Fatal(err)
		}
		// Written after the backup: the restored copy is the backup's point in time, not this.
		writeTree(t, vol, 8, 1<<10)

		labels := map[string]string{"app": "db-pod"}
		mustCreate(t, c, dbStatefulSet(labels))
		first := waitPod(ctx, t, c, labels, "")
		if first.Spec.NodeName != "p-zone-a-1" || first.Spec.SchedulerName != "stork" {
			t.Fatalf("db-0 bound to %s by %s, want p-zone-a-1 by stork", first.Spec.NodeName, first.Spec.SchedulerName)
		}

		// The storage of p-zone-a-1 fails: its agent stops reporting.
		if err := agents["p-zone-a-1"].Kill(); err != nil {
			t.Fatal(err)
		}
		// Stork is killed once the failover has started, and restarted: it carries on from the
		// state on the old volume.
		if err := c.WaitFor(ctx, 2*time.Minute, "the failover of data-db-0 to start", func(ctx context.Context) (bool, error) {
			pv := &corev1.PersistentVolume{}
			err := c.Client.Get(ctx, client.ObjectKey{Name: orig.Spec.VolumeName}, pv)
			return err == nil && pv.Annotations[placement.AnnotationFailoverPhase] != "", err
		}); err != nil {
			t.Fatal(err)
		}
		if err := stork.Kill(); err != nil {
			t.Fatal(err)
		}
		if stork, err = c.StartStork(ctx, storkArgs...); err != nil {
			t.Fatal(err)
		}
		var rs storkv1.Restore
		if err := c.WaitFor(ctx, 3*time.Minute, "the failover of data-db-0 to finish", func(ctx context.Context) (bool, error) {
			var list storkv1.RestoreList
			if err := c.Client.List(ctx, &list, client.InNamespace("shop"), client.MatchingLabels{placement.LabelFailoverOf: string(orig.UID)}); err != nil || len(list.Items) == 0 {
				return false, err
			}
			rs = list.Items[0]
			if p := rs.Annotations[placement.AnnotationFailoverPhase]; p == placement.FailoverFailed {
				return false, fmt.Errorf("failover failed: %+v", rs.Status)
			}
			return rs.Annotations[placement.AnnotationFailoverPhase] == placement.FailoverDone, nil
		}); err != nil {
			t.Fatalf("%v\nstork log:\n%s", err, stork.LogTail(40))
		}
		if rs.Spec.Source.BackupName != "db-nightly" || len(rs.Status.Volumes) != 1 || rs.Status.Volumes[0].Node != "p-zone-a-3" {
			t.Errorf("failover Restore: source %q, volumes %+v; want db-nightly restored on p-zone-a-3 (the healthy node of zone-a)", rs.Spec.Source.BackupName, rs.Status.Volumes)
		}
		if !strings.Contains(rs.Annotations[placement.AnnotationFailedOver], "db-nightly") {
			t.Errorf("the Restore does not say what was restored: %q", rs.Annotations[placement.AnnotationFailedOver])
		}
		db = waitPod(ctx, t, c, labels, string(first.UID))
		if db.Spec.NodeName != "p-zone-a-3" {
			t.Errorf("db-0 recreated on %s, want p-zone-a-3 where its data was restored", db.Spec.NodeName)
		}
		now := &corev1.PersistentVolumeClaim{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "data-db-0"}, now); err != nil {
			t.Fatal(err)
		}
		pv := &corev1.PersistentVolume{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: now.Spec.VolumeName}, pv); err != nil {
			t.Fatal(err)
		}
		if local.VolumeNode(pv) != "p-zone-a-3" {
			t.Errorf("data-db-0 bound to %s on %s, want a volume on p-zone-a-3", pv.Name, local.VolumeNode(pv))
		}
		compareTrees(t, want, local.VolumePath(pv))
		old := &corev1.PersistentVolume{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: orig.Spec.VolumeName}, old); err != nil || old.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			t.Errorf("the old volume must be kept for its data: %v, %+v", err, old.Spec.PersistentVolumeReclaimPolicy)
		}
		waitEvent(ctx, t, c, "shop", "data-db-0", "FailedOver")
	})

	t.Run("a partition (every storage node silent) evicts nothing", func(t *testing.T) {
		if db == nil {
			t.Skip("needs the failed-over pod")
		}
		for _, n := range []string{"p-zone-a-3", "p-zone-b-1"} {
			if err := agents[n].Kill(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WaitFor(ctx, time.Minute, "every local StorageNode to be Unknown", func(ctx context.Context) (bool, error) {
			var list storkv1.StorageNodeList
			if err := c.Client.List(ctx, &list); err != nil {
				return false, err
			}
			for _, sn := range list.Items {
				if sn.Spec.Driver == local.Name && sn.Status.Health != storkv1.StorageUnknown {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		// Three probations: had the monitor acted, it would have by now.
		time.Sleep(15 * time.Second)
		still := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(db), still); err != nil || still.UID != db.UID || still.DeletionTimestamp != nil {
			t.Fatalf("db-0 was moved during a partition: %v", err)
		}
		var restores storkv1.RestoreList
		if err := c.Client.List(ctx, &restores, client.InNamespace("shop")); err != nil {
			t.Fatal(err)
		}
		if len(restores.Items) != 1 {
			t.Errorf("%d Restores, want only the first failover's", len(restores.Items))
		}
		metrics := scrape(t, metricsPort)
		if !strings.Contains(metrics, `stork_monitor_paused{driver="local",reason="partition_suspected"} 1`) {
			t.Errorf("the monitor does not say it paused:\n%s", grepLines(metrics, "stork_monitor"))
		}
		for _, want := range []string{`stork_monitor_evictions_total{driver="local",result="evicted"}`, `stork_extender_requests_total{result="ok",verb="filter"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metric %s missing:\n%s", want, grepLines(metrics, "stork_"))
			}
		}
	})
}

// extender is how the test reaches Stork's extender: as the stork scheduler does, over TLS with
// the scheduler's client certificate, whose files (with the CA's certificate) are in certDir.
type extender struct {
	base    string
	certDir string
	client  *http.Client
}

// extenderClient waits for the Secret stork-extender-certs the controller makes, writes the
// scheduler's files from it as its Deployment mounts them, and checks that the extender refuses
// a client without that certificate.
func extenderClient(ctx context.Context, t *testing.T, c *harness.Cluster, port int) extender {
	t.Helper()
	sec := &corev1.Secret{}
	err := c.WaitFor(ctx, time.Minute, "Secret stork-extender-certs", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: harness.StorkNamespace, Name: "stork-extender-certs"}, sec)
		return err == nil, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.Dir, "stork-scheduler-extender")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{certs.KeyCACert, certs.KeyClientCert, certs.KeyClientKey} {
		if err := os.WriteFile(filepath.Join(dir, k), sec.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(sec.Data[certs.KeyCACert])
	pair, err := tls.X509KeyPair(sec.Data[certs.KeyClientCert], sec.Data[certs.KeyClientKey])
	if err != nil {
		t.Fatal(err)
	}
	tlsFor := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
			ServerName: "stork-extender." + harness.StorkNamespace + ".svc", Certificates: certs}}}
	}
	e := extender{base: fmt.Sprintf("https://127.0.0.1:%d", port), certDir: dir, client: tlsFor([]tls.Certificate{pair})}
	// Without the scheduler's certificate, nothing is answered.
	err = c.WaitFor(ctx, time.Minute, "the extender to listen", func(ctx context.Context) (bool, error) {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := tlsFor(nil).Post(e.base+placement.FilterPath, "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Errorf("the extender answered a request without a client certificate: %s", resp.Status)
	}
	return e
}

// waitLocated waits until Stork's extender, asked as kube-scheduler asks it, ranks node first for
// a pod using the claim, above a node it knows nothing of: its informers have seen the volume's
// replicas.
func waitLocated(ctx context.Context, t *testing.T, c *harness.Cluster, ext extender, claim, node string) {
	t.Helper()
	body, err := json.Marshal(&extenderv1.ExtenderArgs{Pod: podUsing("probe", nil, claim), NodeNames: &[]string{node, "no-such-node"}})
	if err != nil {
		t.Fatal(err)
	}
	var last string
	if err := c.WaitFor(ctx, time.Minute, "the extender to locate "+claim+" on "+node, func(ctx context.Context) (bool, error) {
		resp, err := ext.client.Post(ext.base+placement.PrioritizePath, "application/json", bytes.NewReader(body))
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		var got extenderv1.HostPriorityList
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			return false, nil
		}
		last = fmt.Sprint(got)
		return len(got) == 2 && got[0].Score == extenderv1.MaxExtenderPriority && got[1].Score < got[0].Score, nil
	}); err != nil {
		t.Fatalf("%v (last answer %s)", err, last)
	}
}

// installLonghornCRDs creates the minimal Longhorn CRDs of drivers/longhorn and waits for them.
func installLonghornCRDs(ctx context.Context, t *testing.T, c *harness.Cluster) {
	t.Helper()
	crds, err := longhorn.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		mustCreate(t, c, crd)
		if err := c.WaitFor(ctx, time.Minute, "CRD "+crd.Name, func(ctx context.Context) (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// installWebhook creates the webhook configuration of deploy/base/manifests, pointed at the test's
// Stork by URL, and waits for Stork to fill in its CA bundle.
func installWebhook(ctx context.Context, t *testing.T, c *harness.Cluster, port int) {
	t.Helper()
	objs, err := deploy.Manifests()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for i := range hooks {
			h := hooks[i].(map[string]any)
			h["clientConfig"] = map[string]any{"url": fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", port)}
		}
		if err := unstructured.SetNestedSlice(o.Object, hooks, "webhooks"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, c, o)
		if err := c.WaitFor(ctx, time.Minute, "the webhook's CA bundle", func(ctx context.Context) (bool, error) {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
				return false, err
			}
			hooks, _, _ := unstructured.NestedSlice(got.Object, "webhooks")
			bundle, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
			return bundle != "", nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// setLonghornNode writes a Longhorn Node with its Ready condition (zone "" keeps the zone).
func setLonghornNode(ctx context.Context, t *testing.T, c *harness.Cluster, name, zone string, ready bool) {
	t.Helper()
	n := &unstructured.Unstructured{}
	n.SetAPIVersion("longhorn.io/v1beta2")
	n.SetKind("Node")
	key := client.ObjectKey{Namespace: "longhorn-system", Name: name}
	if err := c.Client.Get(ctx, key, n); err != nil {
		n.SetNamespace(key.Namespace)
		n.SetName(key.Name)
		n.Object["spec"] = map[string]any{"allowScheduling": true}
		if err := c.Client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if zone == "" {
		zone, _, _ = unstructured.NestedString(n.Object, "status", "zone")
	}
	status, msg := "True", ""
	if !ready {
		status, msg = "False", "Kubelet is not ready on "+name
	}
	n.Object["status"] = map[string]any{"region": "r1", "zone": zone, "conditions": []any{
		map[string]any{"type": "Ready", "status": status, "message": msg},
		map[string]any{"type": "Schedulable", "status": "True"},
	}}
	if err := c.Client.Status().Update(ctx, n); err != nil {
		t.Fatalf("writing the status of Longhorn node %s: %v", name, err)
	}
}

// longhornVolume makes a Longhorn volume with running replicas on nodes, a PersistentVolume of
// driver.longhorn.io for it and a claim in shop bound to it.
func longhornVolume(ctx context.Context, t *testing.T, c *harness.Cluster, volume, claim string, nodes ...string) {
	t.Helper()
	obj := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetAPIVersion("longhorn.io/v1beta2")
		u.SetKind(kind)
		u.SetNamespace("longhorn-system")
		u.SetName(name)
		return u
	}
	mustCreate(t, c, obj("Volume", volume, map[string]any{"numberOfReplicas": int64(len(nodes))}))
	for i, n := range nodes {
		r := obj("Replica", fmt.Sprintf("%s-r-%d", volume, i), map[string]any{"volumeName": volume, "nodeID": n})
		mustCreate(t, c, r)
		r.Object["status"] = map[string]any{"currentState": "stopped"} // detached until a pod uses it
		if err := c.Client.Status().Update(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	size := resource.MustParse("1Gi")
	mustCreate(t, c, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: volume}, Spec: corev1.PersistentVolumeSpec{
		Capacity: corev1.ResourceList{corev1.ResourceStorage: size}, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: "longhorn", PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: "shop", Name: claim},
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: volume}}}})
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: claim}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To("longhorn"), VolumeName: volume,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}}}}
	mustCreate(t, c, pvc)
	if err := c.WaitFor(ctx, time.Minute, "claim "+claim+" to bind", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, err
	}); err != nil {
		t.Fatal(err)
	}
}

// optIntoFailover annotates claim shop/data-db-0 for failover and returns it as it was.
func optIntoFailover(ctx context.Context, t *testing.T, c *harness.Cluster) *corev1.PersistentVolumeClaim {
	t.Helper()
	claim := &corev1.PersistentVolumeClaim{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "data-db-0"}, claim); err != nil {
		t.Fatal(err)
	}
	orig := claim.DeepCopy()
	claim.Annotations = map[string]string{placement.AnnotationFailover: "true"}
	if err := c.Client.Patch(ctx, claim, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	return orig
}

// dbStatefulSet is StatefulSet shop/db of one replica whose claim data-db-0 (template "data",
// storage class local) the test made beforehand, bound to a local volume.
func dbStatefulSet(labels map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To(int32(1)), ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podUsing("", nil, "data").Spec},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To("local"),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}},
	}}
}

// podUsing is a pod in shop that mounts the claims (no scheduler name: the webhook decides).
func podUsing(name string, annotations map[string]string, claims ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
	for _, cl := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: cl, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: cl}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: cl, MountPath: "/" + cl})
	}
	return p
}

// schedule creates the pod and returns the node it is bound to and the pod as admitted.
func schedule(ctx context.Context, t *testing.T, c *harness.Cluster, pod *corev1.Pod) (string, *corev1.Pod) {
	t.Helper()
	node, err := c.SchedulePod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	return node, pod
}

// waitPod waits for a bound pod with the labels other than the one with UID not.
func waitPod(ctx context.Context, t *testing.T, c *harness.Cluster, labels map[string]string, not string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	if err := c.WaitFor(ctx, 2*time.Minute, fmt.Sprintf("a bound pod with labels %v", labels), func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.InNamespace("shop"), client.MatchingLabels(labels)); err != nil {
			return false, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if string(p.UID) != not && p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
				found = p
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// waitEvent waits for an event with the reason about the named object.
func waitEvent(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name, reason string) {
	t.Helper()
	var seen []string
	if err := c.WaitFor(ctx, time.Minute, fmt.Sprintf("event %s on %s/%s", reason, ns, name), func(ctx context.Context) (bool, error) {
		var evs eventsv1.EventList
		if err := c.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			seen = append(seen, e.Regarding.Name+":"+e.Reason)
			if e.Regarding.Name == name && e.Reason == reason {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("%v; events: %v", err, seen)
	}
}

func cordon(ctx context.Context, t *testing.T, c *harness.Cluster, node string, on bool) {
	t.Helper()
	n := &corev1.Node{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		t.Fatal(err)
	}
	orig := n.DeepCopy()
	n.Spec.Unschedulable = on
	if err := c.Client.Patch(ctx, n, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
