package csi

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/drivers"
)

const (
	backupUID   = "backup-uid"
	accessName  = "stork-access-1"
	passphrase  = "correct horse battery staple"
	secretKey   = "AKIA-secret-access-key"
	exportID    = backupUID + "/db"
	repoSnapID  = "5d41402abc4b2a76b9719d911017c592"
	restoreUID  = "restore-uid"
	importID    = restoreUID + "/db"
	targetNS    = "app2"
	targetClaim = "db"
)

func wffcClass(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner,
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
}

// moverObjects are what an export needs: the Backup, the source volume (zone A, 10Gi) and its
// ready snapshot (12Gi), the storage class, the access Secret.
func moverObjects() []client.Object {
	vs, vsc := readySnapshotPair(appNS, "snap", "db", ebs)
	return []client.Object{
		&storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "bk", UID: backupUID}},
		&storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "rs", UID: restoreUID}},
		csiPV("pv-db", ebs, "db", term(in(ebsZone, zoneA))), vs, vsc, wffcClass("gp3", ebs),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: accessName, Labels: map[string]string{access.LabelFor: appNS}},
			Data: map[string][]byte{"passphrase": []byte(passphrase), "secretAccessKey": []byte(secretKey), "url": []byte("s3://bucket/x")}},
	}
}

// readyNode is node name in zone, Ready, with ebs registered.
func readyNode(name, zone string) []client.Object {
	return []client.Object{testNode(name, zone, corev1.ConditionTrue), testCSINode(name, ebs)}
}

func exportReq() drivers.ExportRequest {
	return drivers.ExportRequest{ID: exportID, Source: drivers.SnapshotRef{Namespace: appNS, VolumeName: "pv-db", SnapshotID: "snap"},
		Location: "loc", AccessSecret: accessName,
		Owner: &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Backup", Name: "bk", UID: backupUID, Controller: ptr.To(true)},
		Tags:  map[string]string{"cluster": "c1", "namespace": appNS, "pvc": "db"}}
}

func exportTaskName() string       { return objectName("upload", exportID) }
func exportTemp() string           { return objectName("stork-mover", appNS, exportTaskName()) }
func exportPod(attempt int) string { return moverPod(exportTaskName(), attempt) }

// taskUID is the UID the test client gives a VolumeTask it creates; moverPod names the mover pod
// of one attempt of that task.
func taskUID(name string) types.UID { return types.UID("uid-" + name) }
func moverPod(task string, attempt int) string {
	return MoverPodPrefix + string(taskUID(task)) + "-" + strconv.Itoa(attempt)
}

// readyTempSnapshot is the export's temporary VolumeSnapshot, ready: with it in place the
// first Export call goes on to the claim and the mover pod.
func readyTempSnapshot() *snapv1.VolumeSnapshot {
	return &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: exportTemp()},
		Status: &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To(exportTemp()), ReadyToUse: ptr.To(true)}}
}

// moverEnv is an export whose temporary snapshot is ready, with extra objects.
func moverEnv(t *testing.T, cfg map[string]string, extra ...client.Object) *env {
	return newEnv(t, cfg, nil, append(append(moverObjects(), readyTempSnapshot()), extra...)...)
}

func (e *env) export() drivers.VolumeStatus {
	e.t.Helper()
	st, err := e.d.Export(e.ctx, exportReq())
	if err != nil {
		e.t.Fatalf("Export: %v", err)
	}
	return st
}

func (e *env) task(name string) *storkv1.VolumeTask {
	e.t.Helper()
	tk := &storkv1.VolumeTask{}
	e.get(tk, appNS, name)
	return tk
}

func wantStatus(t *testing.T, st drivers.VolumeStatus, phase storkv1.VolumePhase, reason string, msg ...string) {
	t.Helper()
	if st.Phase != phase || st.Reason != reason {
		t.Fatalf("status %+v, want %s %q", st, phase, reason)
	}
	for _, m := range msg {
		if !strings.Contains(st.Message, m) {
			t.Fatalf("message %q does not say %q", st.Message, m)
		}
	}
}

