package csi

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Labels of mover pods.
const (
	// LabelMover marks mover pods (counted for the concurrency limits).
	LabelMover = "stork.dev/mover"
	// LabelMoverTask is the UID of the VolumeTask a mover pod works on.
	LabelMoverTask = "stork.dev/mover-task"
	// LabelMoverNode is the node a mover pod was placed on (per-node limit).
	LabelMoverNode = "stork.dev/mover-node"
)

// MoverCommand is the data mover's binary in the mover image (Stork's).
const MoverCommand = "/stork-agent"

// Paths inside the mover container. Not under /stork: that is the controller's binary in
// Stork's image, and the runtime cannot mount onto a path below a file.
const (
	MoverVolumePath = "/mover/volume"
	MoverAccessPath = "/mover/access"
)

// moverUser is the non-root user mover pods run as.
const moverUser = 65532

// moverPod is the pod of the task's next attempt: `stork-agent mover <verb>` on the chosen
// node (and the volume's zone), mounting the temporary claim (read-only for backups) and the
// task's access Secret as files, never in its environment or arguments. It runs under the
// restricted Pod Security Standard: non-root, no privilege escalation, no capabilities, the
// runtime's seccomp profile, a read-only root file system. A non-root mover cannot read files
// only their owner may read, and restores files owned by itself (the engine skips chown when
// it is not permitted).
func (d *Driver) moverPod(task *storkv1.VolumeTask, w work, claim, node string, job moverJob) *corev1.Pod {
	attempt := task.Status.Attempts
	m := w.meta(d.cfg.namespace, podName(task, attempt))
	m.Annotations[AnnMoverTask] = task.Namespace + "/" + task.Name
	for k, v := range map[string]string{LabelMover: "true", LabelMoverTask: string(task.UID), LabelMoverNode: node,
		"app.kubernetes.io/name": "stork-mover", "app.kubernetes.io/component": "data-mover"} {
		m.Labels[k] = v
	}
	// By the node's name (a field), not its hostname label: the two differ on some clusters.
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
		{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}
	if job.zone != "" {
		term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: storkv1.LabelZone, Operator: corev1.NodeSelectorOpIn, Values: []string{job.zone}})
	}
	return &corev1.Pod{
		ObjectMeta: m,
		Spec: corev1.PodSpec{
			RestartPolicy:      corev1.RestartPolicyNever,
			ServiceAccountName: d.cfg.serviceAccount,
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}}},
			SecurityContext: d.moverPodSecurity(),
			Containers: []corev1.Container{{
				Name:  "mover",
				Image: d.cfg.image,
				// An absolute path: Stork's image sets no PATH, and the runtime's default one
				// does not hold /, where the image keeps its binaries.
				Command: []string{MoverCommand, "mover", job.verb},
				Args:    []string{"--task=" + task.Namespace + "/" + task.Name, "--volume=" + MoverVolumePath, "--access=" + MoverAccessPath},
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "TMPDIR", Value: "/tmp"}},
				Resources:       corev1.ResourceRequirements{Requests: d.cfg.requests.DeepCopy(), Limits: d.cfg.limits.DeepCopy()},
				SecurityContext: d.moverSecurity(job.verb),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "volume", MountPath: MoverVolumePath, ReadOnly: job.readOnly},
					{Name: "access", MountPath: MoverAccessPath, ReadOnly: true},
					{Name: "tmp", MountPath: "/tmp"},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{
				{Name: "volume", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: job.readOnly}}},
				{Name: "access", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: task.Spec.AccessSecretName, DefaultMode: ptr.To[int32](0o440)}}},
				// The engine stages packs for cloud stores here: uploaders × pack size and more.
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(d.cfg.tmpSize.DeepCopy())}}},
			},
		},
	}
}

// moverPodSecurity is the pod's security context: non-root 65532 by default (with fsGroup, or
// the access Secret's files, 0440 and root's, and a fresh volume's root are out of its reach),
// root with csi.moverFileAccess=all-files.
func (d *Driver) moverPodSecurity() *corev1.PodSecurityContext {
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	if d.cfg.allFiles {
		return &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0), SeccompProfile: seccomp}
	}
	return &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](moverUser), RunAsGroup: ptr.To[int64](moverUser),
		FSGroup: ptr.To[int64](moverUser), SeccompProfile: seccomp}
}

// moverSecurity is the container's: never privilege escalation, a read-only root file system,
// and no capabilities, except with all-files the ones the verb needs to see every file
// (DAC_READ_SEARCH for a backup) or to write every owner, mode and time back (a restore).
func (d *Driver) moverSecurity(verb string) *corev1.SecurityContext {
	caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	if d.cfg.allFiles {
		caps.Add = []corev1.Capability{"DAC_READ_SEARCH"}
		if verb == "restore" {
			caps.Add = []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"}
		}
	}
	return &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), Capabilities: caps}
}
