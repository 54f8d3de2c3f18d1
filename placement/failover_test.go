package placement

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/fake"
)

const (
	foNS = monNS
	// foUID is the UID of claim "data"; failover names carry its first 8 characters.
	foUID  = "0123abcd-1111-4222-8333-444455556666"
	foTemp = "data-failover-0123abcd"
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

// foHeld is a backup's copy of a claim that a restore can use.
func foHeld(claim string) storkv1.BackupVolume {
	return storkv1.BackupVolume{ClaimName: claim, Phase: storkv1.VolumeSucceeded, RepositorySnapshotID: "repo-" + claim}
}

// foBackups are the newest usable backup of "data" (b-new), an older one, and newer ones that
// must never be chosen.
func foBackups() []client.Object {
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

type foEnv struct {
	t   *testing.T
	ctx context.Context
	c   client.Client
	f   *Failover
	ev  *eventLog
}

func newFoEnv(t *testing.T, objs ...client.Object) *foEnv {
	t.Helper()
	c := fakeclient.NewClientBuilder().WithScheme(monScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&storkv1.Restore{}, &corev1.PersistentVolumeClaim{}).
		Build()
	ev := &eventLog{}
	return &foEnv{t: t, ctx: context.Background(), c: c, ev: ev, f: &Failover{Client: c, Reader: c, Recorder: ev, Log: logr.Discard()}}
}

func (e *foEnv) step(pod *corev1.Pod, claim string) (ready, handled bool) {
	e.t.Helper()
	ready, handled, err := e.f.Step(e.ctx, pod, claim, "n1")
	if err != nil {
		e.t.Fatalf("Step: %v", err)
	}
	return ready, handled
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

// get reads an object and reports whether it exists.
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

func (e *foEnv) phase() string {
	e.t.Helper()
	return e.restore().Annotations[AnnotationFailoverPhase]
}

func (e *foEnv) expectEvents(step string, want ...string) {
	e.t.Helper()
	slices.Sort(want)
	if got := e.ev.take(); !slices.Equal(got, want) {
		e.t.Errorf("%s: events %q, want %q", step, got, want)
	}
}

func TestFailoverStep(t *testing.T) {
	cases := []struct {
		name                   string
		claimOptIn, classOptIn bool
		backups                []client.Object
		handled                bool
		// backup is the source of the failover Restore; "" for none.
		backup string
		events []string
	}{
		{name: "not opted in", backups: foBackups()},
		{name: "opted in on the claim", claimOptIn: true, backups: foBackups(),
			handled: true, backup: "b-new", events: []string{"FailoverStarted data"}},
		{name: "opted in through its StorageClass", classOptIn: true, backups: foBackups(),
			handled: true, backup: "b-new", events: []string{"FailoverStarted data"}},
		{name: "a partially failed backup that holds the claim will do", claimOptIn: true,
			backups: []client.Object{foBackup(foNS, "b-old", storkv1.BackupCompleted, 2*time.Hour, foHeld("data")),
				foBackup(foNS, "b-partial", storkv1.BackupPartiallyFailed, time.Hour, foHeld("data"),
					storkv1.BackupVolume{ClaimName: "logs", Phase: storkv1.VolumeFailed})},
			handled: true, backup: "b-partial", events: []string{"FailoverStarted data"}},
		{name: "no backup holds the claim", claimOptIn: true, backups: foUnusableBackups(),
			events: []string{"FailoverImpossible data"}},
		{name: "no backup at all", claimOptIn: true,
			events: []string{"FailoverImpossible data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, append(tc.backups, foClaim(tc.claimOptIn), foClass(tc.classOptIn), pod)...)
			ready, handled := e.step(pod, "data")
			if ready || handled != tc.handled {
				t.Errorf("Step: ready %v, handled %v; want false, %v", ready, handled, tc.handled)
			}
			e.expectEvents("Step", tc.events...)
			if tc.backup == "" {
				if rs := e.restores(); len(rs) != 0 {
					t.Errorf("%d Restores, want none", len(rs))
				}
				return
			}
			rs := e.restore()
			if rs.Namespace != foNS || rs.Labels[LabelFailoverOf] != foUID {
				t.Errorf("Restore %s/%s labelled %v, want in %s with %s=%s", rs.Namespace, rs.Name, rs.Labels, foNS, LabelFailoverOf, foUID)
			}
			if rs.Spec.Source.BackupName != tc.backup {
				t.Errorf("restores Backup %q, want %q", rs.Spec.Source.BackupName, tc.backup)
			}
			if !slices.Equal(rs.Spec.Claims, []string{"data"}) || !rs.Spec.VolumesOnly {
				t.Errorf("restores claims %v (volumes only: %v), want [data] only", rs.Spec.Claims, rs.Spec.VolumesOnly)
			}
			if len(rs.Spec.ClaimNameMapping) != 1 || rs.Spec.ClaimNameMapping["data"] != foTemp {
				t.Errorf("claim mapping %v, want data → %s", rs.Spec.ClaimNameMapping, foTemp)
			}
			if rs.Spec.ZoneMapping == nil || rs.Spec.ZoneMapping.Mode != storkv1.ZoneKeep {
				t.Errorf("zone mapping %+v, want Keep", rs.Spec.ZoneMapping)
			}
			if p := rs.Annotations[AnnotationFailoverPhase]; p != FailoverRestoring {
				t.Errorf("phase %q, want %s", p, FailoverRestoring)
			}
			if !strings.Contains(rs.Annotations[AnnotationFailedOver], tc.backup) {
				t.Errorf("%s annotation %q does not name the backup", AnnotationFailedOver, rs.Annotations[AnnotationFailedOver])
			}
			saved := &corev1.PersistentVolumeClaim{}
			if err := json.Unmarshal([]byte(rs.Annotations[annotationFailoverClaim]), saved); err != nil {
				t.Fatalf("saved claim: %v", err)
			}
			if saved.Name != "data" || saved.Namespace != foNS || saved.Spec.VolumeName != "" || saved.Labels["app"] != "db" ||
				saved.Annotations["keep"] != "me" || saved.UID != "" || saved.ResourceVersion != "" {
				t.Errorf("saved claim %+v", saved)
			}

			ready, handled = e.step(pod, "data")
			if ready || !handled {
				t.Errorf("second Step: ready %v, handled %v; want false, true", ready, handled)
			}
			if n := len(e.restores()); n != 1 {
				t.Errorf("%d Restores after the second Step, want 1", n)
			}
			e.expectEvents("second Step")
		})
	}
}

// TestFailoverStepMissingClaim: a claim that is gone is nothing to fail over.
func TestFailoverStepMissingClaim(t *testing.T) {
	pod := monPod("db-0", "n1", true, "data")
	e := newFoEnv(t, pod, foClass(true))
	if ready, handled := e.step(pod, "data"); ready || handled {
		t.Errorf("Step: ready %v, handled %v; want false, false", ready, handled)
	}
}

// TestFailoverStepFollowsPhase: Step reports what the Restore's failover phase says.
func TestFailoverStepFollowsPhase(t *testing.T) {
	for _, tc := range []struct {
		phase          string
		ready, handled bool
	}{
		{FailoverRestoring, false, true},
		{FailoverRepointing, true, true},
		{FailoverDone, true, true},
		{FailoverFailed, false, false},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, append(foBackups(), foClaim(true), foClass(false), pod)...)
			e.step(pod, "data")
			rs := e.restore()
			orig := rs.DeepCopy()
			rs.Annotations[AnnotationFailoverPhase] = tc.phase
			if err := e.c.Patch(e.ctx, rs, client.MergeFrom(orig)); err != nil {
				t.Fatal(err)
			}
			e.ev.take()
			if ready, handled := e.step(pod, "data"); ready != tc.ready || handled != tc.handled {
				t.Errorf("Step: ready %v, handled %v; want %v, %v", ready, handled, tc.ready, tc.handled)
			}
			if n := len(e.restores()); n != 1 {
				t.Errorf("%d Restores, want 1", n)
			}
			e.expectEvents("Step")
		})
	}
}

