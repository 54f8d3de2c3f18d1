package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

const (
	foNS = monNS
	// foUID is the UID of claim "data"; failover names carry its first 8 characters.
	foUID = "0123abcd-1111-4222-8333-444455556666"
	// foRestorePrefix and foTempPrefix start the names of a failover of "data"; the attempt's
	// time follows.
	foRestorePrefix = "failover-data-0123abcd-"
	foTempPrefix    = "data-failover-0123abcd-"
)

// foT0 is when the newest test backup started.
var foT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// foClaim is claim "data", bound to pv-old, with what the API server and the volume binder add.
func foClaim(optIn bool) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: foNS, Name: "data", UID: foUID,
			Labels: map[string]string{"app": "db"},
			Annotations: map[string]string{
				"keep":                                             "me",
				"pv.kubernetes.io/bind-completed":                  "yes",
				"pv.kubernetes.io/bound-by-controller":             "yes",
				"volume.kubernetes.io/selected-node":               "n1",
				"volume.kubernetes.io/storage-provisioner":         fake.Name,
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
			}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("local"),
			VolumeName:       "pv-old",
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if optIn {
		c.Annotations[AnnotationFailover] = "true"
	}
	return c
}

// foPV is a volume of the fake driver bound to a claim of namespace app.
func foPV(name, claim string, uid types.UID) *corev1.PersistentVolume {
	pv := fake.PV(name, 1<<30)
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: foNS, Name: claim, UID: uid}
	pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	pv.Spec.StorageClassName = "local"
	pv.Status.Phase = corev1.VolumeBound
	return pv
}

// foOldPV is pv-old, claim data's volume on n1, annotated with ann.
func foOldPV(ann map[string]string) *corev1.PersistentVolume {
	pv := foPV("pv-old", "data", foUID)
	pv.Annotations = ann
	return pv
}

func foClass(optIn bool) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: fake.Name}
	if optIn {
		sc.Annotations = map[string]string{AnnotationFailover: "true"}
	}
	return sc
}

// foBackup is a Backup in namespace ns that started age before foT0.
func foBackup(ns, name string, phase storkv1.BackupPhase, age time.Duration, vols ...storkv1.BackupVolume) *storkv1.Backup {
	b := &storkv1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       storkv1.BackupSpec{SnapshotName: name, BackupLocation: "s3"},
		Status:     storkv1.BackupStatus{Phase: phase, Volumes: vols},
	}
	b.Status.StartTime = &metav1.Time{Time: foT0.Add(-age)}
	return b
}

// foBackupCreated is a finished Backup of "data" made age before foT0, without a start time.
func foBackupCreated(name string, age time.Duration) *storkv1.Backup {
	b := foBackup(foNS, name, storkv1.BackupCompleted, 0, foHeld("data"))
	b.Status.StartTime = nil
	b.CreationTimestamp = metav1.NewTime(foT0.Add(-age))
	return b
}

// foHeld is a backup's copy of a claim that a restore can use.
func foHeld(claim string) storkv1.BackupVolume {
	return storkv1.BackupVolume{ClaimName: claim, Phase: storkv1.VolumeSucceeded, RepositorySnapshotID: "repo-" + claim}
}

// foBackups are the newest usable backup of "data" (b-new), an older one, and newer ones that
// must never be chosen.
func foBackups() []client.Object {
	imported := foBackup(foNS, "b-imported", storkv1.BackupCompleted, time.Minute, foHeld("data"))
	imported.Status.Imported = true // another cluster's claim "data"
	return []client.Object{
		foBackup(foNS, "b-old", storkv1.BackupCompleted, 2*time.Hour, foHeld("data")),
		foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data"), foHeld("logs")),
		foBackup(foNS, "b-failed", storkv1.BackupFailed, 10*time.Minute, foHeld("data")),
		foBackup(foNS, "b-in-progress", storkv1.BackupInProgress, 9*time.Minute, foHeld("data")),
		foBackup(foNS, "b-other-claim", storkv1.BackupCompleted, 5*time.Minute, foHeld("logs")),
		foBackup(foNS, "b-upload-failed", storkv1.BackupCompleted, 4*time.Minute,
			storkv1.BackupVolume{ClaimName: "data", Phase: storkv1.VolumeFailed, Message: "upload failed"}),
		foBackup(foNS, "b-not-in-repository", storkv1.BackupCompleted, 3*time.Minute,
			storkv1.BackupVolume{ClaimName: "data", Phase: storkv1.VolumeSucceeded}),
		imported,
		foBackup("elsewhere", "b-other-namespace", storkv1.BackupCompleted, time.Minute, foHeld("data")),
	}
}

// foUnusableBackups are foBackups without the usable ones.
func foUnusableBackups() []client.Object {
	var out []client.Object
	for _, o := range foBackups() {
		if n := o.GetName(); n != "b-old" && n != "b-new" {
			out = append(out, o)
		}
	}
	return out
}

// foEnv is a Failover over a fake client that, like an API server, gives what it creates a UID
// and refuses to get an object without a name; the fake driver's storage on n1 is down.
type foEnv struct {
	t    *testing.T
	ctx  context.Context
	c    client.Client
	f    *Failover
	ev   *eventLog
	d    *fake.Driver
	dis  *discarder
	view *View
}

// discarder is the fake driver with drivers.Discarder: it records what it was asked to remove.
type discarder struct {
	*fake.Driver
	got []drivers.DiscardRequest
}

func (d *discarder) Discard(_ context.Context, req drivers.DiscardRequest) (drivers.VolumeStatus, error) {
	d.got = append(d.got, req)
	return drivers.VolumeStatus{VolumeName: "pv-new", Phase: storkv1.VolumeSucceeded, Reason: drivers.ReasonDiscarded, Message: "removed"}, nil
}

func newFoEnv(t *testing.T, objs ...client.Object) *foEnv {
	t.Helper()
	var uids atomic.Int64
	c := fakeclient.NewClientBuilder().WithScheme(monScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&storkv1.Restore{}, &corev1.PersistentVolumeClaim{}).
		WithIndex(&corev1.PersistentVolume{}, IndexPreboundClaim, PreboundClaim).
		WithIndex(&corev1.Pod{}, "spec.nodeName", podNodeName).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if obj.GetUID() == "" {
					obj.SetUID(types.UID(fmt.Sprintf("created-uid-%d", uids.Add(1))))
				}
				return c.Create(ctx, obj, opts...)
			},
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if key.Name == "" {
					return errors.New("resource name may not be empty") // as client-go says
				}
				return c.Get(ctx, key, obj, opts...)
			},
		}).
		Build()
	d := fake.New(1)
	for _, n := range []string{"n1", "n2", "n3"} {
		h := storkv1.StorageHealthy
		if n == "n1" {
			h = storkv1.StorageDown
		}
		d.SetNode(drivers.StorageNode{Node: n, Topology: storkv1.Topology{Zone: "zone-a"}, Health: h, LastSeen: time.Now()})
	}
	view := NewView(drivers.NewSet(d), logr.Discard())
	ctx := context.Background()
	view.Refresh(ctx)
	ev := &eventLog{}
	dis := &discarder{Driver: d}
	return &foEnv{t: t, ctx: ctx, c: c, ev: ev, d: d, dis: dis, view: view,
		f: &Failover{Client: c, Reader: c, View: view, Drivers: drivers.NewSet(dis), Recorder: ev, Log: logr.Discard()}}
}