func TestExport(t *testing.T) {
	cfg := map[string]string{ConfigMoverImage: "registry.example/stork:test", ConfigMoverRequests: "cpu=200m", ConfigMoverLimits: "memory=3Gi",
		ConfigMoverServiceAccount: "mover-sa"}
	// Nodes that cannot take the pod: another zone, NotReady, without the CSI driver,
	// cordoned.
	other := []client.Object{testNode("b", zoneB, corev1.ConditionTrue), testCSINode("b", ebs),
		testNode("c", zoneA, corev1.ConditionFalse), testCSINode("c", ebs),
		testNode("d", zoneA, corev1.ConditionTrue), testCSINode("d", rbd)}
	cordoned := testNode("e", zoneA, corev1.ConditionTrue)
	cordoned.Spec.Unschedulable = true
	other = append(other, cordoned, testCSINode("e", ebs))
	e := newEnv(t, cfg, nil, append(moverObjects(), other...)...)
	tmp := exportTemp()

	// 1. The task, and a copy of the application's snapshot in Stork's namespace.
	wantStatus(t, e.export(), storkv1.VolumePending, "PreparingSnapshot", storkNS+"/"+tmp)
	tk := e.task(exportTaskName())
	if tk.Spec.Type != storkv1.TaskUpload || tk.Spec.Driver != Name || tk.Labels[storkv1.LabelTaskDriver] != Name || tk.Spec.NodeName != "" ||
		tk.Spec.VolumeName != "pv-db" || tk.Spec.SnapshotID != "snap" || tk.Spec.BackupLocation != "loc" || tk.Spec.AccessSecretName != accessName ||
		tk.Spec.Tags["pvc"] != "db" {
		t.Errorf("task %+v", tk)
	}
	if len(tk.OwnerReferences) != 1 || tk.OwnerReferences[0].UID != backupUID || tk.OwnerReferences[0].Kind != "Backup" {
		t.Errorf("task owners %+v", tk.OwnerReferences)
	}
	vsc := &snapv1.VolumeSnapshotContent{}
	e.get(vsc, "", tmp)
	if vsc.Spec.DeletionPolicy != snapv1.VolumeSnapshotContentRetain || ptr.Deref(vsc.Spec.Source.SnapshotHandle, "") != "snap-handle-snap" ||
		vsc.Spec.VolumeSnapshotRef.Namespace != storkNS || vsc.Spec.VolumeSnapshotRef.Name != tmp {
		t.Errorf("temporary VolumeSnapshotContent %+v", vsc.Spec)
	}
	vs := &snapv1.VolumeSnapshot{}
	e.get(vs, storkNS, tmp)
	for _, o := range []client.Object{vs, vsc} {
		wantWork(t, o, "Backup", appNS, "bk", backupUID)
		if _, ok := o.GetAnnotations()[AnnForClaim]; ok {
			t.Errorf("%T of a backup serves a claim", o)
		}
	}
	if e.exists(&corev1.PersistentVolumeClaim{}, storkNS, tmp) {
		t.Fatal("the temporary claim was made before its snapshot was ready")
	}

	// 2. The copy is ready: the temporary claim, from it, as large as the snapshot; but no
	// node can take the mover.
	setStatus(e, vs, storkNS, tmp, func(v *snapv1.VolumeSnapshot) {
		v.Status = &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: ptr.To(tmp), ReadyToUse: ptr.To(true), RestoreSize: ptr.To(resource.MustParse("12Gi"))}
	})
	wantStatus(t, e.export(), storkv1.VolumePending, drivers.ReasonNoHealthyStorage, "no node is", "zone "+zoneA, ebs)
	pvc := &corev1.PersistentVolumeClaim{}
	e.get(pvc, storkNS, tmp)
	if ds := pvc.Spec.DataSource; ds == nil || ds.Kind != "VolumeSnapshot" || ds.Name != tmp || ptr.Deref(ds.APIGroup, "") != snapv1.GroupName {
		t.Errorf("temporary claim's data source %+v", ds)
	}
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("12Gi")) != 0 || ptr.Deref(pvc.Spec.StorageClassName, "") != "gp3" ||
		!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("temporary claim %+v", pvc.Spec)
	}
	wantWork(t, pvc, "Backup", appNS, "bk", backupUID)
	if n := count(e, &corev1.PodList{}); n != 0 {
		t.Fatalf("%d pods made", n)
	}
	if tk := e.task(exportTaskName()); tk.Status.Attempts != 0 {
		t.Errorf("attempts %d before any pod", tk.Status.Attempts)
	}

	// 3. A node in the zone with the CSI driver: the mover pod of attempt 1.
	e.create(readyNode("a", zoneA)...)
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "node a", "attempt 1 of 3")
	tk = e.task(exportTaskName())
	if tk.Status.Attempts != 1 {
		t.Errorf("attempts %d, want 1", tk.Status.Attempts)
	}
	pod := &corev1.Pod{}
	e.get(pod, storkNS, exportPod(1))
	checkMoverPod(t, pod, tk, moverPodWant{verb: "backup", readOnly: true, node: "a", zone: zoneA, claim: tmp, image: "registry.example/stork:test", sa: "mover-sa",
		requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("3Gi")}})
	wantWork(t, pod, "Backup", appNS, "bk", backupUID)

	// 4. Starting, then running: the task's progress.
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "is starting")
	if n := count(e, &corev1.PodList{}); n != 1 {
		t.Fatalf("%d pods, want 1", n)
	}
	setStatus(e, pod, storkNS, pod.Name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning })
	p := e.task(exportTaskName())
	setStatus(e, p, appNS, p.Name, func(tk *storkv1.VolumeTask) {
		tk.Status.Phase, tk.Status.Progress = storkv1.TaskRunning, storkv1.Progress{BytesDone: 100, BytesTotal: 400}
	})
	st := e.export()
	wantStatus(t, st, storkv1.VolumeInProgress, "Moving", "running")
	if st.Progress.BytesDone != 100 || st.Progress.BytesTotal != 400 || st.VolumeName != "pv-db" {
		t.Errorf("status %+v", st)
	}

	// 5. The mover reports success: the result, and the temporaries go.
	setStatus(e, p, appNS, p.Name, func(tk *storkv1.VolumeTask) {
		tk.Status.Phase, tk.Status.RepositorySnapshotID, tk.Status.SizeBytes = storkv1.TaskSucceeded, repoSnapID, 400
		tk.Status.Progress = storkv1.Progress{BytesDone: 400, BytesTotal: 400}
	})
	setStatus(e, pod, storkNS, pod.Name, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	for call := 1; call <= 2; call++ {
		st = e.export()
		if st.Phase != storkv1.VolumeSucceeded || st.RepositorySnapshotID != repoSnapID || st.SizeBytes != 400 || st.VolumeName != "pv-db" || st.Progress.BytesDone != 400 {
			t.Fatalf("call %d: status %+v", call, st)
		}
	}
	wantGone(t, e, tmp, 1)
	if !e.exists(&snapv1.VolumeSnapshot{}, appNS, "snap") || !e.exists(&snapv1.VolumeSnapshotContent{}, "", "snap-content") {
		t.Error("the application's snapshot was deleted")
	}
}

