package restore

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo/repotest"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/drivers"
	fakedriver "stork.dev/stork/drivers/fake"
)

// TestRestoreFromBackup restores a Backup whose objects are in a real file:// repository, with
// the fake driver making the volumes: zone mapping, namespace mapping, objects in their stages,
// and the requests that must fail before anything is made.
func TestRestoreFromBackup(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))

	rp, url := repotest.New(t, "a long passphrase")
	toUnstructured := func(o client.Object) *unstructured.Unstructured {
		gvks, _, _ := s.ObjectKinds(o)
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvks[0])
		return u
	}
	objs := []*unstructured.Unstructured{
		toUnstructured(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "x"}}}),
		toUnstructured(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cfg"}, Data: map[string]string{"k": "v"}}),
		toUnstructured(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "db", Image: "db"}},
				Volumes:    []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "a"}}}}}}}}),
	}
	rec := &catalog.Record{Name: "nightly", Namespace: "shop", UID: "source-uid", Cluster: "site-a"}
	resID, err := catalog.WriteResources(ctx, rp, rec, objs)
	if err != nil {
		t.Fatal(err)
	}
	// A backup crafted to hold an object of another namespace (its writer has the key).
	evil := toUnstructured(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "evil"}})
	craftedID, err := catalog.WriteResources(ctx, rp, &catalog.Record{Name: "crafted", Namespace: "shop", UID: "crafted-uid"}, append(objs[:2:2], evil))
	if err != nil {
		t.Fatal(err)
	}
	crafted := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "crafted"}, Spec: storkv1.BackupSpec{BackupLocation: "site-a"},
		Status: storkv1.BackupStatus{Phase: storkv1.BackupCompleted, Imported: true, SourceNamespace: "shop", ResourcesSnapshotID: craftedID.String()}}
	backup := func() *storkv1.Backup {
		return &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "nightly"},
			Spec: storkv1.BackupSpec{BackupLocation: "site-a"},
			Status: storkv1.BackupStatus{Phase: storkv1.BackupCompleted, Imported: true, SourceNamespace: "shop", ResourcesSnapshotID: resID.String(),
				Volumes: []storkv1.BackupVolume{
					{ClaimName: "a", Driver: fakedriver.Name, Topology: storkv1.Topology{Zone: "zone-a"}, SizeBytes: 1 << 20, RepositorySnapshotID: "ra", Phase: storkv1.VolumeSucceeded},
					{ClaimName: "b", Driver: fakedriver.Name, Topology: storkv1.Topology{Zone: "zone-b"}, SizeBytes: 1 << 20, RepositorySnapshotID: "rb", Phase: storkv1.VolumeSucceeded},
				}}}
	}
	loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "site-a", UID: "loc-uid"},
		Spec:   storkv1.BackupLocationSpec{URL: url, AccessMode: storkv1.AccessReadOnly, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "p"}},
		Status: storkv1.BackupLocationStatus{Phase: storkv1.BackupLocationAvailable}}
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "key"}, Data: map[string][]byte{"p": []byte("a long passphrase")}}

	admin := "stork-system"
	cases := []struct {
		name    string
		ns      string
		spec    storkv1.RestoreSpec
		phase   storkv1.RestorePhase
		reasons map[string]string // claim → volume reason; "" → the Ready condition's reason
		zones   map[string]string // claim → zone it landed in
		objects bool              // objects restored into shop-dr
		evil    bool              // the crafted backup's foreign object is refused
		volumes int               // volume entries, when not 0
		pod     bool              // a Ready pod app=db runs in shop-dr, for hooks
		hooks   map[string]bool   // hook → succeeded
	}{
		{name: "zones mapped, namespace mapped", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, ClaimNameMapping: map[string]string{"a": "a2"},
				ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: map[string]string{"zone-a": "zone-c", "zone-b": "zone-c"}}},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Restored", "b": "Restored"},
			zones: map[string]string{"a": "zone-c", "b": "zone-c"}, objects: true},
		{name: "spread", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneSpread}},
			phase: storkv1.RestoreCompleted, zones: map[string]string{"a": "zone-a", "b": "zone-c"}, objects: true},
		{name: "an unmapped zone fails before anything is made", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"},
				ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: map[string]string{"zone-x": "zone-c"}}},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"a": "ZoneNotMapped", "b": "ZoneNotMapped", "": "RestoreFailed"}},
		{name: "keep: the source zone's storage is down here, for longer than the wait", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"a": "Restored", "b": "NoHealthyStorageNode"}, zones: map[string]string{"a": "zone-a"}},
		{name: "map: a zone with no storage here", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true,
				ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: map[string]string{"zone-a": "zone-a", "zone-b": "zone-q"}}},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"a": "Restored", "b": "NoStorageNode"}},
		{name: "a user's Restore cannot restore into the source namespace", ns: "dr",
			phase: storkv1.RestoreFailed, reasons: map[string]string{"": "CrossNamespaceNotAllowed"}},
		{name: "a user's Restore maps into its own namespace", ns: "dr", spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "dr"},
			ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneSpread}},
			phase: storkv1.RestoreCompleted},
		{name: "objects of other namespaces in a crafted backup are refused", ns: "dr",
			spec:  storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "crafted"}, NamespaceMapping: map[string]string{"shop": "dr"}},
			phase: storkv1.RestorePartiallyFailed, evil: true},
		{name: "spec.claims restores only the claims it names", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true, Claims: []string{"a"}},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Restored"}, volumes: 1},
		{name: "a claim spec.claims names that the backup lacks fails", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true, Claims: []string{"a", "typo"}},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"a": "Restored", "typo": "NotInSource"}, volumes: 2},
		{name: "spec.verify with a driver that cannot verify fails the volume", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true, Claims: []string{"a"}, Verify: true},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"a": "VerificationUnsupported"}, volumes: 1},
		{name: "spec.paths reaches the driver's imports", ns: admin,
			spec:  storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, VolumesOnly: true, Claims: []string{"a"}, Paths: []string{"db/pg_wal", "conf"}},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Restored"}, volumes: 1},
		{name: "transforms patch the restored objects", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneSpread}, Transforms: []storkv1.ResourceTransform{
				{Kind: "Deployment", Names: []string{"db"}, Patch: []storkv1.JSONPatchOperation{
					{Op: "add", Path: "/metadata/labels", Value: &apiextensionsv1.JSON{Raw: []byte(`{"site":"dr"}`)}}}},
				{Kind: "ConfigMap", Names: []string{"other"}, Patch: []storkv1.JSONPatchOperation{{Op: "remove", Path: "/data"}}}},
				InitHooks: []storkv1.InitHook{{Name: "recover", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
					InitContainers: []corev1.Container{{Name: "recover", Image: "db", Command: []string{"db-recover"}}}}}},
			phase: storkv1.RestoreCompleted, objects: true},
		{name: "a transform of a kind backups do not hold fails before anything is made", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, Transforms: []storkv1.ResourceTransform{
				{Kind: "Pod", Patch: []storkv1.JSONPatchOperation{{Op: "remove", Path: "/spec"}}}}},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"": "InvalidTransforms"}},
		{name: "hooks run in the restored pods once Ready", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneSpread},
				Hooks: []storkv1.RestoreHook{
					{Hook: storkv1.Hook{Name: "check", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Command: []string{"pg_isready"}}},
					{Hook: storkv1.Hook{Name: "warm", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}, Command: []string{"warm"},
						OnError: storkv1.HookContinue}, WaitTimeout: &metav1.Duration{Duration: time.Nanosecond}}}},
			phase: storkv1.RestoreCompleted, objects: true, pod: true, hooks: map[string]bool{"check": true, "warm": false}},
		{name: "a failed hook makes the restore PartiallyFailed", ns: admin,
			spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneSpread},
				Hooks: []storkv1.RestoreHook{{Hook: storkv1.Hook{Name: "check", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Command: []string{"false"}}}}},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"": "PartiallyFailed"}, objects: true, pod: true, hooks: map[string]bool{"check": false}},
		{name: "unknown backup", ns: admin, spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "nope"}},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"": "BackupNotFound"}},
		{name: "unknown kind", ns: admin, spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"shop": "shop-dr"}, IncludeKinds: []string{"Pod"}},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"": "InvalidKinds"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drv := fakedriver.New(1)
			for _, n := range []drivers.StorageNode{
				{Node: "n-a", Topology: storkv1.Topology{Zone: "zone-a"}, Health: storkv1.StorageHealthy},
				{Node: "n-c", Topology: storkv1.Topology{Zone: "zone-c"}, Health: storkv1.StorageHealthy},
				{Node: "n-b", Topology: storkv1.Topology{Zone: "zone-b"}, Health: storkv1.StorageDown},
			} {
				drv.SetNode(n)
			}
			spec := tc.spec
			if spec.Source.BackupName == "" {
				spec.Source.BackupName = "nightly"
			}
			if tc.ns == admin {
				spec.Source.Namespace = "dr"
			}
			rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "r", UID: "restore-uid"}, Spec: spec}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(backup(), crafted.DeepCopy(), loc, key, rs).
				WithStatusSubresource(&storkv1.Restore{}, &corev1.PersistentVolumeClaim{}).Build()
			// A finished Restore is never written while its access Secret exists.
			checked := interceptor.NewClient(c, interceptor.Funcs{SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
				if r, ok := obj.(*storkv1.Restore); ok && final(r.Status.Phase) {
					if err := cl.Get(ctx, client.ObjectKey{Namespace: admin, Name: accessName(r)}, &corev1.Secret{}); err == nil {
						t.Errorf("Restore written %s while its access Secret exists", r.Status.Phase)
					}
				}
				return cl.SubResource(sub).Patch(ctx, obj, p, o...)
			}})
			r := &Reconciler{Client: checked, Drivers: drivers.NewSet(drv), AdminNamespace: admin, Repos: &locator.Cache{Secrets: c},
				StorageWait: time.Nanosecond, Hooks: &hooks.Runner{Client: c, Exec: execFunc(func(cmd []string) error {
					if cmd[0] == "false" {
						return errors.New("command failed")
					}
					return nil
				})}}
			if tc.pod {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop-dr", Name: "db-0", Labels: map[string]string{"app": "db"}},
					Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
				if err := c.Create(ctx, pod); err != nil {
					t.Fatal(err)
				}
			}
			got := restoreOnce(t, r, client.ObjectKeyFromObject(rs))
			if got.Status.Phase != tc.phase {
				t.Fatalf("phase %s, want %s: %+v", got.Status.Phase, tc.phase, got.Status)
			}
			for claim, reason := range tc.reasons {
				if claim == "" {
					if cond := meta.FindStatusCondition(got.Status.Conditions, storkv1.ConditionReady); cond == nil || cond.Reason != reason {
						t.Errorf("Ready condition %+v, want reason %s", cond, reason)
					}
					continue
				}
				for _, v := range got.Status.Volumes {
					if v.SourceClaim == claim && v.Reason != reason {
						t.Errorf("claim %s: %+v, want reason %s", claim, v, reason)
					}
				}
			}
			for _, req := range drv.Imports() {
				if !slices.Equal(req.Paths, tc.spec.Paths) || req.Verify != tc.spec.Verify {
					t.Errorf("import request %+v, want paths %v and verify %v", req, tc.spec.Paths, tc.spec.Verify)
				}
			}
			ran := map[string]bool{}
			for _, h := range got.Status.Hooks {
				ran[h.Name] = h.Succeeded
				if h.Name == "check" && h.Pod != "db-0" {
					t.Errorf("hook result %+v, want it run in pod db-0", h)
				}
			}
			if len(tc.hooks) != len(ran) || !maps.Equal(ran, tc.hooks) {
				t.Errorf("hooks %+v, want %v", got.Status.Hooks, tc.hooks)
			}
			if tc.volumes != 0 && len(got.Status.Volumes) != tc.volumes {
				t.Errorf("volumes %+v, want %d", got.Status.Volumes, tc.volumes)
			}
			for claim, zone := range tc.zones {
				for _, v := range got.Status.Volumes {
					if v.SourceClaim == claim && (v.Zone != zone || v.Phase != storkv1.VolumeSucceeded) {
						t.Errorf("claim %s: %+v, want it restored in %s", claim, v, zone)
					}
				}
			}
			if tc.evil {
				if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "evil"}, &corev1.ConfigMap{}); err == nil {
					t.Error("a Restore in namespace dr created kube-system/evil")
				}
				results := map[string]string{}
				for _, o := range got.Status.Objects {
					results[o.Kind+" "+o.Namespace+"/"+o.Name] = o.Result
				}
				if results["ConfigMap kube-system/evil"] != "Failed" || results["ConfigMap dr/cfg"] != "Created" || results["Namespace /dr"] != "Created" {
					t.Errorf("object results %v", results)
				}
			}
			cm := &corev1.ConfigMap{}
			err := c.Get(ctx, client.ObjectKey{Namespace: "shop-dr", Name: "cfg"}, cm)
			if tc.objects != (err == nil) {
				t.Errorf("ConfigMap shop-dr/cfg: %v, want restored %v (objects %+v)", err, tc.objects, got.Status.Objects)
			}
			if tc.objects {
				dep := &appsv1.Deployment{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: "shop-dr", Name: "db"}, dep); err != nil {
					t.Fatal(err)
				}
				wantClaim := "a"
				if m := tc.spec.ClaimNameMapping["a"]; m != "" {
					wantClaim = m
				}
				if got := dep.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName; got != wantClaim {
					t.Errorf("Deployment uses claim %s, want %s", got, wantClaim)
				}
				if tc.spec.Transforms != nil && dep.Labels["site"] != "dr" {
					t.Errorf("Deployment labels %v, want site=dr from spec.transforms", dep.Labels)
				}
				if inits := dep.Spec.Template.Spec.InitContainers; tc.spec.InitHooks != nil && (len(inits) != 1 || inits[0].Name != "recover") {
					t.Errorf("Deployment init containers %+v, want recover from spec.initHooks", inits)
				}
				if len(got.Status.Objects) != 3 {
					t.Errorf("objects %+v, want the Namespace, the ConfigMap and the Deployment", got.Status.Objects)
				}
			}
		})
	}
}

