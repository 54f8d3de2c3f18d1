package csi

import (
	"context"
	"errors"
	"strings"
	"testing"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

const snapID = "snap-uid-1"

// volumes are claims appNS/<name> bound to PVs pv-<name> of driver, as objects and as the
// volumes of a request.
func volumes(driver string, claims ...string) ([]client.Object, []drivers.Volume) {
	var objs []client.Object
	var vols []drivers.Volume
	for _, c := range claims {
		pv, pvc := csiPV("pv-"+c, driver, c, term(in(ebsZone, zoneA))), boundClaim(c, "pv-"+c)
		objs = append(objs, pv, pvc)
		vols = append(vols, drivers.Volume{Claim: pvc.DeepCopy(), PV: pv.DeepCopy()})
	}
	return objs, vols
}

func snapshotReq(vols []drivers.Volume) drivers.SnapshotRequest {
	return drivers.SnapshotRequest{ID: snapID, Namespace: appNS, Volumes: vols}
}

func TestSnapshotMakesOneVolumeSnapshotPerVolume(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     map[string]string
		classes []client.Object
		want    string
	}{
		{"class mapped in config", map[string]string{ConfigSnapshotClasses: ebs + "=mapped"},
			[]client.Object{snapshotClass("default", ebs, true)}, "mapped"},
		{"the driver's single default class", nil,
			[]client.Object{snapshotClass("other-driver", rbd, true), snapshotClass("plain", ebs, false), snapshotClass("default", ebs, true)}, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, vols := volumes(ebs, "db", "logs")
			e := newEnv(t, tc.cfg, nil, append(objs, tc.classes...)...)
			for call := 1; call <= 2; call++ {
				st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
				if err != nil {
					t.Fatal(err)
				}
				if len(st) != 2 {
					t.Fatalf("%d statuses", len(st))
				}
				for i, s := range st {
					v := vols[i]
					if s.VolumeName != v.PV.Name || s.Phase != storkv1.VolumeInProgress || s.Reason != "WaitingForSnapshotController" ||
						s.SnapshotID != snapshotName(snapID, v.PV.Name) {
						t.Errorf("call %d: status of %s: %+v", call, v.PV.Name, s)
					}
					vs := &snapv1.VolumeSnapshot{}
					e.get(vs, appNS, s.SnapshotID)
					if ptr.Deref(vs.Spec.Source.PersistentVolumeClaimName, "") != v.Claim.Name || ptr.Deref(vs.Spec.VolumeSnapshotClassName, "") != tc.want {
						t.Errorf("VolumeSnapshot spec %+v", vs.Spec)
					}
					if vs.Labels[LabelSnapshot] != snapID || vs.Labels[LabelClaim] != v.Claim.Name {
						t.Errorf("VolumeSnapshot labels %v", vs.Labels)
					}
				}
			}
			if n := count(e, &snapv1.VolumeSnapshotList{}); n != 2 {
				t.Errorf("%d VolumeSnapshots after two calls, want 2", n)
			}
		})
	}
}

// A volume whose claim is gone (only its PV is known) is snapshotted through the PV's claimRef.
func TestSnapshotOfAVolumeWithoutItsClaim(t *testing.T) {
	objs, vols := volumes(ebs, "db")
	vols[0].Claim = nil
	e := newEnv(t, map[string]string{ConfigSnapshotClasses: ebs + "=c"}, nil, objs...)
	st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
	if err != nil || st[0].Phase != storkv1.VolumeInProgress {
		t.Fatalf("Snapshot = %+v, %v", st, err)
	}
	vs := &snapv1.VolumeSnapshot{}
	e.get(vs, appNS, st[0].SnapshotID)
	if ptr.Deref(vs.Spec.Source.PersistentVolumeClaimName, "") != "db" {
		t.Errorf("source %+v", vs.Spec.Source)
	}
}

