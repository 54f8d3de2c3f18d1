package csi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/transfer"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/taskstatus"
)

// The data mover's work item is a VolumeTask (driver csi, no node) in the namespace of the
// Backup or Restore, owned by it: the mover pod reports progress and the result in its status,
// and the driver reads them from there. Everything else the work needs lives in Stork's
// namespace, named after the task: a VolumeSnapshot and pre-provisioned VolumeSnapshotContent
// pointing at the application's snapshot (backups), a temporary claim, and the mover pod of each
// attempt. Every call re-reads all of it and moves one step, so a restarted controller picks the
// work up where it was.

// Export implements drivers.Exporter: a temporary claim is provisioned from the snapshot in
// Stork's namespace and a mover pod backs it up, mounted read-only.
func (d *Driver) Export(ctx context.Context, req drivers.ExportRequest) (drivers.VolumeStatus, error) {
	task, err := d.ensureTask(ctx, &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Source.Namespace, Name: objectName("upload", req.ID)},
		Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskUpload, VolumeName: req.Source.VolumeName, SnapshotID: req.Source.SnapshotID,
			BackupLocation: req.Location, AccessSecretName: req.AccessSecret, Tags: req.Tags, StrictChangeDetection: req.StrictChangeDetection},
	}, req.Owner)
	if errors.Is(err, errForeignTask) {
		return drivers.VolumeStatus{VolumeName: req.Source.VolumeName, Phase: storkv1.VolumeFailed, Reason: "TaskConflict", Message: err.Error()}, nil
	}
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	w := work{kind: "Backup", namespace: task.Namespace, owner: req.Owner}
	if final(task) {
		d.cleanup(ctx, task, true)
		return taskStatus(task, req.Source.VolumeName), nil
	}
	tmp := tempName(task)
	src, st, err := d.readySnapshot(ctx, req.Source.Namespace, req.Source.SnapshotID)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	switch st.Phase {
	case storkv1.VolumeFailed:
		return d.failTask(ctx, task, st.Reason, st.Message)
	case storkv1.VolumePending:
		return pending(req.Source.VolumeName, st.Reason, st.Message), nil
	}
	content, st, err := d.boundContent(ctx, src)
	if err != nil || content == nil {
		if err == nil {
			return d.failTask(ctx, task, st.Reason, st.Message)
		}
		return drivers.VolumeStatus{}, err
	}
	vs, err := d.importSnapshot(ctx, w, content, d.cfg.namespace, tmp)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	if st := vsStatus(vs, drivers.VolumeStatus{}); st.Phase != storkv1.VolumeSucceeded {
		if st.Phase == storkv1.VolumeFailed {
			return d.failTask(ctx, task, st.Reason, st.Message)
		}
		return pending(req.Source.VolumeName, "PreparingSnapshot", "waiting for VolumeSnapshot "+d.cfg.namespace+"/"+tmp+" (a copy of the application's) to be ready"), nil
	}
	pv := &corev1.PersistentVolume{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: req.Source.VolumeName}, pv); err != nil {
		if apierrors.IsNotFound(err) {
			return d.failTask(ctx, task, "VolumeGone", "PersistentVolume "+req.Source.VolumeName+" was deleted: its storage class and size are unknown")
		}
		return drivers.VolumeStatus{}, err
	}
	if ptr.Deref(pv.Spec.VolumeMode, corev1.PersistentVolumeFilesystem) != corev1.PersistentVolumeFilesystem {
		return d.failTask(ctx, task, "BlockVolume", "PersistentVolume "+pv.Name+" is a block volume; the data mover backs up file systems only")
	}
	if pv.Spec.StorageClassName == "" {
		return d.failTask(ctx, task, "NoStorageClass", "PersistentVolume "+pv.Name+" has no storage class: the data mover provisions a copy of it from its snapshot with the volume's class")
	}
	size := pv.Spec.Capacity.Storage().DeepCopy()
	if vs.Status != nil && vs.Status.RestoreSize != nil && vs.Status.RestoreSize.Cmp(size) > 0 {
		size = vs.Status.RestoreSize.DeepCopy()
	}
	claim, _, err := d.ensureClaim(ctx, w, tmp, pv.Spec.StorageClassName, size, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, snapshotSource(tmp), nil)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	// A node-local volume's snapshot can be provisioned on its node only.
	topo, host := volumeTopology(pv)
	return d.runMover(ctx, task, w, claim, moverJob{verb: "backup", readOnly: true, zone: topo.Zone, host: host, csiDriver: csiDriver(pv), volume: req.Source.VolumeName})
}