// nodeBack has n1's storage come back.
func (e *foEnv) nodeBack() {
	e.d.SetNode(drivers.StorageNode{Node: "n1", Topology: storkv1.Topology{Zone: "zone-a"}, Health: storkv1.StorageHealthy, LastSeen: time.Now()})
	e.view.Refresh(e.ctx)
}

// step is the monitor's Step for a claim of the fake driver on n1.
func (e *foEnv) step(pod *corev1.Pod, claim string) (failoverState, bool) {
	e.t.Helper()
	state, started, err := e.f.Step(e.ctx, pod, claim, fake.Name, "n1")
	if err != nil {
		e.t.Fatalf("Step: %v", err)
	}
	return state, started
}

func (e *foEnv) expectStep(what string, pod *corev1.Pod, want failoverState, wantStarted bool) {
	e.t.Helper()
	if state, started := e.step(pod, "data"); state != want || started != wantStarted {
		e.t.Errorf("%s: Step is %v (started %v), want %v (started %v)", what, state, started, want, wantStarted)
	}
}

func (e *foEnv) restores() []storkv1.Restore {
	e.t.Helper()
	var list storkv1.RestoreList
	if err := e.c.List(e.ctx, &list); err != nil {
		e.t.Fatal(err)
	}
	return list.Items
}

// restore returns the only Restore.
func (e *foEnv) restore() *storkv1.Restore {
	e.t.Helper()
	rs := e.restores()
	if len(rs) != 1 {
		e.t.Fatalf("%d Restores, want 1", len(rs))
	}
	return &rs[0]
}

func (e *foEnv) reconcile(rs *storkv1.Restore) ctrl.Result {
	e.t.Helper()
	res, err := e.f.Reconcile(e.ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rs)})
	if err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
	return res
}

// get reads an object of namespace app (or a volume) and reports whether it exists.
func (e *foEnv) get(name string, obj client.Object) bool {
	e.t.Helper()
	ns := foNS
	if _, ok := obj.(*corev1.PersistentVolume); ok {
		ns = ""
	}
	err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true
}

// pvOld reads pv-old, the failover's state.
func (e *foEnv) pvOld() *corev1.PersistentVolume {
	e.t.Helper()
	pv := &corev1.PersistentVolume{}
	if !e.get("pv-old", pv) {
		e.t.Fatal("pv-old is gone")
	}
	return pv
}

// phase is the failover's phase on pv-old; the Restore rs must say the same.
func (e *foEnv) phase(rs *storkv1.Restore) string {
	e.t.Helper()
	p := e.pvOld().Annotations[AnnotationFailoverPhase]
	cur := &storkv1.Restore{}
	if !e.get(rs.Name, cur) {
		e.t.Fatalf("Restore %s is gone", rs.Name)
	}
	if rp := cur.Annotations[AnnotationFailoverPhase]; rp != p {
		e.t.Errorf("Restore %s says phase %q, pv-old %q", rs.Name, rp, p)
	}
	return p
}

func (e *foEnv) expectPhase(what string, rs *storkv1.Restore, want string) {
	e.t.Helper()
	if p := e.phase(rs); p != want {
		e.t.Errorf("%s: phase %q, want %q", what, p, want)
	}
}

func (e *foEnv) expectEvents(step string, want ...string) {
	e.t.Helper()
	slices.Sort(want)
	if got := e.ev.take(); !slices.Equal(got, want) {
		e.t.Errorf("%s: events %q, want %q", step, got, want)
	}
}

// expectOldClaim checks that claim data is still the original one, bound to pv-old.
func (e *foEnv) expectOldClaim(what string) {
	e.t.Helper()
	c := &corev1.PersistentVolumeClaim{}
	if !e.get("data", c) {
		e.t.Errorf("%s: claim data was deleted", what)
		return
	}
	if c.UID != foUID || c.Spec.VolumeName != "pv-old" || c.DeletionTimestamp != nil || c.Status.Phase != corev1.ClaimBound {
		e.t.Errorf("%s: claim data is %s on %q (%s, deleting %v); want the original on pv-old", what, c.UID, c.Spec.VolumeName, c.Status.Phase, c.DeletionTimestamp != nil)
	}
}

func (e *foEnv) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(e.ctx, obj); err != nil {
		e.t.Fatal(err)
	}
}

func (e *foEnv) delete(obj client.Object) {
	e.t.Helper()
	if err := e.c.Delete(e.ctx, obj); err != nil {
		e.t.Fatal(err)
	}
}

// setClaimPhase sets a claim's status phase.
func (e *foEnv) setClaimPhase(c *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase) {
	e.t.Helper()
	c.Status.Phase = phase
	if err := e.c.Status().Update(e.ctx, c); err != nil {
		e.t.Fatal(err)
	}
}

// complete marks the Restore completed onto n2.
func (e *foEnv) complete(rs *storkv1.Restore) {
	e.t.Helper()
	rs.Status = storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Volumes: []storkv1.RestoreVolumeStatus{{
		SourceClaim: "data", TargetNamespace: rs.Namespace, TargetClaim: rs.Spec.ClaimNameMapping["data"], Node: "n2", Phase: storkv1.VolumeSucceeded}}}
	if err := e.c.Status().Update(e.ctx, rs); err != nil {
		e.t.Fatal(err)
	}
}

// restored makes the Restore's temporary claim, as the Restore controller does (annotated by it
// unless by is empty), bound to a new volume pvNew.
func (e *foEnv) restored(rs *storkv1.Restore, by types.UID, pvNew string) *corev1.PersistentVolumeClaim {
	e.t.Helper()
	temp := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: rs.Namespace, Name: rs.Spec.ClaimNameMapping["data"]},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("local"), VolumeName: pvNew}}
	if by != "" {
		temp.Annotations = map[string]string{storkv1.AnnotationRestoredBy: string(by)}
	}
	e.create(temp)
	e.setClaimPhase(temp, corev1.ClaimBound)
	pv := foPV(pvNew, temp.Name, temp.UID)
	pv.Spec.ClaimRef.Namespace = rs.Namespace
	e.create(pv)
	return temp
}

