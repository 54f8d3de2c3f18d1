package csi

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// Names shared by the tests.
const (
	storkNS = "stork-system"
	appNS   = "app"
	ebs     = "ebs.csi.aws.com"
	rbd     = "rbd.csi.ceph.com"
	zoneA   = "us-east-1a"
	zoneB   = "us-east-1b"
	ebsZone = "topology.ebs.csi.aws.com/zone"
)

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	utilruntime.Must(snapv1.AddToScheme(s))
	utilruntime.Must(groupv1.AddToScheme(s))
	return s
}

// env is a driver on a fake API server.
type env struct {
	t   *testing.T
	ctx context.Context
	c   client.WithWatch
	d   *Driver
}

// newEnv makes a driver with config cfg on a fake client holding objs. The fake client stamps a
// UID and a creation time on created objects, as the API server does; funcs, if set, intercept
// the calls (after the stamping, for Create).
func newEnv(t *testing.T, cfg map[string]string, funcs *interceptor.Funcs, objs ...client.Object) *env {
	t.Helper()
	f := interceptor.Funcs{}
	if funcs != nil {
		f = *funcs
	}
	var n atomic.Int64
	inner := f.Create
	f.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		switch _, task := obj.(*storkv1.VolumeTask); {
		case obj.GetUID() != "":
		case task:
			// Predictable, for the names of mover pods (taskUID of the task's name).
			obj.SetUID(taskUID(obj.GetName()))
		default:
			obj.SetUID(types.UID(fmt.Sprintf("uid-%s-%d", obj.GetName(), n.Add(1))))
		}
		if ts := obj.GetCreationTimestamp(); ts.IsZero() {
			obj.SetCreationTimestamp(metav1.Now())
		}
		if inner != nil {
			return inner(ctx, c, obj, opts...)
		}
		return c.Create(ctx, obj, opts...)
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&storkv1.VolumeTask{}, &storkv1.Backup{}, &storkv1.Restore{}, &snapv1.VolumeSnapshot{}, &snapv1.VolumeSnapshotContent{},
			&groupv1.VolumeGroupSnapshot{}, &corev1.Pod{}, &corev1.PersistentVolume{}, &corev1.PersistentVolumeClaim{}, &corev1.Node{}).
		WithInterceptorFuncs(f).Build()
	d, err := New(drivers.Options{Client: c, APIReader: c, Namespace: storkNS, Config: cfg, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: context.Background(), c: c, d: d}
}

// get reads ns/name into o, failing the test on any error.
func (e *env) get(o client.Object, ns, name string) {
	e.t.Helper()
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, o); err != nil {
		e.t.Fatalf("reading %T %s/%s: %v", o, ns, name, err)
	}
}

// exists reports whether ns/name of o's kind exists.
func (e *env) exists(o client.Object, ns, name string) bool {
	e.t.Helper()
	err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, o)
	if err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatalf("reading %T %s/%s: %v", o, ns, name, err)
	}
	return err == nil
}

// create creates objects, failing the test on error.
func (e *env) create(objs ...client.Object) {
	e.t.Helper()
	for _, o := range objs {
		if err := e.c.Create(e.ctx, o); err != nil {
			e.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// setStatus reads ns/name into o, lets change edit it and writes its status.
func setStatus[T client.Object](e *env, o T, ns, name string, change func(T)) {
	e.t.Helper()
	e.get(o, ns, name)
	change(o)
	if err := e.c.Status().Update(e.ctx, o); err != nil {
		e.t.Fatalf("writing the status of %T %s/%s: %v", o, ns, name, err)
	}
}

// update reads ns/name into o, lets change edit it and writes it.
func update[T client.Object](e *env, o T, ns, name string, change func(T)) {
	e.t.Helper()
	e.get(o, ns, name)
	change(o)
	if err := e.c.Update(e.ctx, o); err != nil {
		e.t.Fatalf("updating %T %s/%s: %v", o, ns, name, err)
	}
}

func count(e *env, list client.ObjectList, opts ...client.ListOption) int {
	e.t.Helper()
	if err := e.c.List(e.ctx, list, opts...); err != nil {
		e.t.Fatal(err)
	}
	return meta.LenList(list)
}

func noMatch(kind string) error {
	return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: snapv1.GroupName, Kind: kind}, SearchedVersions: []string{"v1"}}
}

// in is a node selector requirement key In values.
func in(key string, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}
}

func term(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: reqs}
}

// csiPV is a bound PersistentVolume of a CSI driver, of claim appNS/claim, 10Gi of class gp3,
// with terms as its required node affinity.
func csiPV(name, driver, claim string, terms ...corev1.NodeSelectorTerm) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              "gp3",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: "vol-" + name}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
	}
	if claim != "" {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: appNS, Name: claim, UID: types.UID("uid-claim-" + claim)}
	}
	if len(terms) > 0 {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: terms}}
	}
	return pv
}

// boundClaim is claim appNS/name bound to pv.
func boundClaim(name, pv string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name, UID: types.UID("uid-claim-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pv, StorageClassName: ptr.To("gp3"),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
}

// testNode is a node in zone with its Ready condition ready ("" for none).
func testNode(name, zone string, ready corev1.ConditionStatus) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	if zone != "" {
		n.Labels[storkv1.LabelZone] = zone
		n.Labels[storkv1.LabelRegion] = "us-east-1"
	}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Message: "kubelet says " + string(ready)}}
	}
	return n
}

// testCSINode is a node's CSINode with csiDrivers registered.
func testCSINode(name string, csiDrivers ...string) *storagev1.CSINode {
	cn := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, d := range csiDrivers {
		cn.Spec.Drivers = append(cn.Spec.Drivers, storagev1.CSINodeDriver{Name: d, NodeID: name})
	}
	return cn
}

func snapshotClass(name, driver string, isDefault bool) *snapv1.VolumeSnapshotClass {
	c := &snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Driver: driver, DeletionPolicy: snapv1.VolumeSnapshotContentDelete}
	if isDefault {
		c.Annotations = map[string]string{AnnDefaultSnapshotClass: "true"}
	}
	return c
}

func groupClass(name, driver string, isDefault bool) *groupv1.VolumeGroupSnapshotClass {
	c := &groupv1.VolumeGroupSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Driver: driver, DeletionPolicy: snapv1.VolumeSnapshotContentDelete}
	if isDefault {
		c.Annotations = map[string]string{AnnDefaultGroupClass: "true"}
	}
	return c
}

// readySnapshotPair is a ReadyToUse VolumeSnapshot ns/name of claim, bound to content (with a
// snapshot handle) of the same name plus "-content".
func readySnapshotPair(ns, name, claim, driver string) (*snapv1.VolumeSnapshot, *snapv1.VolumeSnapshotContent) {
	content := name + "-content"
	vs := &snapv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec:       snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(claim)}, VolumeSnapshotClassName: ptr.To("csi-snap")},
		Status: &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To(content), ReadyToUse: ptr.To(true),
			RestoreSize: ptr.To(resource.MustParse("12Gi"))},
	}
	vsc := &snapv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: content},
		Spec: snapv1.VolumeSnapshotContentSpec{
			VolumeSnapshotRef: corev1.ObjectReference{Namespace: ns, Name: name, UID: vs.UID},
			DeletionPolicy:    snapv1.VolumeSnapshotContentDelete, Driver: driver, VolumeSnapshotClassName: ptr.To("csi-snap"),
			Source: snapv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("vol-1")},
		},
		Status: &snapv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("snap-handle-" + name), ReadyToUse: ptr.To(true)},
	}
	return vs, vsc
}