// Import implements drivers.Importer: a mover pod restores the backup into a temporary claim of
// the target storage class in the target zone; its volume is then handed to the target claim
// (see handOver).
func (d *Driver) Import(ctx context.Context, req drivers.ImportRequest) (drivers.VolumeStatus, error) {
	if req.Location == "" || req.AccessSecret == "" || req.RepositorySnapshotID == "" {
		return drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "InvalidRequest",
			Message: "the import request needs a location, an access Secret and a repository snapshot ID"}, nil
	}
	name := objectName("download", req.ID)
	tmp := objectName("stork-mover", req.Namespace, name)
	task, err := d.ensureTask(ctx, &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: name},
		Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskDownload, VolumeName: tmp, BackupLocation: req.Location,
			AccessSecretName: req.AccessSecret, RepositorySnapshotID: req.RepositorySnapshotID, Verify: req.Verify, Paths: req.Paths},
	}, req.Owner)
	if errors.Is(err, errForeignTask) {
		return drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "TaskConflict", Message: err.Error()}, nil
	}
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	w := work{kind: "Restore", namespace: task.Namespace, owner: req.Owner, claim: req.TargetNamespace + "/" + req.TargetClaim}
	switch task.Status.Phase {
	case storkv1.TaskFailed:
		d.cleanup(ctx, task, true)
		return taskStatus(task, ""), nil
	case storkv1.TaskSucceeded:
		return d.handOver(ctx, task, req)
	}
	class := &storagev1.StorageClass{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: req.StorageClassName}, class); err != nil {
		if apierrors.IsNotFound(err) {
			return d.failTask(ctx, task, "StorageClassNotFound", "StorageClass "+req.StorageClassName+" does not exist: map the backup's class to one of this cluster's with spec.storageClassMapping")
		}
		return drivers.VolumeStatus{}, err
	}
	modes := req.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	job := moverJob{verb: "restore", zone: req.Topology.Zone, region: req.Topology.Region, csiDriver: class.Provisioner}
	// A class that provisions at once puts the volume wherever the provisioner likes: the
	// claim names a node of the target zone (the annotation the scheduler sets for classes
	// that wait for a consumer, which csi-provisioner honours for any class).
	var place func() (string, string, error)
	if (job.zone != "" || job.region != "") && (class.VolumeBindingMode == nil || *class.VolumeBindingMode == storagev1.VolumeBindingImmediate) {
		place = func() (string, string, error) { return d.nodeFor(ctx, job) }
	}
	claim, why, err := d.ensureClaim(ctx, w, tmp, req.StorageClassName, *resource.NewQuantity(req.SizeBytes, resource.BinarySI), modes, nil, place)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	if claim == nil {
		return pending("", drivers.ReasonNoHealthyStorage, why), nil
	}
	return d.runMover(ctx, task, w, claim, job)
}

// tempName names the temporaries of a task in Stork's namespace.
func tempName(t *storkv1.VolumeTask) string { return objectName("stork-mover", t.Namespace, t.Name) }

func final(t *storkv1.VolumeTask) bool {
	return t.Status.Phase == storkv1.TaskSucceeded || t.Status.Phase == storkv1.TaskFailed
}

func pending(volume, reason, msg string) drivers.VolumeStatus {
	return drivers.VolumeStatus{VolumeName: volume, Phase: storkv1.VolumePending, Reason: reason, Message: msg}
}

// taskStatus turns a task's status into a volume status.
func taskStatus(t *storkv1.VolumeTask, volume string) drivers.VolumeStatus {
	s := drivers.VolumeStatus{VolumeName: volume, Progress: t.Status.Progress, SizeBytes: t.Status.SizeBytes,
		RepositorySnapshotID: t.Status.RepositorySnapshotID, Verification: t.Status.Verification, Reason: t.Status.Reason, Message: t.Status.Message}
	s.Phase = taskstatus.VolumePhase(t.Status.Phase)
	return s
}

// errForeignTask is a task of the expected name that the work's owner does not own.
var errForeignTask = errors.New("the VolumeTask exists and belongs to another object; it is not used")

