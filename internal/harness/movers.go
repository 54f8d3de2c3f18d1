package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MoverPods plays the kubelet's part for data mover pods only (pods with the label
// stork.dev/mover=true in Stork's namespace): once kube-scheduler has bound one, it runs the
// pod's command here, as the pod's service account, with its volumes "mounted" by rewriting the
// container's mount paths in the arguments to local directories: a claim's volume is the
// directory VolumeDir gives for its PersistentVolume, a Secret volume a directory holding the
// Secret's keys as files, an emptyDir a fresh directory. It reports the pod Running, then
// Succeeded or Failed with the exit code and (FallbackToLogsOnError) the log's tail as the
// termination message, and finishes pods being deleted after stopping their process.
type MoverPods struct {
	Cluster *Cluster
	// VolumeDir is the data directory of a CSI volume.
	VolumeDir func(pv *corev1.PersistentVolume) string
	// Fail, if set, is asked before a pod runs: a non-empty answer fails the pod with that
	// message instead, as a crashing container would.
	Fail func(pod *corev1.Pod) string
	// Env, if set, adds variables to a pod's process (the fault campaign's STORK_CRASH_AT).
	Env func(pod *corev1.Pod) []string

	mu      sync.Mutex
	running map[string]*Process // pod UID → process
	nodeOf  map[string]string   // pod UID → node, of the running ones
	started map[string]bool
	// maxPerNode is the most processes that ran on one node at once.
	maxPerNode int
	// Started lists every mover pod run, in order, with the node it ran on.
	Started []StartedPod
}

// StartedPod is a mover pod MoverPods ran.
type StartedPod struct {
	Name, Node string
	At         time.Time
	Spec       corev1.PodSpec
}

// Run polls until ctx ends.
func (m *MoverPods) Run(ctx context.Context) {
	m.running, m.started, m.nodeOf = map[string]*Process{}, map[string]bool{}, map[string]string{}
	go m.Cluster.everyPod(ctx, 200*time.Millisecond, m.step, client.InNamespace(StorkNamespace), client.MatchingLabels{"stork.dev/mover": "true"})
}

// MaxPerNode is the most mover processes that ran on one node at once.
func (m *MoverPods) MaxPerNode() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxPerNode
}

// Snapshot returns the pods run so far.
func (m *MoverPods) Snapshot() []StartedPod {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]StartedPod(nil), m.Started...)
}

func (m *MoverPods) step(ctx context.Context, p *corev1.Pod) {
	c := m.Cluster
	uid := string(p.UID)
	m.mu.Lock()
	proc := m.running[uid]
	started := m.started[uid]
	m.mu.Unlock()
	if p.DeletionTimestamp != nil {
		if proc != nil {
			_ = proc.Stop(10 * time.Second)
			m.mu.Lock()
			delete(m.running, uid)
			delete(m.nodeOf, uid)
			m.mu.Unlock()
		}
		_ = c.Client.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
		return
	}
	switch {
	case p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return
	case proc != nil:
		select {
		case <-proc.Exited():
			m.finish(ctx, p, proc.ExitError(), proc.LogTail(10))
			m.mu.Lock()
			delete(m.running, uid)
			delete(m.nodeOf, uid)
			m.mu.Unlock()
		default:
		}
		return
	case started:
		return
	}
	m.mu.Lock()
	m.started[uid] = true
	m.Started = append(m.Started, StartedPod{Name: p.Name, Node: p.Spec.NodeName, At: time.Now(), Spec: *p.Spec.DeepCopy()})
	m.mu.Unlock()
	if msg := m.failWith(p); msg != "" {
		m.finish(ctx, p, errors.New("exit status 1"), msg)
		return
	}
	proc, err := m.start(ctx, p)
	if err != nil {
		m.finish(ctx, p, err, err.Error())
		return
	}
	m.mu.Lock()
	m.running[uid] = proc
	m.nodeOf[uid] = p.Spec.NodeName
	on := 0
	for _, n := range m.nodeOf {
		if n == p.Spec.NodeName {
			on++
		}
	}
	m.maxPerNode = max(m.maxPerNode, on)
	m.mu.Unlock()
	now := metav1.Now()
	p.Status.Phase, p.Status.StartTime = corev1.PodRunning, &now
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image, Ready: true,
		Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
	_ = c.Client.Status().Update(ctx, p)
}