func TestSnapshotRefusesVolumesItDoesNotOwn(t *testing.T) {
	objs, vols := volumes(ebs, "db")
	e := newEnv(t, map[string]string{ConfigExclude: ebs}, nil, objs...)
	if _, err := e.d.Snapshot(e.ctx, snapshotReq(vols)); !errors.Is(err, drivers.ErrNotOwned) {
		t.Fatalf("Snapshot = %v, want ErrNotOwned", err)
	}
	if n := count(e, &snapv1.VolumeSnapshotList{}); n != 0 {
		t.Errorf("%d VolumeSnapshots made", n)
	}
}

func TestSnapshotWithoutAClass(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classes []client.Object
		want    []string
	}{
		{"no class", []client.Object{snapshotClass("rbd", rbd, true)}, []string{"it has none"}},
		{"no default class", []client.Object{snapshotClass("a", ebs, false)}, []string{"it has a, none of them default"}},
		{"two default classes", []client.Object{snapshotClass("a", ebs, true), snapshotClass("b", ebs, true)}, []string{"2 default", "a, b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, vols := volumes(ebs, "db", "logs")
			e := newEnv(t, nil, nil, append(objs, tc.classes...)...)
			st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				if s.Phase != storkv1.VolumeFailed || s.Reason != "NoSnapshotClass" {
					t.Errorf("status %+v", s)
				}
				for _, w := range append([]string{ebs, ConfigSnapshotClasses}, tc.want...) {
					if !strings.Contains(s.Message, w) {
						t.Errorf("message %q does not say %q", s.Message, w)
					}
				}
			}
			if n := count(e, &snapv1.VolumeSnapshotList{}); n != 0 {
				t.Errorf("%d VolumeSnapshots made", n)
			}
		})
	}
}

// The volumes of each CSI driver get their own class; one driver without a class fails only its
// volumes.
func TestSnapshotOfSeveralDrivers(t *testing.T) {
	ebsObjs, ebsVols := volumes(ebs, "db")
	rbdObjs, rbdVols := volumes(rbd, "cache")
	e := newEnv(t, map[string]string{ConfigGroupSnapshots: "off"}, nil, append(append(ebsObjs, rbdObjs...), snapshotClass("ebs", ebs, true))...)
	st, err := e.d.Snapshot(e.ctx, snapshotReq([]drivers.Volume{rbdVols[0], ebsVols[0]}))
	if err != nil {
		t.Fatal(err)
	}
	if st[0].VolumeName != "pv-cache" || st[0].Phase != storkv1.VolumeFailed || !strings.Contains(st[0].Message, rbd) {
		t.Errorf("rbd volume: %+v", st[0])
	}
	if st[1].VolumeName != "pv-db" || st[1].Phase != storkv1.VolumeInProgress {
		t.Errorf("ebs volume: %+v", st[1])
	}
}

func TestSnapshotStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status *snapv1.VolumeSnapshotStatus
		phase  storkv1.VolumePhase
		reason string
		size   int64
		msg    string
	}{
		{"no status", nil, storkv1.VolumeInProgress, "WaitingForSnapshotController", 0, "not bound"},
		{"bound, not ready", &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To("c"), ReadyToUse: ptr.To(false)},
			storkv1.VolumeInProgress, "WaitingForReadyToUse", 0, "not ReadyToUse"},
		{"ready", &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To("c"), ReadyToUse: ptr.To(true), RestoreSize: ptr.To(resource.MustParse("5Gi"))},
			storkv1.VolumeSucceeded, "", 5 << 30, ""},
		{"ready without a size", &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To("c"), ReadyToUse: ptr.To(true)},
			storkv1.VolumeSucceeded, "", 0, ""},
		{"error", &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("quota exceeded for snapshots")}},
			storkv1.VolumeFailed, "SnapshotFailed", 0, "quota exceeded for snapshots"},
		{"error without a message", &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{}},
			storkv1.VolumeFailed, "SnapshotFailed", 0, "failed without a message"},
		{"an old error on a ready snapshot", &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To("c"), ReadyToUse: ptr.To(true),
			Error: &snapv1.VolumeSnapshotError{Message: ptr.To("transient")}}, storkv1.VolumeSucceeded, "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, vols := volumes(ebs, "db")
			name := snapshotName(snapID, "pv-db")
			vs := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
				Spec:   snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("db")}},
				Status: tc.status}
			e := newEnv(t, map[string]string{ConfigSnapshotClasses: ebs + "=c"}, nil, append(objs, vs)...)
			st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
			if err != nil {
				t.Fatal(err)
			}
			s := st[0]
			if s.Phase != tc.phase || s.Reason != tc.reason || s.SizeBytes != tc.size || s.SnapshotID != name || s.VolumeName != "pv-db" ||
				!strings.Contains(s.Message, tc.msg) || (tc.msg == "" && s.Message != "") {
				t.Errorf("status %+v, want phase %s reason %q size %d message with %q", s, tc.phase, tc.reason, tc.size, tc.msg)
			}
		})
	}
}

func TestSnapshotCreateErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		retry  bool
		reason string
	}{
		{"transient", apierrors.NewServiceUnavailable("etcd is down"), true, ""},
		{"timeout", apierrors.NewTimeoutError("slow", 1), true, ""},
		{"no VolumeSnapshot API", noMatch("VolumeSnapshot"), false, "SnapshotAPIMissing"},
		{"forbidden", apierrors.NewForbidden(snapv1.Resource("volumesnapshots"), "x", errors.New("no")), false, "SnapshotFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, vols := volumes(ebs, "db")
			funcs := &interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*snapv1.VolumeSnapshot); ok {
					return tc.err
				}
				return c.Create(ctx, obj, opts...)
			}}
			e := newEnv(t, map[string]string{ConfigSnapshotClasses: ebs + "=c"}, funcs, objs...)
			st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
			if tc.retry {
				if err == nil {
					t.Fatalf("Snapshot = %+v, want the error to retry", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := st[0]; s.Phase != storkv1.VolumeFailed || s.Reason != tc.reason || s.VolumeName != "pv-db" || s.Message == "" {
				t.Errorf("status %+v, want Failed %s", s, tc.reason)
			}
		})
	}
}

func TestDeleteSnapshot(t *testing.T) {
	vs, vsc := readySnapshotPair(appNS, "snap", "db", ebs)
	e := newEnv(t, nil, nil, vs, vsc)
	ref := drivers.SnapshotRef{Namespace: appNS, VolumeName: "pv-db", SnapshotID: "snap"}
	done, err := e.d.DeleteSnapshot(e.ctx, ref)
	if err != nil || done {
		t.Fatalf("first DeleteSnapshot = %v, %v; want not done yet", done, err)
	}
	if e.exists(&snapv1.VolumeSnapshot{}, appNS, "snap") {
		t.Error("the VolumeSnapshot was not deleted")
	}
	if done, err := e.d.DeleteSnapshot(e.ctx, ref); err != nil || !done {
		t.Fatalf("DeleteSnapshot of a deleted snapshot = %v, %v", done, err)
	}
	if done, err := e.d.DeleteSnapshot(e.ctx, drivers.SnapshotRef{Namespace: appNS}); err != nil || !done {
		t.Fatalf("DeleteSnapshot without an ID = %v, %v", done, err)
	}

	// No snapshot API: nothing to delete.
	funcs := &interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*snapv1.VolumeSnapshot); ok {
			return noMatch("VolumeSnapshot")
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	e = newEnv(t, nil, funcs)
	if done, err := e.d.DeleteSnapshot(e.ctx, ref); err != nil || !done {
		t.Fatalf("DeleteSnapshot without the API = %v, %v", done, err)
	}
}

// --- group snapshots ---

// groupEnv has claims db and logs of ebs, a default VolumeGroupSnapshotClass for ebs and a
// default VolumeSnapshotClass.
func groupEnv(t *testing.T, cfg map[string]string, claims ...string) (*env, []drivers.Volume) {
	objs, vols := volumes(ebs, claims...)
	objs = append(objs, groupClass("grp", ebs, true), groupClass("rbd-grp", rbd, true), snapshotClass("snap", ebs, true))
	return newEnv(t, cfg, nil, objs...), vols
}