// wantGone fails unless the temporaries tmp of a task are gone: pods of attempts 1..attempts,
// the claim, the VolumeSnapshot and its content.
func wantGone(t *testing.T, e *env, tmp string, attempts int) {
	t.Helper()
	for i := 1; i <= attempts; i++ {
		if e.exists(&corev1.Pod{}, storkNS, tmp+"-"+strconv.Itoa(i)) {
			t.Errorf("mover pod of attempt %d left behind", i)
		}
	}
	if e.exists(&corev1.PersistentVolumeClaim{}, storkNS, tmp) {
		t.Error("temporary claim left behind")
	}
	if e.exists(&snapv1.VolumeSnapshot{}, storkNS, tmp) {
		t.Error("temporary VolumeSnapshot left behind")
	}
	if e.exists(&snapv1.VolumeSnapshotContent{}, "", tmp) {
		t.Error("temporary VolumeSnapshotContent left behind")
	}
}

type moverPodWant struct {
	verb             string
	readOnly         bool
	node, zone       string
	claim            string
	image, sa        string
	requests, limits corev1.ResourceList
}

func checkMoverPod(t *testing.T, pod *corev1.Pod, tk *storkv1.VolumeTask, w moverPodWant) {
	t.Helper()
	if pod.Labels[LabelMover] != "true" || pod.Labels[LabelMoverTask] != string(tk.UID) || tk.UID == "" || pod.Labels[LabelMoverNode] != w.node {
		t.Errorf("pod labels %v", pod.Labels)
	}
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyNever || s.ServiceAccountName != w.sa || len(s.Containers) != 1 || len(s.InitContainers) != 0 {
		t.Fatalf("pod spec %+v", s)
	}
	if s.HostNetwork || s.HostPID || s.HostIPC {
		t.Error("the mover pod shares a host namespace")
	}
	c := s.Containers[0]
	if c.Image != w.image || !slices.Equal(c.Command, []string{"/stork-agent", "mover", w.verb}) {
		t.Errorf("image %s command %q", c.Image, c.Command)
	}
	if !slices.Contains(c.Args, "--task="+tk.Namespace+"/"+tk.Name) || !slices.Contains(c.Args, "--volume="+MoverVolumePath) ||
		!slices.Contains(c.Args, "--access="+MoverAccessPath) {
		t.Errorf("args %q", c.Args)
	}
	// No secret material in the arguments or environment.
	for _, a := range append(append([]string{}, c.Args...), c.Command...) {
		for _, secret := range []string{passphrase, secretKey, "s3://"} {
			if strings.Contains(a, secret) {
				t.Errorf("argument %q holds secret material", a)
			}
		}
	}
	if len(c.EnvFrom) != 0 {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	for _, ev := range c.Env {
		if strings.Contains(ev.Value, passphrase) || strings.Contains(ev.Value, secretKey) || (ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil) {
			t.Errorf("environment variable %s holds secret material", ev.Name)
		}
	}
	// The access Secret and the claim as volumes.
	vols := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	am, ok := mounts[MoverAccessPath]
	if !ok || !am.ReadOnly || vols[am.Name].Secret == nil || vols[am.Name].Secret.SecretName != tk.Spec.AccessSecretName {
		t.Errorf("access mount %+v, volume %+v", am, vols[am.Name])
	}
	vm, ok := mounts[MoverVolumePath]
	if !ok || vm.ReadOnly != w.readOnly {
		t.Errorf("volume mount %+v, want read-only=%v", vm, w.readOnly)
	}
	if src := vols[vm.Name].PersistentVolumeClaim; src == nil || src.ClaimName != w.claim || src.ReadOnly != w.readOnly {
		t.Errorf("volume %+v, want claim %s read-only=%v", vols[vm.Name], w.claim, w.readOnly)
	}
	for _, m := range c.VolumeMounts {
		if v := vols[m.Name]; v.HostPath != nil {
			t.Errorf("host path volume %s", m.Name)
		}
	}
	// On the chosen node, in the zone.
	if a := s.Affinity; a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		t.Fatal("no required node affinity")
	}
	terms := s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 {
		t.Fatalf("node affinity terms %+v", terms)
	}
	// The node by name (a field: its hostname label may differ), and its zone.
	if f := terms[0].MatchFields; len(f) != 1 || f[0].Key != "metadata.name" || f[0].Operator != corev1.NodeSelectorOpIn || !slices.Equal(f[0].Values, []string{w.node}) {
		t.Errorf("node affinity fields %+v, want metadata.name In [%s]", f, w.node)
	}
	var want []corev1.NodeSelectorRequirement
	if w.zone != "" {
		want = append(want, in(storkv1.LabelZone, w.zone))
	}
	if len(terms[0].MatchExpressions) != len(want) {
		t.Errorf("node affinity %+v, want %+v", terms[0].MatchExpressions, want)
	}
	for _, r := range want {
		if !slices.ContainsFunc(terms[0].MatchExpressions, func(x corev1.NodeSelectorRequirement) bool {
			return x.Key == r.Key && x.Operator == r.Operator && slices.Equal(x.Values, r.Values)
		}) {
			t.Errorf("node affinity %+v lacks %+v", terms[0].MatchExpressions, r)
		}
	}
	// Restricted.
	psc := s.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) == 0 || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	// The mover's user reads the access Secret (mode 0440, owned by root) and writes a fresh
	// volume's root only through the pod's fsGroup.
	if psc != nil && (psc.FSGroup == nil || *psc.FSGroup == 0 || psc.RunAsGroup == nil || *psc.FSGroup != *psc.RunAsGroup) {
		t.Errorf("pod fsGroup %v, want the mover's group %v", ptr.Deref(psc.FSGroup, -1), ptr.Deref(psc.RunAsGroup, -1))
	}
	csc := c.SecurityContext
	if csc == nil || ptr.Deref(csc.AllowPrivilegeEscalation, true) || !ptr.Deref(csc.ReadOnlyRootFilesystem, false) || ptr.Deref(csc.Privileged, false) ||
		csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) != 0 {
		t.Errorf("container security context %+v", csc)
	}
	if csc != nil && ptr.Deref(csc.RunAsUser, 1) == 0 {
		t.Error("the container runs as root")
	}
	// Resources from the configuration.
	for name, q := range w.requests {
		if got := c.Resources.Requests[name]; got.Cmp(q) != 0 {
			t.Errorf("request %s = %s, want %s", name, got.String(), q.String())
		}
	}
	for name, q := range w.limits {
		if got := c.Resources.Limits[name]; got.Cmp(q) != 0 {
			t.Errorf("limit %s = %s, want %s", name, got.String(), q.String())
		}
	}
}

