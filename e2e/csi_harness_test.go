package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/internal/harness"
)

// TestCSIHarness shows that the harness runs a working CSI control plane: the real
// csi-provisioner, csi-snapshotter and snapshot-controller against the test plugin, whose
// volumes are directories. A claim is provisioned in a zone, its data snapshotted and restored
// into a new claim, a claim waiting for its first consumer is provisioned in the zone of the
// node its pod was scheduled to, and an injected snapshot failure reaches the VolumeSnapshot.
func TestCSIHarness(t *testing.T) {
	harness.RequireCSIBinaries(t)
	ctx := context.Background()
	env := harness.New(t)
	zones := []string{"zone-a", "zone-b"}
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "csi", Nodes: harness.Nodes("c", "r1", zones, 1)})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	csi, err := c.StartCSI(ctx, harness.CSIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CSI control plane up in %s", time.Since(began).Round(time.Millisecond))
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})

	// A claim of the immediate class: provisioned at once, in one of the nodes' zones.
	data := csiClaim("data", csi.ImmediateClass, nil)
	mustCreate(t, c, data)
	pv := waitClaimBound(t, c, data)
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != csi.Driver {
		t.Fatalf("PV %s is not a volume of %s: %+v", pv.Name, csi.Driver, pv.Spec.PersistentVolumeSource)
	}
	if z := pvZone(pv, csi.TopologyKey); !slices.Contains(zones, z) {
		t.Fatalf("PV %s has zone %q in its node affinity (%+v), want one of %v", pv.Name, z, pv.Spec.NodeAffinity, zones)
	}
	handle := pv.Spec.CSI.VolumeHandle
	writeString(t, filepath.Join(csi.VolumeDir(handle), "hello.txt"), "hello from data")

	// A snapshot in the default class: ready, with the data as it was.
	snap := csiVolumeSnapshot("data-1", "data", nil)
	if err := c.Client.Create(ctx, snap); err != nil {
		t.Fatal(err)
	}
	waitVolumeSnapshotReady(t, c, csi, snap)
	writeString(t, filepath.Join(csi.VolumeDir(handle), "hello.txt"), "changed after the snapshot")
	var content snapshotv1.VolumeSnapshotContent
	if err := c.Client.Get(ctx, client.ObjectKey{Name: *snap.Status.BoundVolumeSnapshotContentName}, &content); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, filepath.Join(csi.Plugin.SnapshotDir(*content.Status.SnapshotHandle), "hello.txt")); got != "hello from data" {
		t.Fatalf("snapshot data %q", got)
	}

	// A claim from the snapshot: a new volume with the snapshot's data.
	restored := csiClaim("restored", csi.ImmediateClass, &corev1.TypedLocalObjectReference{
		APIGroup: ptr.To(snapshotv1.GroupName), Kind: "VolumeSnapshot", Name: snap.Name})
	mustCreate(t, c, restored)
	rpv := waitClaimBound(t, c, restored)
	if rpv.Spec.CSI.VolumeHandle == handle {
		t.Fatalf("restored claim bound to the source volume %s", handle)
	}
	if got := readString(t, filepath.Join(csi.VolumeDir(rpv.Spec.CSI.VolumeHandle), "hello.txt")); got != "hello from data" {
		t.Fatalf("restored data %q, want the snapshot's", got)
	}

	// A claim waiting for its first consumer: provisioned in the zone of the pod's node.
	late := csiClaim("late", csi.WFFCClass, nil)
	mustCreate(t, c, late)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "consumer"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{csi.TopologyKey: "zone-b"},
			Containers:   []corev1.Container{{Name: "app", Image: "app"}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: late.Name}}}},
		},
	}
	mustCreate(t, c, pod)
	if z := pvZone(waitClaimBound(t, c, late), csi.TopologyKey); z != "zone-b" {
		t.Fatalf("claim of a pod in zone-b provisioned in zone %q", z)
	}

	// A snapshot of the failing class: the plugin's error reaches the VolumeSnapshot.
	failing := csiVolumeSnapshot("data-failing", "data", &csi.FailingSnapshotClass)
	if err := c.Client.Create(ctx, failing); err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, time.Minute, "VolumeSnapshot data-failing to report its error", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(failing), failing); err != nil {
			return false, err
		}
		e := failing.Status
		return e != nil && e.Error != nil && e.Error.Message != nil && strings.Contains(*e.Error.Message, harness.FailingSnapshotMessage), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ready := failing.Status.ReadyToUse; ready != nil && *ready {
		t.Fatalf("failing snapshot is ready: %+v", failing.Status)
	}
	t.Logf("failing snapshot reports: %s", *failing.Status.Error.Message)
}

func csiClaim(name, class string, source *corev1.TypedLocalObjectReference) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Mi")}},
			DataSource:       source,
		},
	}
}

func csiVolumeSnapshot(name, claim string, class *string) *snapshotv1.VolumeSnapshot {
	return &snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: snapshotv1.VolumeSnapshotSpec{
			Source:                  snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(claim)},
			VolumeSnapshotClassName: class,
		},
	}
}

// waitBound waits for a claim to be bound and returns its volume.
func waitClaimBound(t *testing.T, c *harness.Cluster, pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	t.Helper()
	err := c.WaitFor(context.Background(), time.Minute, "claim "+pvc.Name+" to be bound", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return false, err
		}
		return pvc.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{}
	if err := c.Client.Get(context.Background(), client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		t.Fatal(err)
	}
	return pv
}

func waitVolumeSnapshotReady(t *testing.T, c *harness.Cluster, csi *harness.CSI, s *snapshotv1.VolumeSnapshot) {
	t.Helper()
	err := c.WaitFor(context.Background(), time.Minute, "VolumeSnapshot "+s.Name+" to be ready", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return false, err
		}
		if st := s.Status; st != nil && st.Error != nil && st.Error.Message != nil {
			return false, fmt.Errorf("VolumeSnapshot %s failed: %s", s.Name, *st.Error.Message)
		}
		return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pvZone is the value of key that a PV's node affinity requires ("" if none).
func pvZone(pv *corev1.PersistentVolume, key string) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == key && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	return ""
}

func writeString(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