// ensureTask creates the task unless it exists, and returns it as stored. A task of that name
// that another object owns is not adopted (errForeignTask): its spec could name another
// namespace's access Secret.
func (d *Driver) ensureTask(ctx context.Context, t *storkv1.VolumeTask, owner *metav1.OwnerReference) (*storkv1.VolumeTask, error) {
	got := &storkv1.VolumeTask{}
	if err := d.api.Get(ctx, client.ObjectKeyFromObject(t), got); err == nil {
		if owner != nil && !ownedBy(got, owner.UID) {
			return nil, fmt.Errorf("VolumeTask %s: %w", keyOf(got), errForeignTask)
		}
		return got, nil
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading VolumeTask %s: %w", keyOf(t), err)
	}
	t.Labels = map[string]string{storkv1.LabelTaskDriver: Name}
	t.Spec.Driver = Name
	if owner != nil {
		t.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if err := d.c.Create(ctx, t); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return d.ensureTask(ctx, t, owner)
		}
		return nil, fmt.Errorf("creating VolumeTask %s: %w", keyOf(t), err)
	}
	return t, nil
}

// checkAccess refuses to mount an access Secret that the controllers did not make for the
// task's namespace, whatever the task names (the node agent checks the same).
func (d *Driver) checkAccess(ctx context.Context, task *storkv1.VolumeTask) (reason, msg string, err error) {
	secret := &corev1.Secret{}
	name := task.Spec.AccessSecretName
	if err := d.api.Get(ctx, client.ObjectKey{Namespace: d.cfg.namespace, Name: name}, secret); apierrors.IsNotFound(err) {
		return "AccessSecretMissing", fmt.Sprintf("access Secret %s/%s does not exist", d.cfg.namespace, name), nil
	} else if err != nil {
		return "", "", fmt.Errorf("reading access Secret %s/%s: %w", d.cfg.namespace, name, err)
	}
	if got := secret.Labels[access.LabelFor]; got != task.Namespace {
		return "InvalidAccess", fmt.Sprintf("access Secret %s/%s is for the work of namespace %q, not %q", d.cfg.namespace, name, got, task.Namespace), nil
	}
	return "", "", nil
}

// failTask ends the task as failed (when the mover never got to it, or gave up) and returns
// that status. The temporaries go with the next call.
func (d *Driver) failTask(ctx context.Context, task *storkv1.VolumeTask, reason, msg string) (drivers.VolumeStatus, error) {
	moverFailures.WithLabelValues(reason).Inc()
	if err := taskstatus.Finish(ctx, d.c, task, taskstatus.Result{}, transfer.Fail(reason, "%s", msg), "the stork controller"); err != nil {
		return drivers.VolumeStatus{}, err
	}
	d.cleanup(ctx, task, true)
	return taskStatus(task, task.Spec.VolumeName), nil
}

// ensureClaim creates the temporary claim ns/name in Stork's namespace unless it exists.
//
// place, if set, picks the node whose topology the volume is to be provisioned in (the claim's
// selected-node annotation); when it finds none, no claim is made and why says so.
func (d *Driver) ensureClaim(ctx context.Context, w work, name, class string, size resource.Quantity, modes []corev1.PersistentVolumeAccessMode,
	source *corev1.TypedLocalObjectReference, place func() (node, why string, err error)) (*corev1.PersistentVolumeClaim, string, error) {
	got := &corev1.PersistentVolumeClaim{}
	if err := d.api.Get(ctx, client.ObjectKey{Namespace: d.cfg.namespace, Name: name}, got); err == nil {
		return got, "", nil
	} else if !apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("reading PersistentVolumeClaim %s/%s: %w", d.cfg.namespace, name, err)
	}
	meta := w.meta(d.cfg.namespace, name)
	if place != nil {
		node, why, err := place()
		if err != nil || node == "" {
			return nil, why, err
		}
		meta.Annotations[AnnSelectedNode] = node
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: ptr.To(class),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			DataSource:       source,
		},
	}
	if err := d.c.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", fmt.Errorf("creating temporary PersistentVolumeClaim %s: %w", keyOf(pvc), err)
	}
	return pvc, "", nil
}

// moverJob is what one mover pod does.
type moverJob struct {
	verb         string // backup or restore
	readOnly     bool
	zone, region string
	host         string // the one node that can mount the volume, if it is node-local
	csiDriver    string
	volume       string // the source PersistentVolume, for statuses
}