// runningMover is a mover pod of another task running on node.
func runningMover(name, node string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: name,
		Labels: map[string]string{LabelMover: "true", LabelMoverNode: node, LabelMoverTask: "other-task", LabelTemporary: "true"}},
		Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "mover", Image: "x"}}},
		Status: corev1.PodStatus{Phase: phase}}
}

func TestMoverConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   map[string]string
		objs  []client.Object
		node  string // "" when the task must wait
		wait  string
		after func(e *env) // frees a slot, when set: the task then starts on node
	}{
		{"a free node", nil, readyNode("a", zoneA), "a", "", nil},
		{"per-node limit", map[string]string{ConfigMoverMaxPerNode: "1"},
			append(readyNode("a", zoneA), runningMover("busy", "a", corev1.PodRunning)), "", ConfigMoverMaxPerNode + "=1",
			func(e *env) {
				setStatus(e, &corev1.Pod{}, storkNS, "busy", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
			}},
		{"a pending mover counts", nil,
			append(readyNode("a", zoneA), runningMover("busy", "a", corev1.PodPending)), "", ConfigMoverMaxPerNode,
			func(e *env) {
				if err := e.c.Delete(e.ctx, runningMover("busy", "a", "")); err != nil {
					e.t.Fatal(err)
				}
			}},
		{"finished movers do not count", nil,
			append(readyNode("a", zoneA), runningMover("done", "a", corev1.PodSucceeded), runningMover("failed", "a", corev1.PodFailed)), "a", "", nil},
		{"room for two per node", map[string]string{ConfigMoverMaxPerNode: "2"},
			append(readyNode("a", zoneA), runningMover("busy", "a", corev1.PodRunning)), "a", "", nil},
		{"the least busy node", map[string]string{ConfigMoverMaxPerNode: "3"},
			append(append(readyNode("a", zoneA), readyNode("b", zoneA)...), runningMover("busy", "a", corev1.PodRunning)), "b", "", nil},
		{"cluster limit", map[string]string{ConfigMoverMax: "1", ConfigMoverMaxPerNode: "5"},
			append(readyNode("a", zoneA), runningMover("elsewhere", "x", corev1.PodRunning)), "", ConfigMoverMax + "=1",
			func(e *env) {
				setStatus(e, &corev1.Pod{}, storkNS, "elsewhere", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := moverEnv(t, tc.cfg, tc.objs...)
			st := e.export()
			node := tc.node
			if tc.node == "" {
				wantStatus(t, st, storkv1.VolumePending, "WaitingForMoverSlot", tc.wait)
				if e.exists(&corev1.Pod{}, storkNS, exportPod(1)) {
					t.Fatal("a mover pod was started")
				}
				if tk := e.task(exportTaskName()); tk.Status.Attempts != 0 {
					t.Errorf("attempts %d while waiting", tk.Status.Attempts)
				}
				if tc.after == nil {
					return
				}
				tc.after(e)
				st, node = e.export(), "a"
			}
			wantStatus(t, st, storkv1.VolumeInProgress, "MoverStarting", "node "+node)
			pod := &corev1.Pod{}
			e.get(pod, storkNS, exportPod(1))
			if pod.Labels[LabelMoverNode] != node {
				t.Errorf("pod on node %s, want %s", pod.Labels[LabelMoverNode], node)
			}
		})
	}
}

// Where the temporary claim is provisioned before its pod (Immediate binding), the mover waits
// for the volume and goes where its node affinity says.
func TestMoverFollowsAProvisionedVolume(t *testing.T) {
	immediate := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "gp3"}, Provisioner: ebs}
	objs := []client.Object{readyTempSnapshot()}
	for _, o := range moverObjects() {
		if _, ok := o.(*storagev1.StorageClass); !ok {
			objs = append(objs, o)
		}
	}
	objs = append(append(append(objs, immediate), readyNode("a", zoneA)...), readyNode("b", zoneA)...)
	e := newEnv(t, nil, nil, objs...)
	wantStatus(t, e.export(), storkv1.VolumePending, "WaitingForVolume", "provisioned")

	e.create(csiPV("pv-tmp", ebs, "", term(in(corev1.LabelHostname, "b"))))
	update(e, &corev1.PersistentVolumeClaim{}, storkNS, exportTemp(), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv-tmp" })
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "node b")
}