// repointing starts a failover of claim data for pod and takes it to Repointing: the Restore
// completed onto pv-new, reserved for the claim.
func (e *foEnv) repointing(pod *corev1.Pod) *storkv1.Restore {
	e.t.Helper()
	e.expectStep("start", pod, failoverWaiting, true)
	rs := e.restore()
	e.complete(rs)
	e.restored(rs, rs.UID, "pv-new")
	e.reconcile(rs)
	e.expectPhase("restored", rs, FailoverRepointing)
	e.ev.take()
	return e.restore()
}

func TestFailoverStep(t *testing.T) {
	cases := []struct {
		name                   string
		claimOptIn, classOptIn bool
		// created is how long before foT0 the claim was made; 0 leaves it unset.
		created time.Duration
		backups []client.Object
		// backup is the source of the failover Restore; "" for none.
		backup string
		events []string
	}{
		{name: "not opted in", backups: foBackups()},
		{name: "opted in on the claim", claimOptIn: true, backups: foBackups(),
			backup: "b-new", events: []string{"FailoverStarted data"}},
		{name: "opted in through its StorageClass", classOptIn: true, backups: foBackups(),
			backup: "b-new", events: []string{"FailoverStarted data"}},
		{name: "a partially failed backup that holds the claim will do", claimOptIn: true,
			backups: []client.Object{foBackup(foNS, "b-old", storkv1.BackupCompleted, 2*time.Hour, foHeld("data")),
				foBackup(foNS, "b-partial", storkv1.BackupPartiallyFailed, time.Hour, foHeld("data"),
					storkv1.BackupVolume{ClaimName: "logs", Phase: storkv1.VolumeFailed})},
			backup: "b-partial", events: []string{"FailoverStarted data"}},
		{name: "a backup without a start time counts from its creation", claimOptIn: true, created: 90 * time.Minute,
			backups: []client.Object{foBackup(foNS, "b-old", storkv1.BackupCompleted, 2*time.Hour, foHeld("data")), foBackupCreated("b-unstarted", 80*time.Minute)},
			backup:  "b-unstarted", events: []string{"FailoverStarted data"}},
		{name: "no backup since the claim was made", claimOptIn: true, created: 30 * time.Minute,
			backups: foBackups(), events: []string{"FailoverImpossible data"}},
		{name: "no backup holds the claim", claimOptIn: true, backups: foUnusableBackups(),
			events: []string{"FailoverImpossible data"}},
		{name: "no backup at all", claimOptIn: true,
			events: []string{"FailoverImpossible data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			claim := foClaim(tc.claimOptIn)
			if tc.created > 0 {
				claim.CreationTimestamp = metav1.NewTime(foT0.Add(-tc.created))
			}
			e := newFoEnv(t, append(tc.backups, claim, foClass(tc.classOptIn), foOldPV(nil), pod)...)
			want, wantStarted := failoverNone, false
			if tc.backup != "" {
				want, wantStarted = failoverWaiting, true
			}
			e.expectStep("Step", pod, want, wantStarted)
			e.expectEvents("Step", tc.events...)
			old := e.pvOld()
			if tc.backup == "" {
				if rs := e.restores(); len(rs) != 0 {
					t.Errorf("%d Restores, want none", len(rs))
				}
				if len(old.Annotations) != 0 || old.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
					t.Errorf("pv-old changed: annotations %v, reclaim %s", old.Annotations, old.Spec.PersistentVolumeReclaimPolicy)
				}
				return
			}

			// The state, on the old volume.
			a := old.Annotations
			if old.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
				t.Errorf("pv-old reclaim policy %s, want Retain", old.Spec.PersistentVolumeReclaimPolicy)
			}
			attempt := strings.TrimPrefix(a[annotationRestore], foRestorePrefix)
			if attempt == "" || attempt == a[annotationRestore] || a[annotationTemp] != foTempPrefix+attempt {
				t.Errorf("Restore %q and temporary claim %q: want %s<attempt> and %s<attempt>", a[annotationRestore], a[annotationTemp], foRestorePrefix, foTempPrefix)
			}
			for k, v := range map[string]string{annotationClaimUID: foUID, annotationBackup: tc.backup, annotationNode: "n1",
				annotationDriver: fake.Name, AnnotationFailoverPhase: FailoverRestoring, annotationVolume: "", annotationEvicted: ""} {
				if a[k] != v {
					t.Errorf("pv-old annotation %s = %q, want %q", k, a[k], v)
				}
			}
			if !strings.Contains(a[AnnotationFailedOver], tc.backup) {
				t.Errorf("%s annotation %q does not name the backup", AnnotationFailedOver, a[AnnotationFailedOver])
			}
			saved := &corev1.PersistentVolumeClaim{}
			if err := json.Unmarshal([]byte(a[annotationClaim]), saved); err != nil {
				t.Fatalf("saved claim: %v", err)
			}
			if saved.Name != "data" || saved.Namespace != foNS || saved.Spec.VolumeName != "" || saved.Labels["app"] != "db" ||
				saved.Annotations["keep"] != "me" || saved.UID != "" || saved.ResourceVersion != "" ||
				saved.Annotations["pv.kubernetes.io/bind-completed"] != "" || saved.Annotations["volume.kubernetes.io/selected-node"] != "" {
				t.Errorf("saved claim %+v", saved)
			}

			// The Restore, as the state names it.
			rs := e.restore()
			if rs.Namespace != foNS || rs.Name != a[annotationRestore] || rs.Labels[LabelFailoverOf] != foUID || rs.Annotations[annotationOldVolume] != "pv-old" {
				t.Errorf("Restore %s/%s labelled %v, annotated %v; want %s/%s with %s=%s, %s=pv-old", rs.Namespace, rs.Name, rs.Labels, rs.Annotations,
					foNS, a[annotationRestore], LabelFailoverOf, foUID, annotationOldVolume)
			}
			if rs.Spec.Source.BackupName != tc.backup {
				t.Errorf("restores Backup %q, want %q", rs.Spec.Source.BackupName, tc.backup)
			}
			if !slices.Equal(rs.Spec.Claims, []string{"data"}) || !rs.Spec.VolumesOnly {
				t.Errorf("restores claims %v (volumes only: %v), want [data] only", rs.Spec.Claims, rs.Spec.VolumesOnly)
			}
			if len(rs.Spec.ClaimNameMapping) != 1 || rs.Spec.ClaimNameMapping["data"] != a[annotationTemp] {
				t.Errorf("claim mapping %v, want data → %s", rs.Spec.ClaimNameMapping, a[annotationTemp])
			}
			if rs.Spec.ZoneMapping == nil || rs.Spec.ZoneMapping.Mode != storkv1.ZoneKeep {
				t.Errorf("zone mapping %+v, want Keep", rs.Spec.ZoneMapping)
			}
			if p := rs.Annotations[AnnotationFailoverPhase]; p != FailoverRestoring {
				t.Errorf("Restore phase %q, want %s", p, FailoverRestoring)
			}

			// Again: nothing new.
			e.expectStep("second Step", pod, failoverWaiting, false)
			if rs := e.restores(); len(rs) != 1 || rs[0].Name != a[annotationRestore] {
				t.Errorf("Restores after the second Step: %d, want 1", len(rs))
			}
			if again := e.pvOld().Annotations; !maps.Equal(again, a) {
				t.Errorf("the second Step changed pv-old's annotations: %v, want %v", again, a)
			}
			e.expectEvents("second Step")
		})
	}
}