// runMover moves the mover side of a task on: start the pod of the next attempt when there is
// none (and a slot is free), retry a pod that failed, fail the task after csi.moverAttempts
// failed pods or a pod that could not start for csi.moverStartTimeout, and report the mover's
// progress otherwise.
func (d *Driver) runMover(ctx context.Context, task *storkv1.VolumeTask, w work, claim *corev1.PersistentVolumeClaim, job moverJob) (drivers.VolumeStatus, error) {
	attempt := task.Status.Attempts
	pod := &corev1.Pod{}
	podErr := d.api.Get(ctx, client.ObjectKey{Namespace: d.cfg.namespace, Name: podName(task, attempt)}, pod)
	if podErr != nil && !apierrors.IsNotFound(podErr) {
		return drivers.VolumeStatus{}, fmt.Errorf("reading mover pod %s: %w", podName(task, attempt), podErr)
	}
	if attempt > 0 && podErr == nil {
		if pod.DeletionTimestamp != nil {
			// Never two movers on one claim: the next attempt waits for this pod to be gone.
			return drivers.VolumeStatus{VolumeName: job.volume, Phase: storkv1.VolumeInProgress, Reason: "MoverStopping",
				Message: "waiting for mover pod " + keyOf(pod) + " to stop before starting another"}, nil
		}
		switch pod.Status.Phase {
		case corev1.PodFailed, corev1.PodSucceeded:
			// The mover writes its result before it exits: a pod that ended with the task
			// not final failed, whatever its exit code. The task is read again, after the
			// pod: it was read before, and the mover may have finished in between.
			if err := d.api.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
				return drivers.VolumeStatus{}, fmt.Errorf("reading VolumeTask %s: %w", keyOf(task), err)
			}
			if final(task) {
				return drivers.VolumeStatus{VolumeName: job.volume, Phase: storkv1.VolumeInProgress, Reason: "MoverFinished",
					Message: "mover pod " + keyOf(pod) + " finished"}, nil
			}
			if attempt >= d.cfg.attempts {
				return d.failTask(ctx, task, "MoverFailed", fmt.Sprintf("mover pod %s/%s failed (attempt %d of %d): %s", pod.Namespace, pod.Name, attempt, d.cfg.attempts, podFailure(pod)))
			}
			d.deletePod(ctx, pod)
		default:
			return d.watchPod(ctx, task, pod, job)
		}
	} else if attempt > 0 && attempt >= d.cfg.attempts {
		return d.failTask(ctx, task, "MoverFailed", fmt.Sprintf("the mover pod of attempt %d of %d was deleted before it finished", attempt, d.cfg.attempts))
	}
	if reason, msg, err := d.checkAccess(ctx, task); err != nil {
		return drivers.VolumeStatus{}, err
	} else if reason != "" {
		return d.failTask(ctx, task, reason, msg)
	}
	// A new attempt: needs the temporary claim's volume where a slot is free. Choosing and
	// creating are one step for this process (the leader), so that two reconciles never both
	// take the last slot.
	d.slots.Lock()
	defer d.slots.Unlock()
	node, reason, why, err := d.chooseNode(ctx, claim, job)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	if node == "" {
		moverWaiting.WithLabelValues(reason).Inc()
		return pending(job.volume, reason, why), nil
	}
	// The pod's zone affinity is its node's zone, which is the volume's.
	n := &corev1.Node{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		return drivers.VolumeStatus{}, fmt.Errorf("reading node %s: %w", node, err)
	}
	job.zone = n.Labels[storkv1.LabelZone]
	orig := task.DeepCopy()
	task.Status.Attempts = attempt + 1
	if err := d.c.Status().Patch(ctx, task, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return drivers.VolumeStatus{}, fmt.Errorf("counting attempt %d of task %s: %w", attempt+1, keyOf(task), err)
	}
	p := d.moverPod(task, w, claim.Name, node, job)
	if err := d.c.Create(ctx, p); err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			// Refused by admission (a quota, a LimitRange, Pod Security): every retry would be.
			return d.failTask(ctx, task, "MoverRejected", fmt.Sprintf("creating mover pod %s: %v", keyOf(p), err))
		}
		return drivers.VolumeStatus{}, fmt.Errorf("creating mover pod %s: %w", keyOf(p), err)
	}
	moverPodsStarted.WithLabelValues(job.verb).Inc()
	d.log.Info("started a data mover pod", "pod", keyOf(p), "node", node, "task", keyOf(task), "attempt", attempt+1)
	return drivers.VolumeStatus{VolumeName: job.volume, Phase: storkv1.VolumeInProgress, Reason: "MoverStarting",
		Message: fmt.Sprintf("mover pod %s started on node %s (attempt %d of %d)", keyOf(p), node, attempt+1, d.cfg.attempts)}, nil
}