// reread gives the volumes' claims as the API server has them now, as a controller's cache would.
func (e *env) reread(vols []drivers.Volume) []drivers.Volume {
	out := make([]drivers.Volume, len(vols))
	for i, v := range vols {
		pvc := &corev1.PersistentVolumeClaim{}
		e.get(pvc, v.Claim.Namespace, v.Claim.Name)
		out[i] = drivers.Volume{Claim: pvc, PV: v.PV}
	}
	return out
}

func TestGroupSnapshot(t *testing.T) {
	e, vols := groupEnv(t, nil, "db", "logs")
	group := objectName("stork-group", snapID, ebs)

	st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Phase != storkv1.VolumeInProgress || s.Reason != "WaitingForGroupSnapshot" {
			t.Errorf("status %+v", s)
		}
	}
	vgs := &groupv1.VolumeGroupSnapshot{}
	e.get(vgs, appNS, group)
	if sel := vgs.Spec.Source.Selector; sel == nil || len(sel.MatchLabels) != 1 || sel.MatchLabels[LabelGroup] != group {
		t.Errorf("group selector %+v", sel)
	}
	if ptr.Deref(vgs.Spec.VolumeGroupSnapshotClassName, "") != "grp" || vgs.Labels[LabelSnapshot] != snapID {
		t.Errorf("group %+v", vgs)
	}
	for _, v := range vols {
		pvc := &corev1.PersistentVolumeClaim{}
		e.get(pvc, appNS, v.Claim.Name)
		if pvc.Labels[LabelGroup] != group {
			t.Errorf("claim %s labels %v", pvc.Name, pvc.Labels)
		}
	}
	if n := count(e, &snapv1.VolumeSnapshotList{}); n != 0 {
		t.Errorf("%d individual VolumeSnapshots made", n)
	}

	// Not ready yet: still waiting, claims still labelled.
	st, err = e.d.Snapshot(e.ctx, snapshotReq(e.reread(vols)))
	if err != nil || st[0].Phase != storkv1.VolumeInProgress || st[1].Phase != storkv1.VolumeInProgress {
		t.Fatalf("Snapshot = %+v, %v", st, err)
	}
	if n := count(e, &groupv1.VolumeGroupSnapshotList{}); n != 1 {
		t.Errorf("%d VolumeGroupSnapshots, want 1", n)
	}

	// Cut: the snapshot-controller made a member per claim, owned by the group (and an
	// unrelated snapshot of the same claim that is not the group's).
	setStatus(e, vgs, appNS, group, func(g *groupv1.VolumeGroupSnapshot) {
		g.Status = &groupv1.VolumeGroupSnapshotStatus{ReadyToUse: ptr.To(true), BoundVolumeGroupSnapshotContentName: ptr.To("gc")}
	})
	owner := metav1.OwnerReference{APIVersion: groupv1.SchemeGroupVersion.String(), Kind: "VolumeGroupSnapshot", Name: group, UID: vgs.UID}
	for _, c := range []string{"db", "logs"} {
		m := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "member-" + c, OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(c)}}}
		e.create(m)
		setStatus(e, m, appNS, m.Name, func(m *snapv1.VolumeSnapshot) {
			m.Status = &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To("c-" + c), ReadyToUse: ptr.To(true), RestoreSize: ptr.To(resource.MustParse("1Gi"))}
		})
	}
	e.create(&snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "unrelated"},
		Spec: snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("db")}}})

	st, err = e.d.Snapshot(e.ctx, snapshotReq(e.reread(vols)))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []string{"db", "logs"} {
		if s := st[i]; s.Phase != storkv1.VolumeSucceeded || s.SnapshotID != "member-"+c || s.VolumeName != "pv-"+c || s.SizeBytes != 1<<30 {
			t.Errorf("status of %s: %+v", c, s)
		}
		pvc := &corev1.PersistentVolumeClaim{}
		e.get(pvc, appNS, c)
		if _, ok := pvc.Labels[LabelGroup]; ok {
			t.Errorf("claim %s keeps the group label", c)
		}
	}

	// Deleting one member's snapshot deletes the whole group.
	if done, err := e.d.DeleteSnapshot(e.ctx, drivers.SnapshotRef{Namespace: appNS, SnapshotID: "member-db"}); err != nil || done {
		t.Fatalf("DeleteSnapshot = %v, %v", done, err)
	}
	if e.exists(&groupv1.VolumeGroupSnapshot{}, appNS, group) {
		t.Error("the VolumeGroupSnapshot was not deleted with its member")
	}
	if e.exists(&snapv1.VolumeSnapshot{}, appNS, "member-db") {
		t.Error("the member was not deleted")
	}
	if !e.exists(&snapv1.VolumeSnapshot{}, appNS, "unrelated") {
		t.Error("an unrelated VolumeSnapshot was deleted")
	}
}

func TestGroupSnapshotOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  *groupv1.VolumeGroupSnapshotStatus
		members []string
		phase   []storkv1.VolumePhase
		reason  string
		msg     string
	}{
		{"group error fails every volume", &groupv1.VolumeGroupSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("consistency group failed")}},
			nil, []storkv1.VolumePhase{storkv1.VolumeFailed, storkv1.VolumeFailed}, "SnapshotFailed", "consistency group failed"},
		{"a claim missing from the group", &groupv1.VolumeGroupSnapshotStatus{ReadyToUse: ptr.To(true)},
			[]string{"db"}, []storkv1.VolumePhase{storkv1.VolumeSucceeded, storkv1.VolumeFailed}, "NotInGroup", "logs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, vols := groupEnv(t, nil, "db", "logs")
			group := objectName("stork-group", snapID, ebs)
			if _, err := e.d.Snapshot(e.ctx, snapshotReq(vols)); err != nil {
				t.Fatal(err)
			}
			vgs := &groupv1.VolumeGroupSnapshot{}
			setStatus(e, vgs, appNS, group, func(g *groupv1.VolumeGroupSnapshot) { g.Status = tc.status })
			for _, c := range tc.members {
				e.create(&snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "member-" + c,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "groupsnapshot.storage.k8s.io/v1", Kind: "VolumeGroupSnapshot", Name: group, UID: vgs.UID}}},
					Spec:   snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(c)}},
					Status: &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}})
			}
			st, err := e.d.Snapshot(e.ctx, snapshotReq(e.reread(vols)))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range st {
				if s.Phase != tc.phase[i] {
					t.Errorf("volume %d: %+v, want %s", i, s, tc.phase[i])
				}
				if s.Phase == storkv1.VolumeFailed && (s.Reason != tc.reason || !strings.Contains(s.Message, tc.msg)) {
					t.Errorf("volume %d: %+v, want %s with %q", i, s, tc.reason, tc.msg)
				}
			}
			for _, c := range []string{"db", "logs"} {
				pvc := &corev1.PersistentVolumeClaim{}
				e.get(pvc, appNS, c)
				if _, ok := pvc.Labels[LabelGroup]; ok {
					t.Errorf("claim %s keeps the group label", c)
				}
			}
		})
	}
}