// TestFailoverStepNothingToFailOver: a claim that is gone, not bound, or whose volume is gone is
// nothing to fail over.
func TestFailoverStepNothingToFailOver(t *testing.T) {
	unbound := foClaim(true)
	unbound.Spec.VolumeName = ""
	unbound.Status.Phase = corev1.ClaimPending
	for _, tc := range []struct {
		name string
		objs []client.Object
	}{
		{name: "no claim", objs: []client.Object{foOldPV(nil)}},
		{name: "claim not bound", objs: []client.Object{unbound, foOldPV(nil)}},
		{name: "no volume", objs: []client.Object{foClaim(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, append(tc.objs, pod, foClass(true), foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))...)
			e.expectStep("Step", pod, failoverNone, false)
			if rs := e.restores(); len(rs) != 0 {
				t.Errorf("%d Restores, want none", len(rs))
			}
			e.expectEvents("Step")
		})
	}
}

// TestFailoverStepFollowsPhase: Step reports what the phase on the old volume says.
func TestFailoverStepFollowsPhase(t *testing.T) {
	for _, tc := range []struct {
		phase    string
		want     failoverState
		restarts bool // a new attempt starts
	}{
		{FailoverRestoring, failoverWaiting, false},
		{FailoverRepointing, failoverReady, false},
		{FailoverDone, failoverNone, false},
		{FailoverFailed, failoverNone, false},
		{FailoverCancelled, failoverWaiting, true},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, append(foBackups(), foClaim(true), foClass(false), foOldPV(nil), pod)...)
			e.step(pod, "data")
			pv := e.pvOld()
			orig := pv.DeepCopy()
			pv.Annotations[AnnotationFailoverPhase] = tc.phase
			if err := e.c.Patch(e.ctx, pv, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			e.ev.take()
			e.expectStep("Step", pod, tc.want, tc.restarts)
			want := 1
			var events []string
			if tc.restarts {
				want, events = 2, []string{"FailoverStarted data"}
			}
			if n := len(e.restores()); n != want {
				t.Errorf("%d Restores, want %d", n, want)
			}
			e.expectEvents("Step", events...)
		})
	}
}

// TestFailoverStepRecreatesRestore: while restoring, Step recreates a Restore that was deleted,
// under the name the old volume records.
func TestFailoverStepRecreatesRestore(t *testing.T) {
	pod := monPod("db-0", "n1", true, "data")
	e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod, foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
	e.expectStep("start", pod, failoverWaiting, true)
	rs := e.restore()
	e.delete(rs)
	e.ev.take()
	e.expectStep("Restore deleted", pod, failoverWaiting, false)
	again := e.restore()
	if again.Name != rs.Name || again.Spec.ClaimNameMapping["data"] != rs.Spec.ClaimNameMapping["data"] || again.Annotations[annotationOldVolume] != "pv-old" {
		t.Errorf("recreated Restore %s (mapping %v, annotations %v), want %s as before", again.Name, again.Spec.ClaimNameMapping, again.Annotations, rs.Name)
	}
}

// TestFailoverRestart: a failover whose phase was removed (an administrator retrying one that
// failed), or recorded for an earlier claim of the name, starts over under new names; the old
// attempt's Restore is ignored from then on.
func TestFailoverRestart(t *testing.T) {
	earlier := map[string]string{
		annotationClaimUID: foUID, annotationClaim: `{"metadata":{"name":"data","namespace":"app"}}`,
		annotationRestore: foRestorePrefix + "old", annotationTemp: foTempPrefix + "old", annotationBackup: "b-old",
		annotationNode: "n1", annotationDriver: fake.Name, annotationVolume: "pv-stale", annotationEvicted: "true",
	}
	for _, tc := range []struct {
		name  string
		state map[string]string
	}{
		{name: "phase removed", state: earlier},
		{name: "an earlier claim's failover", state: map[string]string{
			annotationClaimUID: "feedbeef-0000-4000-8000-000000000000", annotationRestore: foRestorePrefix + "old",
			annotationTemp: foTempPrefix + "old", annotationVolume: "pv-stale", annotationEvicted: "true", AnnotationFailoverPhase: FailoverFailed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := maps.Clone(tc.state)
			if _, ok := state[AnnotationFailoverPhase]; !ok {
				state[annotationClaimUID] = foUID
			}
			oldRS := &storkv1.Restore{
				ObjectMeta: metav1.ObjectMeta{Namespace: foNS, Name: foRestorePrefix + "old", UID: "old-restore-uid",
					Labels:      map[string]string{LabelFailoverOf: state[annotationClaimUID]},
					Annotations: map[string]string{annotationOldVolume: "pv-old", AnnotationFailoverPhase: FailoverFailed}},
				Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "b-old"}, Claims: []string{"data"},
					ClaimNameMapping: map[string]string{"data": foTempPrefix + "old"}},
			}
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(state), pod, oldRS,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			e.expectStep("restart", pod, failoverWaiting, true)
			e.expectEvents("restart", "FailoverStarted data")
			a := e.pvOld().Annotations
			if a[annotationRestore] == oldRS.Name || !strings.HasPrefix(a[annotationRestore], foRestorePrefix) ||
				a[annotationTemp] == foTempPrefix+"old" || !strings.HasPrefix(a[annotationTemp], foTempPrefix) {
				t.Errorf("restarted as Restore %q, temporary claim %q: want new names", a[annotationRestore], a[annotationTemp])
			}
			if a[annotationClaimUID] != foUID || a[AnnotationFailoverPhase] != FailoverRestoring || a[annotationBackup] != "b-new" {
				t.Errorf("pv-old annotations %v after the restart", a)
			}
			if _, ok := a[annotationVolume]; ok {
				t.Errorf("the earlier attempt's volume is still recorded: %v", a)
			}
			if _, ok := a[annotationEvicted]; ok {
				t.Errorf("the earlier attempt's eviction is still recorded: %v", a)
			}
			rs := &storkv1.Restore{}
			if !e.get(a[annotationRestore], rs) || rs.Spec.ClaimNameMapping["data"] != a[annotationTemp] {
				t.Fatalf("no Restore %s mapping data to %s", a[annotationRestore], a[annotationTemp])
			}
			if n := len(e.restores()); n != 2 {
				t.Errorf("%d Restores, want the old one and the new one", n)
			}

			// The earlier attempt's Restore completes (late): it is not this failover's.
			e.complete(oldRS)
			e.restored(oldRS, oldRS.UID, "pv-late")
			if res := e.reconcile(oldRS); res != (ctrl.Result{}) {
				t.Errorf("old Restore: result %+v, want none", res)
			}
			if after := e.pvOld().Annotations; !maps.Equal(after, a) {
				t.Errorf("reconciling the old Restore changed pv-old: %v, was %v", after, a)
			}
			late := &corev1.PersistentVolume{}
			if !e.get("pv-late", late) || late.Spec.ClaimRef.Name != foTempPrefix+"old" {
				t.Errorf("pv-late was reserved: %+v", late.Spec.ClaimRef)
			}
			e.expectOldClaim("after the old Restore")
			e.expectEvents("old Restore")
		})
	}
}

