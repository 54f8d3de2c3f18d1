package csi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/drivers"
)

// TestMoverGuards: work the driver must refuse, or stop, before a mover pod does harm or waits
// forever.
func TestMoverGuards(t *testing.T) {
	forbidPods := &interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*corev1.Pod); ok {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, obj.GetName(), errString("exceeded quota: pods=10"))
		}
		return c.Create(ctx, obj, opts...)
	}}
	for _, tc := range []struct {
		name   string
		funcs  *interceptor.Funcs
		setup  func(e *env)
		reason string
		msg    string
	}{
		{"a task of that name owned by something else is not adopted", nil, func(e *env) {
			e.create(&storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: exportTaskName(),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "someone-else"}}},
				Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskUpload, Driver: Name, VolumeName: "pv-db", SnapshotID: "snap",
					BackupLocation: "loc", AccessSecretName: "stork-access-of-another-namespace"}})
		}, "TaskConflict", "belongs to another object"},
		{"an access Secret made for another namespace is not mounted", nil, func(e *env) {
			update(e, &corev1.Secret{}, storkNS, accessName, func(s *corev1.Secret) { s.Labels[access.LabelFor] = "other" })
		}, "InvalidAccess", `for the work of namespace "other"`},
		{"a missing access Secret", nil, func(e *env) {
			if err := e.c.Delete(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: accessName}}); err != nil {
				t.Fatal(err)
			}
		}, "AccessSecretMissing", accessName},
		{"a pod refused by admission fails at once, with the API's reason", forbidPods, nil, "MoverRejected", "exceeded quota"},
		{"a volume with no storage class", nil, func(e *env) {
			update(e, &corev1.PersistentVolume{}, "", "pv-db", func(p *corev1.PersistentVolume) { p.Spec.StorageClassName = "" })
		}, "NoStorageClass", "pv-db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, tc.funcs, append(append(moverObjects(), readyTempSnapshot()), readyNode("a", zoneA)...)...)
			if tc.setup != nil {
				tc.setup(e)
			}
			wantStatus(t, e.export(), storkv1.VolumeFailed, tc.reason, tc.msg)
			if n := count(e, &corev1.PodList{}); n != 0 {
				t.Errorf("%d mover pods were made", n)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// A node-local volume's mover goes to its node, and nowhere else.
func TestMoverOfANodeLocalVolume(t *testing.T) {
	e := moverEnv(t, nil, append(readyNode("a", zoneA), readyNode("b", zoneA)...)...)
	update(e, &corev1.PersistentVolume{}, "", "pv-db", func(p *corev1.PersistentVolume) {
		p.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions = append(p.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions,
			in(corev1.LabelHostname, "b"))
	})
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "node b")
}

// A running mover whose node stopped reporting is deleted; the next attempt starts once it is
// gone, never while it still exists.
func TestMoverOnALostNode(t *testing.T) {
	e := moverEnv(t, map[string]string{ConfigMoverStartTimeout: "1m"}, readyNode("a", zoneA)...)
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "attempt 1 of 3")
	setStatus(e, &corev1.Pod{}, storkNS, exportPod(1), func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning })
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "Moving")
	setStatus(e, &corev1.Node{}, "", "a", func(n *corev1.Node) {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
			LastTransitionTime: metav1.NewTime(time.Now().Add(-2 * time.Minute))}}
	})
	e.export()
	if e.exists(&corev1.Pod{}, storkNS, exportPod(1)) {
		t.Fatal("the mover pod on the lost node was not deleted")
	}
}

// csi.moverFileAccess=all-files runs movers as root with only the capabilities their verb
// needs; the default is the restricted standard.
func TestMoverFileAccess(t *testing.T) {
	for _, tc := range []struct {
		access, verb string
		root         bool
		add          []corev1.Capability
	}{
		{"", "backup", false, nil},
		{"restricted", "restore", false, nil},
		{"all-files", "backup", true, []corev1.Capability{"DAC_READ_SEARCH"}},
		{"all-files", "restore", true, []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"}},
	} {
		t.Run(tc.access+"/"+tc.verb, func(t *testing.T) {
			e := newEnv(t, map[string]string{ConfigMoverFileAccess: tc.access}, nil)
			psc, sc := e.d.moverPodSecurity(), e.d.moverSecurity(tc.verb)
			if root := psc.RunAsUser != nil && *psc.RunAsUser == 0; root != tc.root {
				t.Errorf("runs as root: %v, want %v (%+v)", root, tc.root, psc)
			}
			if !tc.root && (psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.FSGroup == nil) {
				t.Errorf("restricted pod security %+v", psc)
			}
			if psc.SeccompProfile == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("container security %+v", sc)
			}
			if fmt.Sprint(sc.Capabilities.Add) != fmt.Sprint(tc.add) {
				t.Errorf("added capabilities %v, want %v", sc.Capabilities.Add, tc.add)
			}
		})
	}
	if _, err := parseConfig(map[string]string{ConfigMoverFileAccess: "root"}, ""); err == nil || !strings.Contains(err.Error(), ConfigMoverFileAccess) {
		t.Errorf("a bad %s gave %v", ConfigMoverFileAccess, err)
	}
}

// A restore into a class that provisions at once names a node of the target zone on its
// temporary claim, so that the volume lands there (zone mapping); with no such node it waits
// for healthy storage and makes no claim.
func TestImportPlacesImmediateVolumes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []client.Object
		node  string
	}{
		{"a node in the target zone", append(append(readyNode("b1", zoneB), readyNode("a2", zoneA)...), readyNode("a1", zoneA)...), "a1"},
		{"none in the target zone", readyNode("b1", zoneB), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil, append(moverObjects(), tc.nodes...)...)
			update(e, &storagev1.StorageClass{}, "", "gp3", func(c *storagev1.StorageClass) {
				c.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
			})
			st := e.imp()
			pvc := &corev1.PersistentVolumeClaim{}
			made := e.exists(pvc, storkNS, importTemp())
			if tc.node == "" {
				wantStatus(t, st, storkv1.VolumePending, drivers.ReasonNoHealthyStorage, "zone "+zoneA)
				if made {
					t.Error("a temporary claim was made with no node to place it")
				}
				return
			}
			if !made || pvc.Annotations[AnnSelectedNode] != tc.node {
				t.Fatalf("temporary claim made %v with annotations %v, want %s=%s", made, pvc.Annotations, AnnSelectedNode, tc.node)
			}
		})
	}
}

// Errors that every retry would meet are not waited on, and errors that may pass are not taken
// for answers.
func TestReadErrors(t *testing.T) {
	t.Run("a VolumeSnapshot that cannot be read for good fails the volume", func(t *testing.T) {
		objs, vols := volumes(ebs, "db")
		e := newEnv(t, map[string]string{ConfigSnapshotClasses: ebs + "=c"}, &interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*snapv1.VolumeSnapshot); ok {
					return apierrors.NewForbidden(schema.GroupResource{Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots"}, key.Name, errString("no"))
				}
				return c.Get(ctx, key, obj, opts...)
			}}, objs...)
		st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, st[0], storkv1.VolumeFailed, "SnapshotFailed", "forbidden")
	})
	t.Run("a Node that cannot be read is an error, not a node without storage", func(t *testing.T) {
		e := newEnv(t, nil, &interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Node); ok {
					return apierrors.NewServiceUnavailable("the API server is busy")
				}
				return c.Get(ctx, key, obj, opts...)
			}}, readyNode("a", zoneA)...)
		if nodes, err := e.d.StorageNodes(e.ctx); err == nil {
			t.Errorf("StorageNodes = %v with no error, want the Node's read error", nodes)
		}
	})
}