func TestIndividualSnapshotsInsteadOfAGroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    map[string]string
		claims []string
		claim  bool // the volumes have their claims
	}{
		{"groupSnapshots=off", map[string]string{ConfigGroupSnapshots: "off"}, []string{"db", "logs"}, true},
		{"one volume", nil, []string{"db"}, true},
		{"a volume without its claim", nil, []string{"db", "logs"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, vols := groupEnv(t, tc.cfg, tc.claims...)
			if !tc.claim {
				vols[1].Claim = nil
			}
			st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				if s.Phase != storkv1.VolumeInProgress || s.Reason != "WaitingForSnapshotController" {
					t.Errorf("status %+v", s)
				}
			}
			if n := count(e, &groupv1.VolumeGroupSnapshotList{}); n != 0 {
				t.Errorf("%d VolumeGroupSnapshots made", n)
			}
			if n := count(e, &snapv1.VolumeSnapshotList{}); n != len(tc.claims) {
				t.Errorf("%d VolumeSnapshots, want %d", n, len(tc.claims))
			}
			if n := count(e, &corev1.PersistentVolumeClaimList{}, client.HasLabels{LabelGroup}); n != 0 {
				t.Errorf("%d claims labelled", n)
			}
		})
	}
}

// Without a usable VolumeGroupSnapshotClass (none, two defaults, or no group API) the volumes
// are snapshotted one by one.
func TestGroupSnapshotNeedsAClass(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classes []client.Object
		funcs   *interceptor.Funcs
	}{
		{"no default class", []client.Object{groupClass("grp", ebs, false), groupClass("rbd", rbd, true)}, nil},
		{"two default classes", []client.Object{groupClass("a", ebs, true), groupClass("b", ebs, true)}, nil},
		{"no group snapshot API", []client.Object{groupClass("grp", ebs, true)}, &interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*groupv1.VolumeGroupSnapshot); ok {
					return noMatch("VolumeGroupSnapshot")
				}
				return c.Get(ctx, key, obj, opts...)
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, vols := volumes(ebs, "db", "logs")
			e := newEnv(t, nil, tc.funcs, append(append(objs, snapshotClass("snap", ebs, true)), tc.classes...)...)
			st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
			if err != nil {
				t.Fatal(err)
			}
			if n := count(e, &snapv1.VolumeSnapshotList{}); n != 2 || st[0].SnapshotID == "" || st[1].SnapshotID == "" {
				t.Errorf("%d VolumeSnapshots, statuses %+v", n, st)
			}
		})
	}
}

func TestGroupSnapshotClassFromConfig(t *testing.T) {
	e, vols := groupEnv(t, map[string]string{ConfigGroupSnapshotClasses: ebs + "=mapped"}, "db", "logs")
	if _, err := e.d.Snapshot(e.ctx, snapshotReq(vols)); err != nil {
		t.Fatal(err)
	}
	vgs := &groupv1.VolumeGroupSnapshot{}
	e.get(vgs, appNS, objectName("stork-group", snapID, ebs))
	if ptr.Deref(vgs.Spec.VolumeGroupSnapshotClassName, "") != "mapped" {
		t.Errorf("class %v", vgs.Spec.VolumeGroupSnapshotClassName)
	}
}

// A group that never became ready (or failed) goes with the Snapshot: every volume's snapshot
// ID names the group until it has a member, and deleting that ID deletes the group.
func TestUnfinishedGroupIsDeleted(t *testing.T) {
	e, vols := groupEnv(t, nil, "db", "logs")
	group := objectName("stork-group", snapID, ebs)
	st, err := e.d.Snapshot(e.ctx, snapshotReq(vols))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.SnapshotID != groupIDPrefix+group {
			t.Fatalf("volume %s of an unfinished group has snapshot ID %q, want %q", s.VolumeName, s.SnapshotID, groupIDPrefix+group)
		}
	}
	ref := drivers.SnapshotRef{Namespace: appNS, SnapshotID: st[0].SnapshotID}
	if done, err := e.d.DeleteSnapshot(e.ctx, ref); err != nil || done {
		t.Fatalf("first delete: done %v, err %v; want the group's deletion started", done, err)
	}
	if e.exists(&groupv1.VolumeGroupSnapshot{}, appNS, group) {
		t.Fatal("the VolumeGroupSnapshot was not deleted")
	}
	if done, err := e.d.DeleteSnapshot(e.ctx, ref); err != nil || !done {
		t.Errorf("second delete: done %v, err %v; want done once the group is gone", done, err)
	}
}