// TestFailoverLongClaimNames: claims whose long names differ only at the end still get a
// Restore and a temporary claim each, with valid names.
func TestFailoverLongClaimNames(t *testing.T) {
	long := strings.Repeat("x", 60)
	objs := []client.Object{foClass(true)}
	var pods []*corev1.Pod
	for i, suffix := range []string{"-0", "-1"} {
		c := foClaim(false)
		c.Name = long + suffix
		c.UID = types.UID(strings.Repeat(string(rune('a'+i)), 8) + "-1111-4222-8333-444455556666")
		c.Spec.VolumeName = "pv" + suffix
		pod := monPod("db"+suffix, "n1", true, c.Name)
		pods = append(pods, pod)
		objs = append(objs, c, pod, foPV("pv"+suffix, c.Name, c.UID), foBackup(foNS, "b"+suffix, storkv1.BackupCompleted, time.Hour, foHeld(c.Name)))
	}
	e := newFoEnv(t, objs...)
	for _, pod := range pods {
		if state, started, err := e.f.Step(e.ctx, pod, pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName, fake.Name, "n1"); err != nil || state != failoverWaiting || !started {
			t.Errorf("%s: Step is %v (started %v, error %v), want a failover started", pod.Name, state, started, err)
		}
	}
	rs := e.restores()
	if len(rs) != 2 {
		t.Fatalf("%d Restores, want 2", len(rs))
	}
	temps := map[string]bool{}
	for _, r := range rs {
		if errs := validation.IsDNS1123Label(r.Name); len(errs) > 0 {
			t.Errorf("Restore name %q: %v", r.Name, errs)
		}
		for _, temp := range r.Spec.ClaimNameMapping {
			if errs := validation.IsDNS1123Label(temp); len(errs) > 0 {
				t.Errorf("temporary claim name %q: %v", temp, errs)
			}
			temps[temp] = true
		}
	}
	if len(temps) != 2 {
		t.Errorf("temporary claims %v, want two different ones", temps)
	}
}