func TestMoverRetries(t *testing.T) {
	e := moverEnv(t, map[string]string{ConfigMoverAttempts: "2"}, readyNode("a", zoneA)...)
	started, failed := testutil.ToFloat64(moverPodsStarted.WithLabelValues("backup")), testutil.ToFloat64(moverFailures.WithLabelValues("MoverFailed"))
	defer func() {
		if d := testutil.ToFloat64(moverPodsStarted.WithLabelValues("backup")) - started; d != 2 {
			t.Errorf("stork_csi_mover_pods_started_total{verb=backup} grew by %v, want 2", d)
		}
		if d := testutil.ToFloat64(moverFailures.WithLabelValues("MoverFailed")) - failed; d != 1 {
			t.Errorf("stork_csi_mover_failures_total{reason=MoverFailed} grew by %v, want 1", d)
		}
	}()
	failPod := func(name, msg string) {
		setStatus(e, &corev1.Pod{}, storkNS, name, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "mover",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: msg}}}}
		})
	}
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "attempt 1 of 2")
	failPod(exportPod(1), "connection reset")

	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "attempt 2 of 2")
	if e.exists(&corev1.Pod{}, storkNS, exportPod(1)) {
		t.Error("the failed pod of attempt 1 was not deleted")
	}
	if !e.exists(&corev1.Pod{}, storkNS, exportPod(2)) {
		t.Fatal("no pod for attempt 2")
	}
	if tk := e.task(exportTaskName()); tk.Status.Attempts != 2 {
		t.Errorf("attempts %d", tk.Status.Attempts)
	}
	failPod(exportPod(2), "repository is locked")

	st := e.export()
	wantStatus(t, st, storkv1.VolumeFailed, "MoverFailed", "repository is locked", "exit code 1", "attempt 2 of 2")
	tk := e.task(exportTaskName())
	if tk.Status.Phase != storkv1.TaskFailed || tk.Status.Reason != "MoverFailed" || !strings.Contains(tk.Status.Message, "repository is locked") ||
		tk.Status.CompletionTime == nil {
		t.Errorf("task status %+v", tk.Status)
	}
	wantGone(t, e, exportTemp(), 2)
	if n := count(e, &corev1.PodList{}); n != 0 {
		t.Errorf("%d pods left", n)
	}
	// Final: nothing more starts.
	wantStatus(t, e.export(), storkv1.VolumeFailed, "MoverFailed")
	if n := count(e, &corev1.PodList{}); n != 0 {
		t.Errorf("%d pods started after the task failed", n)
	}
}