// TestFailoverLongClaimNames: claims whose long names differ only at the end still get a
// Restore and a temporary claim each.
func TestFailoverLongClaimNames(t *testing.T) {
	long := strings.Repeat("x", 60)
	objs := []client.Object{foClass(true)}
	var pods []*corev1.Pod
	for i, suffix := range []string{"-0", "-1"} {
		c := foClaim(false)
		c.Name = long + suffix
		c.UID = types.UID(strings.Repeat(string(rune('a'+i)), 8) + "-1111-4222-8333-444455556666")
		c.Spec.VolumeName = ""
		pod := monPod("db"+suffix, "n1", true, c.Name)
		pods = append(pods, pod)
		objs = append(objs, c, pod, foBackup(foNS, "b"+suffix, storkv1.BackupCompleted, time.Hour, foHeld(c.Name)))
	}
	e := newFoEnv(t, objs...)
	for _, pod := range pods {
		if _, handled := e.step(pod, pod.Spec.Volumes[0].PersistentVolumeClaim.ClaimName); !handled {
			t.Errorf("%s: not handled", pod.Name)
		}
	}
	rs := e.restores()
	if len(rs) != 2 {
		t.Fatalf("%d Restores, want 2", len(rs))
	}
	temps := map[string]bool{}
	for _, r := range rs {
		if len(r.Name) > 63 {
			t.Errorf("Restore name %q is longer than 63 characters", r.Name)
		}
		for _, temp := range r.Spec.ClaimNameMapping {
			if len(temp) > 63 {
				t.Errorf("temporary claim name %q is longer than 63 characters", temp)
			}
			temps[temp] = true
		}
	}
	if len(temps) != 2 {
		t.Errorf("temporary claims %v, want two different ones", temps)
	}
}