// TestFailoverReconcile walks a failover from its Restore to the claim bound to the new volume,
// for each way the old claim's pod stops holding it.
func TestFailoverReconcile(t *testing.T) {
	cases := []struct {
		name string
		// evicted: the monitor records the eviction (MarkEvicted).
		evicted bool
		// release makes the pod stop using the old claim on its node.
		release func(e *foEnv, pod *corev1.Pod)
		// nodeBack: n1's storage comes back once the pod let go of the claim.
		nodeBack bool
	}{
		{name: "the pod is evicted", evicted: true, release: func(e *foEnv, pod *corev1.Pod) { e.delete(pod) }},
		{name: "the pod's replacement waits unscheduled", evicted: true, release: func(e *foEnv, pod *corev1.Pod) {
			e.delete(pod)
			e.create(monPod("db-1", "", true, "data"))
		}},
		{name: "the pod finished", release: func(e *foEnv, pod *corev1.Pod) {
			pod.Status.Phase = corev1.PodSucceeded
			if err := e.c.Status().Update(e.ctx, pod); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "the pod is evicted and the old node comes back after", evicted: true, nodeBack: true,
			release: func(e *foEnv, pod *corev1.Pod) { e.delete(pod) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			e.expectStep("start", pod, failoverWaiting, true)
			e.ev.take()

			// The Restore runs: nothing to do.
			rs := e.restore()
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("while restoring: result %+v, want none", res)
			}
			e.expectPhase("while restoring", rs, FailoverRestoring)
			if err := e.f.MarkEvicted(e.ctx, pod, "data"); err == nil {
				t.Error("MarkEvicted while restoring: no error")
			}

			// The Restore completed, but the temporary claim is not its own, then not bound,
			// then its volume is bound to another claim: wait, touching nothing.
			e.complete(rs)
			temp := e.restored(rs, "", "pv-new")
			pvNew := &corev1.PersistentVolume{}
			waits := func(what string) {
				t.Helper()
				if res := e.reconcile(rs); res.RequeueAfter <= 0 {
					t.Errorf("%s: result %+v, want a requeue", what, res)
				}
				e.expectPhase(what, rs, FailoverRestoring)
				if v := e.pvOld().Annotations[annotationVolume]; v != "" {
					t.Errorf("%s: new volume %q recorded", what, v)
				}
				if !e.get("pv-new", pvNew) || pvNew.Spec.ClaimRef.Name != temp.Name || pvNew.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
					t.Errorf("%s: pv-new changed: %+v, %s", what, pvNew.Spec.ClaimRef, pvNew.Spec.PersistentVolumeReclaimPolicy)
				}
				if !e.get(temp.Name, &corev1.PersistentVolumeClaim{}) {
					t.Errorf("%s: the temporary claim was deleted", what)
				}
				e.expectOldClaim(what)
				e.expectEvents(what)
			}
			waits("temporary claim not the Restore's")

			if !e.get(temp.Name, temp) {
				t.Fatal("temporary claim gone")
			}
			temp.Annotations = map[string]string{storkv1.AnnotationRestoredBy: string(rs.UID)}
			if err := e.c.Update(e.ctx, temp); err != nil {
				t.Fatal(err)
			}
			e.setClaimPhase(temp, corev1.ClaimPending)
			waits("temporary claim not bound")

			e.setClaimPhase(temp, corev1.ClaimBound)
			orig := pvNew.DeepCopy()
			pvNew.Spec.ClaimRef.UID = "another-claim-uid"
			if err := e.c.Patch(e.ctx, pvNew, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			waits("new volume bound to another claim")

			// The new volume is bound to the temporary claim: it is reserved for the claim.
			orig = pvNew.DeepCopy()
			pvNew.Spec.ClaimRef.UID = temp.UID
			if err := e.c.Patch(e.ctx, pvNew, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			if res := e.reconcile(rs); res.RequeueAfter <= 0 {
				t.Errorf("repointing: result %+v, want a requeue", res)
			}
			if !e.get("pv-new", pvNew) {
				t.Fatal("pv-new is gone")
			}
			if ref := pvNew.Spec.ClaimRef; ref == nil || ref.Namespace != foNS || ref.Name != "data" || ref.UID != "" {
				t.Errorf("pv-new claimRef %+v, want app/data without a UID", ref)
			}
			if pvNew.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || pvNew.Annotations[AnnotationFailedOver] == "" {
				t.Errorf("pv-new reclaim %s, annotations %v; want Retain and %s", pvNew.Spec.PersistentVolumeReclaimPolicy, pvNew.Annotations, AnnotationFailedOver)
			}
			if e.get(temp.Name, &corev1.PersistentVolumeClaim{}) {
				t.Error("the temporary claim was not deleted")
			}
			e.expectPhase("repointing", rs, FailoverRepointing)
			if v := e.pvOld().Annotations[annotationVolume]; v != "pv-new" {
				t.Errorf("new volume recorded as %q, want pv-new", v)
			}
			e.expectEvents("repointing", "FailoverRestored "+rs.Name)
			e.expectOldClaim("repointing")
			if old := e.pvOld(); old.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
				t.Errorf("pv-old reclaim %s, want Retain", old.Spec.PersistentVolumeReclaimPolicy)
			}
			e.expectStep("repointing", pod, failoverReady, false)

			// Again, with the pod still there: nothing changes, nothing is said twice.
			e.reconcile(rs)
			e.expectOldClaim("repointing again")
			e.expectEvents("repointing again")

			if tc.evicted {
				if err := e.f.MarkEvicted(e.ctx, pod, "data"); err != nil {
					t.Fatalf("MarkEvicted: %v", err)
				}
				if v := e.pvOld().Annotations[annotationEvicted]; v != "true" {
					t.Errorf("eviction recorded as %q", v)
				}
				// Evicted, but not gone yet: the claim stays.
				e.reconcile(rs)
				e.expectOldClaim("evicted, pod still there")
			}

			// The pod lets go of the claim: the old claim is deleted…
			tc.release(e, pod)
			if tc.nodeBack {
				e.nodeBack()
			}
			e.reconcile(rs)
			if e.get("data", &corev1.PersistentVolumeClaim{}) {
				t.Fatal("the old claim was not deleted once no scheduled pod uses it")
			}
			// …and recreated on the new volume.
			if res := e.reconcile(rs); res.RequeueAfter <= 0 {
				t.Errorf("recreated: result %+v, want a requeue", res)
			}
			claim := &corev1.PersistentVolumeClaim{}
			if !e.get("data", claim) {
				t.Fatal("the claim was not recreated")
			}
			if claim.UID == foUID || claim.Spec.VolumeName != "pv-new" || ptr.Deref(claim.Spec.StorageClassName, "") != "local" ||
				!claim.Spec.Resources.Requests.Storage().Equal(resource.MustParse("1Gi")) {
				t.Errorf("recreated claim %s, spec %+v", claim.UID, claim.Spec)
			}
			if claim.Labels["app"] != "db" {
				t.Errorf("recreated claim labels %v", claim.Labels)
			}
			wantAnn := map[string]string{"keep": "me", AnnotationFailover: "true"}
			if !maps.Equal(claim.Annotations, wantAnn) {
				t.Errorf("recreated claim annotations %v, want %v", claim.Annotations, wantAnn)
			}

			// Not bound yet: wait.
			if res := e.reconcile(rs); res.RequeueAfter <= 0 {
				t.Errorf("unbound: result %+v, want a requeue", res)
			}
			e.expectPhase("unbound", rs, FailoverRepointing)
			e.expectEvents("recreated, unbound")

			// Bound: done.
			e.setClaimPhase(claim, corev1.ClaimBound)
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("bound: result %+v, want none", res)
			}
			e.expectPhase("bound", rs, FailoverDone)
			e.expectEvents("bound", "FailedOver data", "FailedOver "+rs.Name)
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("done: result %+v, want none", res)
			}
			e.expectEvents("done")
			if !e.get("data", claim) || claim.Spec.VolumeName != "pv-new" {
				t.Errorf("claim data after done: %+v", claim.Spec)
			}
			if !e.get("pv-old", &corev1.PersistentVolume{}) || !e.get("pv-new", pvNew) {
				t.Error("a volume was deleted")
			}
		})
	}
}

// TestFailoverRepointOthersClaim: once the old claim is gone, a claim of its name that someone
// else made is bound to the reserved volume if it is unbound, and never deleted if bound elsewhere.
func TestFailoverRepointOthersClaim(t *testing.T) {
	other := func(volume string) *corev1.PersistentVolumeClaim {
		c := foClaim(false)
		c.UID, c.Spec.VolumeName, c.Annotations = "someone-elses-uid", volume, nil
		return c
	}
	t.Run("bound to another volume: failed, not deleted", func(t *testing.T) {
		pod := monPod("db-0", "n1", true, "data")
		e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), foPV("pv-other", "data", "someone-elses-uid"), pod,
			foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
		rs := e.repointing(pod)
		e.delete(pod)
		e.reconcile(rs) // deletes the old claim
		if e.get("data", &corev1.PersistentVolumeClaim{}) {
			t.Fatal("the old claim was not deleted")
		}
		e.create(other("pv-other"))
		c := e.claimNamed("data")
		e.setClaimPhase(c, corev1.ClaimBound)
		if res := e.reconcile(rs); res != (ctrl.Result{}) {
			t.Errorf("result %+v, want none", res)
		}
		e.expectPhase("someone else's claim", rs, FailoverFailed)
		e.expectEvents("someone else's claim", "FailoverFailed "+rs.Name)
		for i := range 2 {
			if c := e.claimNamed("data"); c.UID != "someone-elses-uid" || c.Spec.VolumeName != "pv-other" || c.DeletionTimestamp != nil {
				t.Errorf("reconcile %d: claim data is %s on %s (deleting: %v), want someone else's, untouched", i, c.UID, c.Spec.VolumeName, c.DeletionTimestamp != nil)
			}
			e.reconcile(rs)
		}
		e.expectEvents("failed again")
		pvNew := &corev1.PersistentVolume{}
		if !e.get("pv-new", pvNew) || pvNew.Spec.ClaimRef.Name != "data" || pvNew.Spec.ClaimRef.UID != "" {
			t.Errorf("pv-new claimRef %+v, want still reserved for data", pvNew.Spec.ClaimRef)
		}
		e.expectStep("failed", pod, failoverNone, false)
	})
	t.Run("recreated unbound by its StatefulSet: bound to the reserved volume", func(t *testing.T) {
		pod := monPod("db-0", "n1", true, "data")
		e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod,
			foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
		rs := e.repointing(pod)
		e.delete(pod)
		e.reconcile(rs)
		e.create(other(""))
		c := e.claimNamed("data")
		e.setClaimPhase(c, corev1.ClaimPending)
		if res := e.reconcile(rs); res.RequeueAfter <= 0 {
			t.Errorf("unbound: result %+v, want a requeue", res)
		}
		e.expectPhase("unbound", rs, FailoverRepointing)
		if c := e.claimNamed("data"); c.UID != "someone-elses-uid" {
			t.Errorf("claim data is %s, want the StatefulSet's", c.UID)
		}
		// The binder binds it to the reserved volume.
		c = e.claimNamed("data")
		c.Spec.VolumeName = "pv-new"
		if err := e.c.Update(e.ctx, c); err != nil {
			t.Fatal(err)
		}
		e.setClaimPhase(c, corev1.ClaimBound)
		e.reconcile(rs)
		e.expectPhase("bound", rs, FailoverDone)
		e.expectEvents("bound", "FailedOver data", "FailedOver "+rs.Name)
	})
}

