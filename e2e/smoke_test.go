package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// TestSmoke brings up two independent clusters and MinIO, uses each, and tears everything down
// with no process left behind.
func TestSmoke(t *testing.T) {
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	zones := map[string][]string{"east": {"east-1a", "east-1b"}, "west": {"west-2a", "west-2b", "west-2c"}}
	var (
		mu       sync.Mutex
		clusters = map[string]*harness.Cluster{}
		store    *harness.MinIO
		g        errgroup.Group
	)
	for name, zs := range zones {
		g.Go(func() error {
			c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: name, Nodes: harness.Nodes(name, name, zs, 2)})
			mu.Lock()
			clusters[name] = c
			mu.Unlock()
			return err
		})
	}
	g.Go(func() (err error) {
		store, err = env.StartMinIO(ctx, "minio")
		return err
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	for name, c := range clusters {
		t.Run("cluster "+name, func(t *testing.T) {
			checkVersion(t, c)
			checkNodes(ctx, t, c, zones[name])
			createLocation(ctx, t, c, store)
			// Pin the pod to the last zone: the real scheduler must honour the topology labels.
			zone := zones[name][len(zones[name])-1]
			node := schedulePod(ctx, t, c, map[string]string{storkv1.LabelZone: zone})
			if !slices.Contains(nodesInZone(ctx, t, c, zone), node) {
				t.Errorf("pod was bound to %s, which is not in zone %s", node, zone)
			}
		})
	}
	// The two clusters are independent: an object made in one is not in the other.
	var east, west storkv1.BackupLocationList
	if err := clusters["east"].Client.List(ctx, &east, client.InNamespace("stork-smoke")); err != nil {
		t.Fatal(err)
	}
	if err := clusters["west"].Client.List(ctx, &west, client.InNamespace("stork-smoke")); err != nil {
		t.Fatal(err)
	}
	if len(east.Items) != 1 || len(west.Items) != 1 || east.Items[0].UID == west.Items[0].UID {
		t.Errorf("each cluster should hold its own BackupLocation: east %d, west %d", len(east.Items), len(west.Items))
	}

	t.Run("minio put and get", func(t *testing.T) { putGet(ctx, t, store) })

	root := env.Root
	if err := env.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if left := harness.ProcessesUnder(root); len(left) > 0 {
		t.Fatalf("processes left after teardown: %v", left)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("harness root %s still exists after teardown (err %v)", root, err)
	}
}

func checkVersion(t *testing.T, c *harness.Cluster) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("asking the server version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("kube-apiserver reports %q, want v1.37.2 (version ldflags of hack/testbin.sh)", v.GitVersion)
	}
}

func checkNodes(ctx context.Context, t *testing.T, c *harness.Cluster, zones []string) {
	t.Helper()
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(zones); len(nodes.Items) != want {
		t.Fatalf("cluster %s has %d nodes, want %d", c.Name, len(nodes.Items), want)
	}
	for _, n := range nodes.Items {
		if !slices.Contains(zones, n.Labels[storkv1.LabelZone]) || n.Labels[storkv1.LabelRack] == "" {
			t.Errorf("node %s has topology labels %v", n.Name, n.Labels)
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
		}
		if !ready {
			t.Errorf("node %s is not Ready: %v", n.Name, n.Status.Conditions)
		}
	}
}

func nodesInZone(ctx context.Context, t *testing.T, c *harness.Cluster, zone string) []string {
	t.Helper()
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes, client.MatchingLabels{storkv1.LabelZone: zone}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	return names
}

func createLocation(ctx context.Context, t *testing.T, c *harness.Cluster, m *harness.MinIO) {
	t.Helper()
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "stork-smoke"}})
	createLocationIn(ctx, t, c, m, "stork-smoke")
	got := &storkv1.BackupLocation{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "stork-smoke", Name: "minio"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.AccessMode != storkv1.AccessReadWrite || got.Spec.SyncPeriod == nil || got.Spec.SyncPeriod.Duration != time.Minute {
		t.Errorf("defaults not applied by the CRD schema: accessMode %q, syncPeriod %v", got.Spec.AccessMode, got.Spec.SyncPeriod)
	}
}

// createLocationIn makes BackupLocation ns/minio on m's bucket, with its Secrets.
func createLocationIn(ctx context.Context, t *testing.T, c *harness.Cluster, m *harness.MinIO, ns string) {
	t.Helper()
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minio"},
			StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "key"},
			StringData: map[string]string{"passphrase": "correct horse battery staple"}},
		&storkv1.BackupLocation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minio"},
			Spec: storkv1.BackupLocationSpec{
				URL:                    "s3://" + m.Bucket + "/" + c.Name,
				S3:                     &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
				CredentialsSecretRef:   &storkv1.SecretReference{Name: "minio"},
				EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"},
			},
		},
	}
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatalf("cluster %s: creating %T %s: %v", c.Name, o, o.GetName(), err)
		}
	}
}

// schedulePod creates a plain pod and returns the node kube-scheduler bound it to.
func schedulePod(ctx context.Context, t *testing.T, c *harness.Cluster, nodeSelector map[string]string) string {
	t.Helper()
	node, err := c.SchedulePod(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "stork-smoke", Name: "plain"},
		Spec: corev1.PodSpec{
			NodeSelector: nodeSelector,
			Containers:   []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func putGet(ctx context.Context, t *testing.T, m *harness.MinIO) {
	t.Helper()
	want := bytes.Repeat([]byte("stork smoke test\n"), 4096)
	if _, err := m.Client.PutObject(ctx, m.Bucket, "smoke/object.txt", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("putting an object into MinIO: %v", err)
	}
	obj, err := m.Client.GetObject(ctx, m.Bucket, "smoke/object.txt", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("getting the object back: %v", err)
	}
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading the object back: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("object read back from MinIO differs: %d bytes, want %d", len(got), len(want))
	}
}