// TestFailoverReconcile walks a failover from its completed Restore to the claim bound to the
// new volume, for each way the old claim's pod stops holding it.
func TestFailoverReconcile(t *testing.T) {
	cases := []struct {
		name string
		// release makes the pod stop using the old claim on its node.
		release func(e *foEnv, pod *corev1.Pod)
	}{
		{name: "the pod is evicted", release: func(e *foEnv, pod *corev1.Pod) {
			if err := e.c.Delete(e.ctx, pod); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "the pod's replacement waits unscheduled", release: func(e *foEnv, pod *corev1.Pod) {
			if err := e.c.Delete(e.ctx, pod); err != nil {
				e.t.Fatal(err)
			}
			if err := e.c.Create(e.ctx, monPod("db-1", "", true, "data")); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "the pod finished", release: func(e *foEnv, pod *corev1.Pod) {
			pod.Status.Phase = corev1.PodSucceeded
			if err := e.c.Status().Update(e.ctx, pod); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			pvOld := fake.PV("pv-old", 1<<30)
			pvOld.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: foNS, Name: "data", UID: foUID}
			pvOld.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
			e := newFoEnv(t, foClaim(true), foClass(false), pvOld, pod,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			if _, handled := e.step(pod, "data"); !handled {
				t.Fatal("Step did not start a failover")
			}
			e.ev.take()

			// The Restore runs: nothing to do.
			rs := e.restore()
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("while restoring: result %+v, want none", res)
			}
			if p := e.phase(); p != FailoverRestoring {
				t.Errorf("while restoring: phase %q", p)
			}

			// The Restore completed; its claim is not bound yet.
			rs.Status = storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Volumes: []storkv1.RestoreVolumeStatus{{
				SourceClaim: "data", TargetNamespace: foNS, TargetClaim: foTemp, Node: "n2", Phase: storkv1.VolumeSucceeded}}}
			if err := e.c.Status().Update(e.ctx, rs); err != nil {
				t.Fatal(err)
			}
			temp := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: foNS, Name: foTemp, UID: "temp-uid"},
				Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("local")}}
			if err := e.c.Create(e.ctx, temp); err != nil {
				t.Fatal(err)
			}
			if res := e.reconcile(rs); res.RequeueAfter <= 0 {
				t.Errorf("temporary claim unbound: result %+v, want a requeue", res)
			}
			if p := e.phase(); p != FailoverRestoring {
				t.Errorf("temporary claim unbound: phase %q", p)
			}
			e.expectEvents("temporary claim unbound")

			// The temporary claim is bound to the new volume.
			pvNew := fake.PV("pv-new", 1<<30)
			pvNew.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: foNS, Name: foTemp, UID: "temp-uid"}
			pvNew.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
			if err := e.c.Create(e.ctx, pvNew); err != nil {
				t.Fatal(err)
			}
			temp.Spec.VolumeName = "pv-new"
			if err := e.c.Update(e.ctx, temp); err != nil {
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
			if e.get(foTemp, &corev1.PersistentVolumeClaim{}) {
				t.Error("the temporary claim was not deleted")
			}
			if p := e.phase(); p != FailoverRepointing {
				t.Errorf("repointing: phase %q", p)
			}
			e.expectEvents("repointing", "FailoverRestored "+rs.Name)
			old := &corev1.PersistentVolumeClaim{}
			if !e.get("data", old) || old.UID != foUID || old.DeletionTimestamp != nil {
				t.Errorf("the old claim was deleted while a scheduled pod uses it: %+v", old.ObjectMeta)
			}
			if !e.get("pv-old", pvOld) {
				t.Fatal("pv-old is gone")
			}
			if pvOld.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || !strings.Contains(pvOld.Annotations[AnnotationFailedOver], "pv-new") {
				t.Errorf("pv-old reclaim %s, annotations %v; want Retain and %s naming pv-new", pvOld.Spec.PersistentVolumeReclaimPolicy, pvOld.Annotations, AnnotationFailedOver)
			}
			if ready, handled := e.step(pod, "data"); !ready || !handled {
				t.Errorf("Step while repointing: ready %v, handled %v; want true, true", ready, handled)
			}

			// Again, with the pod still there: nothing changes, nothing is said twice.
			e.reconcile(rs)
			if !e.get("data", old) || old.UID != foUID {
				t.Error("the old claim was deleted while a scheduled pod uses it")
			}
			e.expectEvents("repointing again")

			// The pod lets go of the claim: the old claim is deleted…
			tc.release(e, pod)
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
			if claim.Spec.VolumeName != "pv-new" || ptr.Deref(claim.Spec.StorageClassName, "") != "local" ||
				!claim.Spec.Resources.Requests.Storage().Equal(resource.MustParse("1Gi")) {
				t.Errorf("recreated claim spec %+v", claim.Spec)
			}
			if claim.Labels["app"] != "db" {
				t.Errorf("recreated claim labels %v", claim.Labels)
			}
			wantAnn := map[string]string{"keep": "me", AnnotationFailover: "true"}
			for k, v := range wantAnn {
				if claim.Annotations[k] != v {
					t.Errorf("recreated claim annotation %s = %q, want %q", k, claim.Annotations[k], v)
				}
			}
			for k := range claim.Annotations {
				if _, ok := wantAnn[k]; !ok {
					t.Errorf("recreated claim keeps annotation %s", k)
				}
			}
			if e.get(foTemp, &corev1.PersistentVolumeClaim{}) {
				t.Error("the temporary claim is back")
			}

			// Not bound yet: wait.
			if res := e.reconcile(rs); res.RequeueAfter <= 0 {
				t.Errorf("unbound: result %+v, want a requeue", res)
			}
			if p := e.phase(); p != FailoverRepointing {
				t.Errorf("unbound: phase %q", p)
			}
			e.expectEvents("recreated, unbound")

			// Bound: done.
			claim.Status.Phase = corev1.ClaimBound
			if err := e.c.Status().Update(e.ctx, claim); err != nil {
				t.Fatal(err)
			}
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("bound: result %+v, want none", res)
			}
			if p := e.phase(); p != FailoverDone {
				t.Errorf("bound: phase %q, want %s", p, FailoverDone)
			}
			e.expectEvents("bound", "FailedOver data", "FailedOver "+rs.Name)
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("done: result %+v, want none", res)
			}
			e.expectEvents("done")
			if !e.get("pv-old", pvOld) || !e.get("pv-new", pvNew) {
				t.Error("a volume was deleted")
			}
		})
	}
}