func TestMoverPodDeleted(t *testing.T) {
	e := moverEnv(t, map[string]string{ConfigMoverAttempts: "2"}, readyNode("a", zoneA)...)
	del := func(name string) {
		if err := e.c.Delete(e.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: storkNS, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	e.export()
	del(exportPod(1))
	wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting", "attempt 2 of 2")
	del(exportPod(2))
	wantStatus(t, e.export(), storkv1.VolumeFailed, "MoverFailed", "deleted")
}

func TestMoverNotStarted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		fails  bool
		msg    string
	}{
		{"unschedulable", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: "Unschedulable", Message: "0/3 nodes are available: insufficient memory"}}}, true, "insufficient memory"},
		{"no image", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "mover",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "no such image"}}}}}, true, "ImagePullBackOff"},
		// A volume that never mounts keeps a pod ContainerCreating: it times out too.
		{"still creating", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "mover",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}, true, "still Pending"},
		{"no status yet", corev1.PodStatus{}, true, "no status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := moverEnv(t, map[string]string{ConfigMoverStartTimeout: "1m"}, readyNode("a", zoneA)...)
			e.export()
			setStatus(e, &corev1.Pod{}, storkNS, exportPod(1), func(p *corev1.Pod) { p.Status = tc.status })
			// Within the timeout: starting (with the complaint, if there is one).
			wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting")

			update(e, &corev1.Pod{}, storkNS, exportPod(1), func(p *corev1.Pod) {
				p.CreationTimestamp = metav1.NewTime(time.Now().Add(-2 * time.Minute))
			})
			st := e.export()
			if !tc.fails {
				wantStatus(t, st, storkv1.VolumeInProgress, "MoverStarting", tc.msg)
				return
			}
			wantStatus(t, st, storkv1.VolumeFailed, "MoverNotStarted", tc.msg, "1m0s")
			if tk := e.task(exportTaskName()); tk.Status.Phase != storkv1.TaskFailed || tk.Status.Reason != "MoverNotStarted" {
				t.Errorf("task status %+v", tk.Status)
			}
			wantGone(t, e, exportTemp(), 1)
		})
	}
}