// watchPod reports a live mover pod: the task's progress while it runs, the scheduler's or
// kubelet's complaint while it cannot start, and a failure once that has lasted too long.
func (d *Driver) watchPod(ctx context.Context, task *storkv1.VolumeTask, pod *corev1.Pod, job moverJob) (drivers.VolumeStatus, error) {
	st := taskStatus(task, job.volume)
	if pod.Status.Phase == corev1.PodRunning {
		// A pod on a node that stopped reporting never ends by itself: it is deleted, and the
		// next call starts the next attempt elsewhere once it is gone.
		node := &corev1.Node{}
		if err := d.c.Get(ctx, client.ObjectKey{Name: pod.Labels[LabelMoverNode]}, node); err == nil {
			if c := nodeCondition(node, corev1.NodeReady); c != nil && c.Status != corev1.ConditionTrue &&
				time.Since(c.LastTransitionTime.Time) > d.cfg.startTimeout {
				d.log.Info("deleting a mover pod whose node is not Ready", "pod", keyOf(pod), "node", node.Name)
				d.deletePod(ctx, pod)
			}
		}
		st.Phase, st.Reason = storkv1.VolumeInProgress, "Moving"
		st.Message = fmt.Sprintf("mover pod %s is running on node %s", keyOf(pod), pod.Spec.NodeName)
		return st, nil
	}
	// Whatever keeps it (unschedulable, no image, a volume that does not mount), a pod that
	// is not running after csi.moverStartTimeout fails the work.
	why := startProblem(pod)
	if time.Since(pod.CreationTimestamp.Time) > d.cfg.startTimeout {
		switch {
		case why != "":
		case pod.Status.Phase == "":
			why = "it has no status (no kubelet took it)"
		default:
			why = "it is still " + string(pod.Status.Phase)
		}
		return d.failTask(ctx, task, "MoverNotStarted", fmt.Sprintf("mover pod %s did not start within %s: %s", keyOf(pod), d.cfg.startTimeout, why))
	}
	st.Phase, st.Reason = storkv1.VolumeInProgress, "MoverStarting"
	st.Message = "mover pod " + keyOf(pod) + " is starting"
	if why != "" {
		st.Message += ": " + why
	}
	return st, nil
}

// startProblem says why a pending pod has not started ("" when nothing is wrong yet).
func startProblem(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "not scheduled: " + c.Message
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason + ": " + w.Message
		}
	}
	return ""
}

// podFailure says how a mover pod ended: its container's termination message (the tail of the
// mover's log) and exit code.
func podFailure(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			msg := "exit code " + strconv.Itoa(int(t.ExitCode))
			if t.Message != "" {
				msg += ": " + t.Message
			}
			return msg
		}
	}
	if pod.Status.Message != "" {
		return pod.Status.Reason + ": " + pod.Status.Message
	}
	return "the pod ended without a container status"
}

// podName names the mover pod of one attempt: MoverPodPrefix, the task's UID, the attempt. The
// admission policy stork-mover-tasks (deploy/base/manifests/25-rbac-mover.yaml) reads the task's
// UID back from the name of the pod a mover's token is bound to: a mover writes the status of its
// own task only.
func podName(t *storkv1.VolumeTask, attempt int32) string {
	return MoverPodPrefix + string(t.UID) + "-" + strconv.Itoa(int(attempt))
}

// MoverPodPrefix starts the name of every mover pod.
const MoverPodPrefix = "stork-mover-"

func (d *Driver) deletePod(ctx context.Context, pod *corev1.Pod) {
	if err := d.c.Delete(ctx, pod, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		d.log.Info("could not delete a mover pod", "pod", keyOf(pod), "error", err.Error())
	}
}

// cleanup deletes a task's temporaries in Stork's namespace, best effort: what is left is
// the sweeper's. withClaim is false while the claim's volume is being handed over.
func (d *Driver) cleanup(ctx context.Context, task *storkv1.VolumeTask, withClaim bool) {
	tmp := tempName(task)
	var pods corev1.PodList
	if err := d.api.List(ctx, &pods, client.InNamespace(d.cfg.namespace), client.MatchingLabels{LabelMoverTask: string(task.UID)}); err == nil {
		for i := range pods.Items {
			d.deletePod(ctx, &pods.Items[i])
		}
	}
	objs := []client.Object{}
	if withClaim {
		objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: d.cfg.namespace, Name: tmp}})
	}
	objs = append(objs, snapshotObjects(d.cfg.namespace, tmp)...)
	for _, o := range objs {
		if err := d.c.Delete(ctx, o); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			d.log.Info("could not delete a temporary", "object", keyOf(o), "error", err.Error())
		}
	}
}