// TestFailoverReconcileFails: a Restore that fails ends the failover, and the monitor's Step
// then leaves the pod to its NotEvicted event.
func TestFailoverReconcileFails(t *testing.T) {
	failed := []storkv1.RestoreVolumeStatus{{SourceClaim: "data", TargetClaim: foTemp, Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound", Message: "gone"}}
	cases := []struct {
		name string
		// handMade is a labelled Restore without Stork's annotations, instead of Step's.
		handMade bool
		status   storkv1.RestoreStatus
		// drop removes this annotation from the Restore.
		drop string
	}{
		{name: "failed", status: storkv1.RestoreStatus{Phase: storkv1.RestoreFailed, Volumes: failed}},
		{name: "partially failed", status: storkv1.RestoreStatus{Phase: storkv1.RestorePartiallyFailed, Volumes: failed}},
		{name: "completed without the claim to recreate", drop: annotationFailoverClaim,
			status: storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Volumes: []storkv1.RestoreVolumeStatus{{SourceClaim: "data", TargetClaim: foTemp, Phase: storkv1.VolumeSucceeded}}}},
		{name: "a hand-made failover Restore failed", handMade: true, status: storkv1.RestoreStatus{Phase: storkv1.RestoreFailed}},
		{name: "a hand-made failover Restore completed", handMade: true,
			status: storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Volumes: []storkv1.RestoreVolumeStatus{{SourceClaim: "data", TargetClaim: foTemp, Phase: storkv1.VolumeSucceeded}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := monPod("db-0", "n1", true, "data")
			e := newFoEnv(t, foClaim(true), foClass(false), pod,
				foBackup(foNS, "b-new", storkv1.BackupCompleted, time.Hour, foHeld("data")))
			if tc.handMade {
				rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: foNS, Name: "by-hand", Labels: map[string]string{LabelFailoverOf: foUID}},
					Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "b-new"}}}
				if err := e.c.Create(e.ctx, rs); err != nil {
					t.Fatal(err)
				}
			} else {
				e.step(pod, "data")
			}
			rs := e.restore()
			if tc.drop != "" {
				orig := rs.DeepCopy()
				delete(rs.Annotations, tc.drop)
				if err := e.c.Patch(e.ctx, rs, client.MergeFrom(orig)); err != nil {
					t.Fatal(err)
				}
			}
			rs.Status = tc.status
			if err := e.c.Status().Update(e.ctx, rs); err != nil {
				t.Fatal(err)
			}
			e.ev.take()
			if res := e.reconcile(rs); res != (ctrl.Result{}) {
				t.Errorf("result %+v, want none", res)
			}
			if p := e.phase(); p != FailoverFailed {
				t.Errorf("phase %q, want %s", p, FailoverFailed)
			}
			e.expectEvents("failed", "FailoverFailed "+rs.Name)
			if ready, handled := e.step(pod, "data"); ready || handled {
				t.Errorf("Step after the failure: ready %v, handled %v; want false, false", ready, handled)
			}
			e.reconcile(rs)
			e.expectEvents("failed again")
			if n := len(e.restores()); n != 1 {
				t.Errorf("%d Restores, want 1", n)
			}
			if !e.get("data", &corev1.PersistentVolumeClaim{}) {
				t.Error("the claim was deleted")
			}
		})
	}
}