func TestExportFailures(t *testing.T) {
	block := csiPV("pv-db", ebs, "db", term(in(ebsZone, zoneA)))
	block.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	for _, tc := range []struct {
		name   string
		change func(objs []client.Object) []client.Object
		reason string
	}{
		{"source snapshot gone", func(objs []client.Object) []client.Object {
			return slices.DeleteFunc(objs, func(o client.Object) bool {
				_, ok := o.(*snapv1.VolumeSnapshot)
				return ok && o.GetNamespace() == appNS
			})
		}, "SnapshotNotFound"},
		{"source snapshot failed", func(objs []client.Object) []client.Object {
			for _, o := range objs {
				if vs, ok := o.(*snapv1.VolumeSnapshot); ok && vs.Namespace == appNS {
					vs.Status = &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("gone bad")}}
				}
			}
			return objs
		}, "SnapshotFailed"},
		{"source content gone", func(objs []client.Object) []client.Object {
			return slices.DeleteFunc(objs, func(o client.Object) bool { _, ok := o.(*snapv1.VolumeSnapshotContent); return ok })
		}, "SnapshotNotFound"},
		{"temporary snapshot failed", func(objs []client.Object) []client.Object {
			for _, o := range objs {
				if vs, ok := o.(*snapv1.VolumeSnapshot); ok && vs.Namespace == storkNS {
					vs.Status = &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("cannot import")}}
				}
			}
			return objs
		}, "SnapshotFailed"},
		{"source volume gone", func(objs []client.Object) []client.Object {
			return slices.DeleteFunc(objs, func(o client.Object) bool { _, ok := o.(*corev1.PersistentVolume); return ok })
		}, "VolumeGone"},
		{"block volume", func(objs []client.Object) []client.Object {
			objs = slices.DeleteFunc(objs, func(o client.Object) bool { _, ok := o.(*corev1.PersistentVolume); return ok })
			return append(objs, block.DeepCopy())
		}, "BlockVolume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := tc.change(append(append(moverObjects(), readyTempSnapshot()), readyNode("a", zoneA)...))
			e := newEnv(t, nil, nil, objs...)
			wantStatus(t, e.export(), storkv1.VolumeFailed, tc.reason)
			tk := e.task(exportTaskName())
			if tk.Status.Phase != storkv1.TaskFailed || tk.Status.Reason != tc.reason || tk.Status.Message == "" {
				t.Errorf("task status %+v", tk.Status)
			}
			wantGone(t, e, exportTemp(), 1)
			wantStatus(t, e.export(), storkv1.VolumeFailed, tc.reason)
		})
	}
}

// --- imports ---

func importReq() drivers.ImportRequest {
	return drivers.ImportRequest{ID: importID, Namespace: appNS,
		Owner:    &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Restore", Name: "rs", UID: restoreUID, Controller: ptr.To(true)},
		Location: "loc", AccessSecret: accessName, RepositorySnapshotID: repoSnapID, Topology: storkv1.Topology{Zone: zoneA},
		TargetNamespace: targetNS, TargetClaim: targetClaim, SizeBytes: 5 << 30, StorageClassName: "gp3",
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}}
}

func importTaskName() string { return objectName("download", importID) }
func importTemp() string     { return objectName("stork-mover", appNS, importTaskName()) }

func (e *env) imp() drivers.VolumeStatus {
	e.t.Helper()
	st, err := e.d.Import(e.ctx, importReq())
	if err != nil {
		e.t.Fatalf("Import: %v", err)
	}
	return st
}

func TestImportStartsAMover(t *testing.T) {
	e := newEnv(t, nil, nil, append(append(moverObjects(), readyNode("a", zoneA)...), readyNode("b", zoneB)...)...)
	tmp := importTemp()
	wantStatus(t, e.imp(), storkv1.VolumeInProgress, "MoverStarting", "node a")

	tk := e.task(importTaskName())
	if tk.Spec.Type != storkv1.TaskDownload || tk.Spec.Driver != Name || tk.Labels[storkv1.LabelTaskDriver] != Name || tk.Spec.VolumeName != tmp ||
		tk.Spec.RepositorySnapshotID != repoSnapID || tk.Spec.BackupLocation != "loc" || tk.Spec.AccessSecretName != accessName ||
		len(tk.OwnerReferences) != 1 || tk.OwnerReferences[0].UID != restoreUID || tk.Status.Attempts != 1 {
		t.Errorf("task %+v", tk)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	e.get(pvc, storkNS, tmp)
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.Value() != 5<<30 || ptr.Deref(pvc.Spec.StorageClassName, "") != "gp3" ||
		pvc.Spec.DataSource != nil || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}) {
		t.Errorf("temporary claim %+v", pvc.Spec)
	}
	wantWork(t, pvc, "Restore", appNS, "rs", restoreUID)
	if pvc.Annotations[AnnForClaim] != targetNS+"/"+targetClaim {
		t.Errorf("claim annotations %v", pvc.Annotations)
	}
	pod := &corev1.Pod{}
	e.get(pod, storkNS, moverPod(importTaskName(), 1))
	checkMoverPod(t, pod, tk, moverPodWant{verb: "restore", readOnly: false, node: "a", zone: zoneA, claim: tmp, image: e.d.cfg.image, sa: "stork-mover",
		requests: e.d.cfg.requests, limits: e.d.cfg.limits})
	if n := count(e, &snapv1.VolumeSnapshotList{}, client.InNamespace(storkNS)); n != 0 {
		t.Errorf("an import made %d VolumeSnapshots", n)
	}

	// Idempotent.
	wantStatus(t, e.imp(), storkv1.VolumeInProgress, "MoverStarting", "is starting")
	if n := count(e, &corev1.PodList{}); n != 1 {
		t.Errorf("%d pods", n)
	}
}