func (e *foEnv) claimNamed(name string) *corev1.PersistentVolumeClaim {
	e.t.Helper()
	c := &corev1.PersistentVolumeClaim{}
	if !e.get(name, c) {
		e.t.Fatalf("claim %s is gone", name)
	}
	return c
}

// TestFailoverCancel: when the old node's storage comes back before the pod moved (not evicted,
// or back on the old claim), the claim keeps its volume and the restored copy is released.
func TestFailoverCancel(t *testing.T) {
	cases := []struct {
		name string
		// before runs once the failover is repointing, before the node comes back.
		before func(e *foEnv, pod *corev1.Pod)
		// stillDown leaves n1 down: the control.
		stillDown bool
	}{
		{name: "the pod still runs on the old node", before: func(*foEnv, *corev1.Pod) {}},
		{name: "not evicted, no pod uses the claim", before: func(e *foEnv, pod *corev1.Pod) { e.delete(pod) }},
		{name: "evicted, but the replacement runs on the old claim again", before: func(e *foEnv, pod *corev1.Pod) {
			if err := e.f.MarkEvicted(e.ctx, pod, "data"); err != nil {
				e.t.Fatal(err)
			}
			e.delete(pod)
			e.create(monPod("db-1", "n1", true, "data"))
		}},
		{name: "control: the node is still down", before: func(*foEnv, *corev1.Pod) {}, stillDown: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			rs := e.repointing(pod)
			temp := e.pvOld().Annotations[annotationTemp]
			tc.before(e, pod)
			if !tc.stillDown {
				e.nodeBack()
			}
			res := e.reconcile(rs)
			e.expectOldClaim("after the node came back")
			pvNew := &corev1.PersistentVolume{}
			if !e.get("pv-new", pvNew) {
				t.Fatal("pv-new is gone")
			}
			if tc.stillDown {
				if res.RequeueAfter <= 0 {
					t.Errorf("result %+v, want a requeue", res)
				}
				e.expectPhase("still down", rs, FailoverRepointing)
				if ref := pvNew.Spec.ClaimRef; ref.Name != "data" || ref.UID != "" {
					t.Errorf("pv-new claimRef %+v, want still reserved for data", ref)
				}
				e.expectEvents("still down")
				return
			}
			if res != (ctrl.Result{}) {
				t.Errorf("result %+v, want none", res)
			}
			e.expectPhase("cancelled", rs, FailoverCancelled)
			e.expectEvents("cancelled", "FailoverCancelled "+rs.Name)
			if ref := pvNew.Spec.ClaimRef; ref == nil || ref.Namespace != foNS || ref.Name != temp || ref.UID != rs.UID {
				t.Errorf("pv-new claimRef %+v, want released: the temporary claim %s with the Restore's UID %s", ref, temp, rs.UID)
			}
			if !strings.Contains(pvNew.Annotations[AnnotationFailedOver], "cancelled") {
				t.Errorf("pv-new %s annotation %q", AnnotationFailedOver, pvNew.Annotations[AnnotationFailedOver])
			}
			if old := e.pvOld(); old.Spec.ClaimRef == nil || old.Spec.ClaimRef.UID != foUID {
				t.Errorf("pv-old claimRef %+v, want still the claim", old.Spec.ClaimRef)
			}
			// The driver removes the unused copy, once; the old Restore does nothing more.
			e.reconcile(rs)
			e.expectOldClaim("cancelled, again")
			e.expectEvents("cancelled, again", "CopyRemoved "+rs.Name)
			if got := e.dis.got; len(got) != 1 || got[0].ID != string(rs.UID)+"/data" || got[0].Namespace != foNS {
				t.Errorf("the driver was asked to discard %+v, want once the volume of request %s/data", got, rs.UID)
			}
			if e.pvOld().Annotations[annotationCopyRemoved] != "true" {
				t.Errorf("pv-old does not record that the copy was removed: %v", e.pvOld().Annotations)
			}
			e.reconcile(rs)
			e.expectEvents("removed, again")
			if len(e.dis.got) != 1 {
				t.Errorf("the copy was discarded %d times, want once", len(e.dis.got))
			}
			// Should the node go down again, a new attempt starts under new names.
			e.expectStep("down again", pod, failoverWaiting, true)
			e.expectEvents("down again", "FailoverStarted data")
			if old := e.pvOld(); old.Annotations[annotationRestore] == rs.Name || old.Annotations[annotationAttempt] != "2" {
				t.Errorf("the second attempt reuses the first's names: %v", old.Annotations)
			}
		})
	}
}

// TestFailoverReconcileFails: a Restore that fails ends the failover, and the monitor's Step
// then leaves the pod to its NotEvicted event.
func TestFailoverReconcileFails(t *testing.T) {
	failed := []storkv1.RestoreVolumeStatus{{SourceClaim: "data", Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound", Message: "gone"}}
	for _, phase := range []storkv1.RestorePhase{storkv1.RestoreFailed, storkv1.RestorePartiallyFailed} {
		t.Run(string(phase), func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			e.step(pod, "data")
			rs := e.restore()
			rs.Status = storkv1.RestoreStatus{Phase: phase, Volumes: failed}
			if err := e.c.Status().Update(e.ctx, rs); err != nil {
				t.Fatal(err)
			}
			e.ev.take()
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("result %+v, want none", res)
			}
			e.expectPhase("failed", rs, FailoverFailed)
			e.expectEvents("failed", "FailoverFailed "+rs.Name)
			e.expectStep("after the failure", pod, failoverNone, false)
			e.reconcile(rs)
			e.expectEvents("failed again")
			if n := len(e.restores()); n != 1 {
				t.Errorf("%d Restores, want 1", n)
			}
			e.expectOldClaim("failed")
		})
	}
}