func (m *MoverPods) failWith(p *corev1.Pod) string {
	if m.Fail == nil {
		return ""
	}
	return m.Fail(p)
}

// start mounts the pod's volumes and runs its container's command.
func (m *MoverPods) start(ctx context.Context, p *corev1.Pod) (*Process, error) {
	c := m.Cluster
	if len(p.Spec.Containers) != 1 {
		return nil, fmt.Errorf("a mover pod has one container, this one %d", len(p.Spec.Containers))
	}
	ct := p.Spec.Containers[0]
	podDir, err := c.env.dir(c.Name + "-pods/" + p.Name)
	if err != nil {
		return nil, err
	}
	mounts := map[string]string{} // volume name → local directory
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			pvc := &corev1.PersistentVolumeClaim{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: v.PersistentVolumeClaim.ClaimName}, pvc); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			pv := &corev1.PersistentVolume{}
			if err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
				return nil, fmt.Errorf("volume %s: claim %s is not bound: %w", v.Name, pvc.Name, err)
			}
			mounts[v.Name] = m.VolumeDir(pv)
		case v.Secret != nil:
			secret := &corev1.Secret{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: v.Secret.SecretName}, secret); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			dir := filepath.Join(podDir, "secret-"+v.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			for k, val := range secret.Data {
				if err := os.WriteFile(filepath.Join(dir, k), val, 0o400); err != nil {
					return nil, err
				}
			}
			mounts[v.Name] = dir
		case v.EmptyDir != nil:
			dir := filepath.Join(podDir, "empty-"+v.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			mounts[v.Name] = dir
		case v.Projected != nil:
			// The service account token: the process gets a kubeconfig of the pod's service
			// account instead.
		default:
			return nil, fmt.Errorf("volume %s: only claims, Secrets, emptyDirs and the service account token are mounted here", v.Name)
		}
	}
	// A path in an argument (--flag=PATH or PATH) under a mount path is moved under the
	// mount's local directory, once.
	rewrite := func(s string) string {
		flag, value, hasFlag := strings.Cut(s, "=")
		if !hasFlag {
			flag, value = "", s
		}
		for _, vm := range ct.VolumeMounts {
			if rest, ok := strings.CutPrefix(value, vm.MountPath); ok && (rest == "" || rest[0] == '/') && mounts[vm.Name] != "" {
				value = mounts[vm.Name] + rest
				break
			}
		}
		if hasFlag {
			return flag + "=" + value
		}
		return value
	}
	cmd := append(append([]string{}, ct.Command...), ct.Args...)
	for i := range cmd {
		cmd[i] = rewrite(cmd[i])
	}
	bins, err := Commands()
	if err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(filepath.Join(bins, filepath.Base(cmd[0])))
	if err != nil {
		return nil, fmt.Errorf("the pod's command %s is not one of Stork's: %w", cmd[0], err)
	}
	// A token bound to the pod, as the kubelet gives it: the mover's admission policy reads the
	// pod's name from it.
	kc, err := c.PodTokenKubeconfig(ctx, p)
	if err != nil {
		return nil, err
	}
	env := []string{"KUBECONFIG=" + kc}
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+p.Name)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+rewrite(e.Value))
		}
	}
	if m.Env != nil {
		env = append(env, m.Env(p)...)
	}
	return c.env.StartProcess(c.Name+"-"+p.Name, bin, cmd[1:], env)
}

// finish reports the pod's end: Succeeded for a clean exit, else Failed with the exit code and
// the log's tail.
func (m *MoverPods) finish(ctx context.Context, p *corev1.Pod, exitErr error, tail string) {
	now := metav1.Now()
	term := &corev1.ContainerStateTerminated{FinishedAt: now, Reason: "Completed"}
	p.Status.Phase = corev1.PodSucceeded
	if exitErr != nil {
		p.Status.Phase, term.Reason, term.ExitCode, term.Message = corev1.PodFailed, "Error", 1, tail
		var ee *exec.ExitError
		if errors.As(exitErr, &ee) && ee.ExitCode() > 0 {
			term.ExitCode = int32(ee.ExitCode())
		}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: term}}}
	_ = m.Cluster.Client.Status().Update(ctx, p)
}
