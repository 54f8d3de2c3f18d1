package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Executor runs a command in a container and returns its output; an error that the command
// exited with a non-zero status satisfies ExitStatus.
type Executor interface {
	Exec(ctx context.Context, namespace, pod, container string, command []string) (stdout, stderr []byte, err error)
}

// ExitStatus returns the exit status of a command that ran and failed.
func ExitStatus(err error) (int, bool) {
	var ee utilexec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), true
	}
	return 0, false
}

// Runner runs hooks.
type Runner struct {
	// Client lists the pods a hook selects.
	Client client.Client
	Exec   Executor
	Now    func() time.Time
}

// DefaultTimeout applies to a hook without one.
const DefaultTimeout = 30 * time.Second

// maxMessage bounds the output kept in a result: status objects are small.
const maxMessage = 512

// Run runs the hook in the selected container of every running pod of namespace its selector
// matches, one pod after the other, and returns one result per pod; when no pod matches, one
// successful result without a pod says so.
func (r *Runner) Run(ctx context.Context, namespace string, h storkv1.Hook, stage storkv1.HookStage) []storkv1.HookResult {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	res := func(pod, container string, ok bool, msg string) storkv1.HookResult {
		return storkv1.HookResult{Name: h.Name, Stage: stage, Pod: pod, Container: container, Succeeded: ok,
			Message: truncate(msg), Time: metav1.NewTime(now())}
	}
	sel, err := metav1.LabelSelectorAsSelector(&h.PodSelector)
	if err != nil {
		return []storkv1.HookResult{res("", "", false, "invalid podSelector: "+err.Error())}
	}
	running, err := RunningPods(ctx, r.Client, namespace, sel)
	if err != nil {
		return []storkv1.HookResult{res("", "", false, "listing the pods the hook selects: "+err.Error())}
	}
	if len(running) == 0 {
		return []storkv1.HookResult{res("", "", true, fmt.Sprintf("no running pod matches %s in %s", sel, namespace))}
	}
	sort.Slice(running, func(i, j int) bool { return running[i].Name < running[j].Name })
	timeout := DefaultTimeout
	if h.Timeout != nil {
		timeout = h.Timeout.Duration
	}
	var out []storkv1.HookResult
	for _, p := range running {
		container := h.Container
		if container == "" {
			container = p.Spec.Containers[0].Name
		} else if !hasContainer(&p, container) {
			out = append(out, res(p.Name, container, false, fmt.Sprintf("pod %s has no container %q", p.Name, container)))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		stdout, stderr, err := r.Exec.Exec(cctx, namespace, p.Name, container, h.Command)
		timedOut := cctx.Err() == context.DeadlineExceeded
		cancel()
		switch {
		case timedOut:
			out = append(out, res(p.Name, container, false, fmt.Sprintf("timed out after %s", timeout)))
		case err != nil:
			msg := err.Error()
			if code, ok := ExitStatus(err); ok {
				msg = fmt.Sprintf("exited with status %d: %s", code, lastLine(stderr, stdout))
			}
			out = append(out, res(p.Name, container, false, msg))
		default:
			out = append(out, res(p.Name, container, true, lastLine(stdout, stderr)))
		}
	}
	return out
}

// RunningPods lists the pods of namespace that sel selects and that run, not being deleted:
// those a hook runs in.
func RunningPods(ctx context.Context, c client.Client, namespace string, sel labels.Selector) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	var running []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	return running, nil
}

// Failed reports whether a hook's results fail its Snapshot: a run failed and the hook's
// policy is Fail.
func Failed(h storkv1.Hook, results []storkv1.HookResult) bool {
	if h.OnError == storkv1.HookContinue {
		return false
	}
	for _, r := range results {
		if !r.Succeeded {
			return true
		}
	}
	return false
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func lastLine(outs ...[]byte) string {
	for _, o := range outs {
		o = bytes.TrimSpace(o)
		if len(o) == 0 {
			continue
		}
		if i := bytes.LastIndexByte(o, '\n'); i >= 0 {
			o = o[i+1:]
		}
		return string(o)
	}
	return ""
}

func truncate(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > maxMessage {
		return s[:maxMessage] + "…"
	}
	return s
}

// APIExecutor runs commands through the API server's pods/exec subresource, over WebSocket
// with a fallback to SPDY, as kubectl does.
type APIExecutor struct {
	Config *rest.Config
	// Client is a REST client for the core API group (kubernetes.Clientset.CoreV1().RESTClient()).
	Client rest.Interface
}

// Exec implements Executor.
func (e *APIExecutor) Exec(ctx context.Context, namespace, pod, container string, command []string) ([]byte, []byte, error) {
	req := e.Client.Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", req.URL().String())
	if err != nil {
		return nil, nil, fmt.Errorf("preparing exec in %s/%s: %w", namespace, pod, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.Config, "POST", req.URL())
	if err != nil {
		return nil, nil, fmt.Errorf("preparing exec in %s/%s: %w", namespace, pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, nil, err
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		if _, ok := ExitStatus(err); !ok {
			err = fmt.Errorf("exec in %s/%s container %s: %w", namespace, pod, container, err)
		}
	}
	return stdout.Bytes(), stderr.Bytes(), err
}