// A repository that cannot be opened while planning leaves no half plan behind: the Restore
// waits, says why, and plans again once it can; reconciles within the backoff (three in a row
// here) try nothing more.
func TestRestoreFromBackupWaitsForTheRepository(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	_, url := repotest.New(t, "a long passphrase")
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "nightly"}, Spec: storkv1.BackupSpec{BackupLocation: "site-a"},
		Status: storkv1.BackupStatus{Phase: storkv1.BackupCompleted, SourceNamespace: "dr", ResourcesSnapshotID: strings.Repeat("ab", 32),
			Volumes: []storkv1.BackupVolume{{ClaimName: "a", Driver: fakedriver.Name, RepositorySnapshotID: "ra", Phase: storkv1.VolumeSucceeded}}}}
	loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "site-a", UID: "loc-uid"},
		Spec:   storkv1.BackupLocationSpec{URL: url, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "p"}},
		Status: storkv1.BackupLocationStatus{Phase: storkv1.BackupLocationAvailable}}
	wrongKey := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "key"}, Data: map[string][]byte{"p": []byte("not the passphrase")}}
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "r", UID: "restore-uid"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "nightly"}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(b, loc, wrongKey, rs).WithStatusSubresource(&storkv1.Restore{}).Build()
	r := &Reconciler{Client: c, Drivers: drivers.NewSet(fakedriver.New(1)), AdminNamespace: "stork-system", Repos: &locator.Cache{Secrets: c}}
	for range 3 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rs)}); err != nil {
			t.Fatal(err)
		}
	}
	got := &storkv1.Restore{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(rs), got); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(got.Status.Conditions, storkv1.ConditionProgressing)
	if len(got.Status.Volumes) != 0 || got.Status.Phase != storkv1.RestoreInProgress || cond == nil || cond.Reason != "OpeningRepository" ||
		got.Status.Retry == nil || got.Status.Retry.Attempts != 1 || meta.FindStatusCondition(got.Status.Conditions, storkv1.ConditionValid) != nil {
		t.Errorf("status while the repository cannot be opened: %+v", got.Status)
	}
}

// execFunc is a hooks.Executor that fails when the function says so.
type execFunc func(command []string) error

func (f execFunc) Exec(_ context.Context, _, _, _ string, command []string) ([]byte, []byte, error) {
	return []byte("ok\n"), nil, f(command)
}
