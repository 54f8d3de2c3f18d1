package csi

import (
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

const restoreID = "restore-uid/db"

func restoreReq(target string) drivers.RestoreRequest {
	return drivers.RestoreRequest{ID: restoreID, Namespace: appNS,
		Owner:  &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Restore", Name: "rs", UID: "restore-uid"},
		Source: drivers.SnapshotRef{Namespace: appNS, VolumeName: "pv-db", SnapshotID: "snap"}, TargetNamespace: target, TargetClaim: "db-copy",
		SizeBytes: 10 << 30, StorageClassName: "gp3"}
}

func TestRestoreInTheSnapshotsNamespace(t *testing.T) {
	vs, vsc := readySnapshotPair(appNS, "snap", "db", ebs)
	e := newEnv(t, nil, nil, vs, vsc)
	st, err := e.d.Restore(e.ctx, restoreReq(appNS))
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != storkv1.VolumeSucceeded || st.DataSource == nil || st.DataSource.Kind != "VolumeSnapshot" || st.DataSource.Name != "snap" ||
		ptr.Deref(st.DataSource.APIGroup, "") != snapv1.GroupName || st.SizeBytes != 12<<30 {
		t.Fatalf("Restore = %+v (DataSource %+v)", st, st.DataSource)
	}
	if n := count(e, &snapv1.VolumeSnapshotList{}); n != 1 {
		t.Errorf("%d VolumeSnapshots, want only the source", n)
	}
	if n := count(e, &snapv1.VolumeSnapshotContentList{}); n != 1 {
		t.Errorf("%d VolumeSnapshotContents, want only the source's", n)
	}
}

func TestRestoreIntoAnotherNamespace(t *testing.T) {
	vs, vsc := readySnapshotPair(appNS, "snap", "db", ebs)
	vsc.Spec.SourceVolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
	e := newEnv(t, nil, nil, vs, vsc)
	name := objectName("stork-restore", restoreID)

	for call := 1; call <= 2; call++ {
		st, err := e.d.Restore(e.ctx, restoreReq("other"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != storkv1.VolumeInProgress || st.DataSource != nil {
			t.Fatalf("call %d: Restore = %+v, want in progress without a DataSource", call, st)
		}
	}

	content := &snapv1.VolumeSnapshotContent{}
	e.get(content, "", name)
	if content.Spec.DeletionPolicy != snapv1.VolumeSnapshotContentRetain || ptr.Deref(content.Spec.Source.SnapshotHandle, "") != "snap-handle-snap" ||
		content.Spec.Source.VolumeHandle != nil || content.Spec.Driver != ebs || ptr.Deref(content.Spec.VolumeSnapshotClassName, "") != "csi-snap" ||
		ptr.Deref(content.Spec.SourceVolumeMode, "") != corev1.PersistentVolumeFilesystem {
		t.Errorf("VolumeSnapshotContent spec %+v", content.Spec)
	}
	if ref := content.Spec.VolumeSnapshotRef; ref.Namespace != "other" || ref.Name != name || ref.Kind != "VolumeSnapshot" {
		t.Errorf("volumeSnapshotRef %+v", ref)
	}
	cp := &snapv1.VolumeSnapshot{}
	e.get(cp, "other", name)
	if ptr.Deref(cp.Spec.Source.VolumeSnapshotContentName, "") != name || cp.Spec.Source.PersistentVolumeClaimName != nil {
		t.Errorf("VolumeSnapshot source %+v", cp.Spec.Source)
	}
	for _, o := range []client.Object{content, cp} {
		wantWork(t, o, "Restore", appNS, "rs", "restore-uid")
		if a := o.GetAnnotations()[AnnForClaim]; a != "other/db-copy" {
			t.Errorf("%T: %s=%q", o, AnnForClaim, a)
		}
	}
	if n := count(e, &snapv1.VolumeSnapshotContentList{}); n != 2 {
		t.Errorf("%d VolumeSnapshotContents after two calls, want 2", n)
	}

	// Bound and ready: the copy is the DataSource; its size is the source's when it has none.
	setStatus(e, cp, "other", name, func(v *snapv1.VolumeSnapshot) {
		v.Status = &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To(name), ReadyToUse: ptr.To(true)}
	})
	st, err := e.d.Restore(e.ctx, restoreReq("other"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != storkv1.VolumeSucceeded || st.DataSource == nil || st.DataSource.Name != name || st.DataSource.Kind != "VolumeSnapshot" ||
		st.SizeBytes != 12<<30 || st.SnapshotID != "snap" {
		t.Fatalf("Restore = %+v (DataSource %+v)", st, st.DataSource)
	}
	setStatus(e, cp, "other", name, func(v *snapv1.VolumeSnapshot) { v.Status.RestoreSize = ptr.To(resource.MustParse("11Gi")) })
	if st, _ := e.d.Restore(e.ctx, restoreReq("other")); st.SizeBytes != 11<<30 {
		t.Errorf("size %d, want the copy's", st.SizeBytes)
	}
}

// wantWork checks the marks of a temporary of a Backup or Restore.
func wantWork(t *testing.T, o client.Object, kind, ns, name, uid string) {
	t.Helper()
	a := o.GetAnnotations()
	if o.GetLabels()[LabelTemporary] != "true" || a[AnnWorkKind] != kind || a[AnnWorkNamespace] != ns || a[AnnWorkName] != name || a[AnnWorkUID] != uid {
		t.Errorf("%T %s: labels %v annotations %v, want a temporary of %s %s/%s (%s)", o, o.GetName(), o.GetLabels(), a, kind, ns, name, uid)
	}
}

func TestRestoreOfAnUnusableSnapshot(t *testing.T) {
	ready, content := readySnapshotPair(appNS, "snap", "db", ebs)
	for _, tc := range []struct {
		name   string
		objs   func() []client.Object
		target string
		phase  storkv1.VolumePhase
		reason string
	}{
		{"source gone", func() []client.Object { return nil }, "other", storkv1.VolumeFailed, "SnapshotNotFound"},
		{"source gone, same namespace", func() []client.Object { return nil }, appNS, storkv1.VolumeFailed, "SnapshotNotFound"},
		{"source failed", func() []client.Object {
			vs := ready.DeepCopy()
			vs.Status = &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("boom")}}
			return []client.Object{vs}
		}, "other", storkv1.VolumeFailed, "SnapshotFailed"},
		{"source not ready", func() []client.Object {
			vs := ready.DeepCopy()
			vs.Status.ReadyToUse = ptr.To(false)
			return []client.Object{vs, content.DeepCopy()}
		}, "other", storkv1.VolumePending, "WaitingForReadyToUse"},
		{"source's content gone", func() []client.Object { return []client.Object{ready.DeepCopy()} }, "other", storkv1.VolumeFailed, "SnapshotNotFound"},
		{"source's content without a handle", func() []client.Object {
			c := content.DeepCopy()
			c.Status.SnapshotHandle = nil
			return []client.Object{ready.DeepCopy(), c}
		}, "other", storkv1.VolumeFailed, "SnapshotNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil, tc.objs()...)
			st, err := e.d.Restore(e.ctx, restoreReq(tc.target))
			if err != nil {
				t.Fatal(err)
			}
			if st.Phase != tc.phase || st.Reason != tc.reason || st.DataSource != nil || st.Message == "" {
				t.Errorf("Restore = %+v, want %s %s", st, tc.phase, tc.reason)
			}
			if tc.reason == "SnapshotNotFound" && !strings.Contains(st.Message, "snap") {
				t.Errorf("message %q does not name the snapshot", st.Message)
			}
			if n := count(e, &snapv1.VolumeSnapshotList{}, client.InNamespace("other")); n != 0 {
				t.Errorf("%d VolumeSnapshots made in the target namespace", n)
			}
		})
	}
}