func TestImportFailures(t *testing.T) {
	t.Run("invalid request", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		for _, change := range []func(*drivers.ImportRequest){
			func(r *drivers.ImportRequest) { r.Location = "" },
			func(r *drivers.ImportRequest) { r.AccessSecret = "" },
			func(r *drivers.ImportRequest) { r.RepositorySnapshotID = "" },
		} {
			req := importReq()
			change(&req)
			st, err := e.d.Import(e.ctx, req)
			if err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "InvalidRequest" {
				t.Errorf("Import = %+v, %v", st, err)
			}
		}
		if n := count(e, &storkv1.VolumeTaskList{}); n != 0 {
			t.Errorf("%d tasks made", n)
		}
	})
	t.Run("storage class not found", func(t *testing.T) {
		e := newEnv(t, nil, nil, readyNode("a", zoneA)...)
		wantStatus(t, e.imp(), storkv1.VolumeFailed, "StorageClassNotFound", "gp3")
		if tk := e.task(importTaskName()); tk.Status.Phase != storkv1.TaskFailed {
			t.Errorf("task %+v", tk.Status)
		}
		if e.exists(&corev1.PersistentVolumeClaim{}, storkNS, importTemp()) {
			t.Error("a temporary claim was made")
		}
	})
	t.Run("the mover failed", func(t *testing.T) {
		e := newEnv(t, nil, nil, append(moverObjects(), readyNode("a", zoneA)...)...)
		e.imp()
		setStatus(e, &storkv1.VolumeTask{}, appNS, importTaskName(), func(tk *storkv1.VolumeTask) {
			tk.Status.Phase, tk.Status.Reason, tk.Status.Message = storkv1.TaskFailed, "BackupNotFound", "backup x is not in the repository"
		})
		wantStatus(t, e.imp(), storkv1.VolumeFailed, "BackupNotFound", "not in the repository")
		wantGone(t, e, importTemp(), 1)
	})
	t.Run("no node in the zone", func(t *testing.T) {
		e := newEnv(t, nil, nil, append(moverObjects(), readyNode("b", zoneB)...)...)
		wantStatus(t, e.imp(), storkv1.VolumePending, drivers.ReasonNoHealthyStorage, "zone "+zoneA)
	})
}

// The mover finishes between the driver's read of its task and its read of the pod: the pod
// has ended, and the task, read again, holds the result. On the last attempt too, the driver
// must not take the ended pod for a failure and overwrite the result.
func TestMoverFinishedBetweenReads(t *testing.T) {
	for _, attempts := range []string{"1", "3"} {
		t.Run("attempts="+attempts, func(t *testing.T) {
			var e *env
			armed := false
			funcs := &interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Pod); ok && armed && key.Name == exportPod(1) {
					armed = false
					tk := &storkv1.VolumeTask{}
					if err := c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: exportTaskName()}, tk); err != nil {
						return err
					}
					tk.Status.Phase, tk.Status.RepositorySnapshotID = storkv1.TaskSucceeded, repoSnapID
					if err := c.Status().Update(ctx, tk); err != nil {
						return err
					}
					p := &corev1.Pod{}
					if err := c.Get(ctx, key, p); err != nil {
						return err
					}
					p.Status.Phase = corev1.PodSucceeded
					if err := c.Status().Update(ctx, p); err != nil {
						return err
					}
				}
				return c.Get(ctx, key, obj, opts...)
			}}
			e = newEnv(t, map[string]string{ConfigMoverAttempts: attempts}, funcs,
				append(append(moverObjects(), readyTempSnapshot()), readyNode("a", zoneA)...)...)
			wantStatus(t, e.export(), storkv1.VolumeInProgress, "MoverStarting")
			armed = true
			st, err := e.d.Export(e.ctx, exportReq())
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			if st.Phase == storkv1.VolumeFailed {
				t.Fatalf("a mover that succeeded was reported failed: %+v", st)
			}
			if tk := e.task(exportTaskName()); tk.Status.Phase != storkv1.TaskSucceeded || tk.Status.RepositorySnapshotID != repoSnapID {
				t.Fatalf("task status %+v, want the mover's result", tk.Status)
			}
			if e.exists(&corev1.Pod{}, storkNS, exportPod(2)) {
				t.Error("a second mover was started after the first succeeded")
			}
			st = e.export()
			if st.Phase != storkv1.VolumeSucceeded || st.RepositorySnapshotID != repoSnapID {
				t.Fatalf("next call: %+v", st)
			}
		})
	}
}