// TestFailoverForgedRestore: a Restore that the old volume does not name back (made or edited
// by the namespace's users) is ignored: no volume, claim or state is touched.
func TestFailoverForgedRestore(t *testing.T) {
	real := foRestorePrefix + "abc123"
	realTemp := foTempPrefix + "abc123"
	saved, err := json.Marshal(claimToRecreate(foClaim(true)))
	if err != nil {
		t.Fatal(err)
	}
	state := func(phase string) map[string]string {
		a := map[string]string{annotationClaimUID: foUID, annotationClaim: string(saved), annotationRestore: real,
			annotationTemp: realTemp, annotationBackup: "b-new", annotationNode: "n1", annotationDriver: fake.Name,
			AnnotationFailoverPhase: phase, AnnotationFailedOver: "failing over"}
		if phase == FailoverRepointing {
			a[annotationVolume] = "pv-new"
		}
		return a
	}
	// forged is a Restore of claim data as a failover's, completed.
	forged := func(ns, name, temp string, mutate ...func(*storkv1.Restore)) *storkv1.Restore {
		rs := &storkv1.Restore{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-of-" + ns + "-" + name),
				Labels:      map[string]string{LabelFailoverOf: foUID},
				Annotations: map[string]string{annotationOldVolume: "pv-old"}},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "b-evil"}, Claims: []string{"data"},
				ClaimNameMapping: map[string]string{"data": temp}, VolumesOnly: true},
			Status: storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted},
		}
		for _, m := range mutate {
			m(rs)
		}
		return rs
	}
	// evilTemp is the forger's claim, marked as restored by the forged Restore, bound to pv-evil.
	evilTemp := func(rs *storkv1.Restore) []client.Object {
		temp := rs.Spec.ClaimNameMapping["data"]
		c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: rs.Namespace, Name: temp, UID: "evil-temp-uid",
			Annotations: map[string]string{storkv1.AnnotationRestoredBy: string(rs.UID)}},
			Spec:   corev1.PersistentVolumeClaimSpec{VolumeName: "pv-evil"},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
		pv := foPV("pv-evil", temp, "evil-temp-uid")
		pv.Spec.ClaimRef.Namespace = rs.Namespace
		return []client.Object{c, pv}
	}
	pvNew := foPV("pv-new", "data", "")
	pvNew.Status.Phase = corev1.VolumeAvailable
	cases := []struct {
		name  string
		state map[string]string
		rs    *storkv1.Restore
		objs  []client.Object
		// control: the Restore is the failover's own, and acts.
		control bool
	}{
		{name: "no failover under way", rs: forged(foNS, "evil", "evil-temp")},
		{name: "restoring: a Restore of another name", state: state(FailoverRestoring), rs: forged(foNS, "evil", realTemp)},
		{name: "restoring: the failover's Restore, its claim mapping edited", state: state(FailoverRestoring), rs: forged(foNS, real, "evil-temp")},
		{name: "restoring: the failover's Restore, its label edited", state: state(FailoverRestoring),
			rs: forged(foNS, real, realTemp, func(rs *storkv1.Restore) { rs.Labels[LabelFailoverOf] = "another-uid" })},
		{name: "restoring: the failover's Restore, its claims edited", state: state(FailoverRestoring),
			rs: forged(foNS, real, realTemp, func(rs *storkv1.Restore) { rs.Spec.Claims = []string{"data", "logs"} })},
		{name: "repointing: the failover's Restore name in another namespace", state: state(FailoverRepointing),
			rs: forged("evil", real, realTemp), objs: []client.Object{pvNew.DeepCopy()}},
		{name: "repointing: a Restore without the old volume's name", state: state(FailoverRepointing),
			rs:   forged(foNS, "evil", realTemp, func(rs *storkv1.Restore) { delete(rs.Annotations, annotationOldVolume) }),
			objs: []client.Object{pvNew.DeepCopy()}},
		{name: "control: repointing, the failover's own Restore", state: state(FailoverRepointing),
			rs: forged(foNS, real, realTemp), objs: []client.Object{pvNew.DeepCopy()}, control: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]client.Object{foClaim(true), foClass(false), foOldPV(maps.Clone(tc.state)), tc.rs}, tc.objs...)
			if !tc.control {
				objs = append(objs, evilTemp(tc.rs)...)
			}
			e := newFoEnv(t, objs...)
			volumes := func() map[string]string {
				var list corev1.PersistentVolumeList
				if err := e.c.List(e.ctx, &list); err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, pv := range list.Items {
					b, _ := json.Marshal([]any{pv.Annotations, pv.Spec.ClaimRef, pv.Spec.PersistentVolumeReclaimPolicy})
					out[pv.Name] = string(b)
				}
				return out
			}
			claims := func() map[string]string {
				var list corev1.PersistentVolumeClaimList
				if err := e.c.List(e.ctx, &list); err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, c := range list.Items {
					out[c.Namespace+"/"+c.Name] = string(c.UID) + " " + c.Spec.VolumeName
				}
				return out
			}
			pvsBefore, claimsBefore := volumes(), claims()
			for i := range 2 {
				if res := e.reconcile(tc.rs); res != (ctrl.Result{}) && !tc.control {
					t.Errorf("reconcile %d: result %+v, want none", i, res)
				}
			}
			if tc.control {
				if e.get("data", &corev1.PersistentVolumeClaim{}) && e.claimNamed("data").UID == foUID {
					t.Error("control: the failover's own Restore did not repoint the claim")
				}
				return
			}
			if after := volumes(); !maps.Equal(after, pvsBefore) {
				t.Errorf("volumes changed:\n%v\nwere\n%v", after, pvsBefore)
			}
			if after := claims(); !maps.Equal(after, claimsBefore) {
				t.Errorf("claims changed: %v, were %v", after, claimsBefore)
			}
			e.expectEvents("forged")
		})
	}
}

// TestFailoverMarkEvicted: only a failover that is repointing records an eviction.
func TestFailoverMarkEvicted(t *testing.T) {
	pod := monPod("db-0", "n1", true, "data")
	e := newFoEnv(t, foClaim(true), foClass(false), foOldPV(nil), pod)
	if err := e.f.MarkEvicted(e.ctx, pod, "data"); err == nil {
		t.Error("MarkEvicted without a failover: no error")
	}
	if a := e.pvOld().Annotations; a[annotationEvicted] != "" {
		t.Errorf("pv-old annotations %v", a)
	}
}
