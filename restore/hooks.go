package restore

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/hooks"
)

// defaultHookWait is how long a restore hook waits for a Ready pod without spec.hooks[].waitTimeout.
const defaultHookWait = 5 * time.Minute

// runHooks runs, in order, the Restore's hooks that have not run yet, in namespace ns (where the
// objects were restored). A hook runs once a pod it selects is Ready; while none is, runHooks
// returns how long to wait (0 when every hook has run). A hook whose pods are not Ready within
// its waitTimeout fails.
func (r *Reconciler) runHooks(ctx context.Context, rs *storkv1.Restore, ns string) (time.Duration, error) {
	ran := map[string]bool{}
	for _, res := range rs.Status.Hooks {
		ran[res.Name] = true
	}
	for _, h := range rs.Spec.Hooks {
		if ran[h.Name] {
			continue
		}
		now := time.Now()
		fail := func(msg string) {
			rs.Status.Hooks = append(rs.Status.Hooks, storkv1.HookResult{Name: h.Name, Stage: storkv1.HookRestore, Message: msg, Time: metav1.NewTime(now)})
		}
		if r.Hooks == nil {
			fail("this controller was started without a hook runner")
			continue
		}
		ready, err := r.readyPod(ctx, ns, h.PodSelector)
		if err != nil {
			return 0, err
		}
		if !ready {
			wait := defaultHookWait
			if h.WaitTimeout != nil {
				wait = h.WaitTimeout.Duration
			}
			if left := rs.Status.ObjectsRestoredTime.Add(wait).Sub(now); left > 0 {
				r.setCondition(rs, storkv1.ConditionProgressing, true, "WaitingForPods",
					fmt.Sprintf("hook %s waits up to %s for a Ready pod of namespace %s matching its podSelector", h.Name, wait, ns))
				return min(left, 5*r.Poll), nil
			}
			fail(fmt.Sprintf("no pod of namespace %s matching the podSelector was Ready within waitTimeout %s", ns, wait))
			continue
		}
		results := r.Hooks.Run(ctx, ns, h.Hook, storkv1.HookRestore)
		for _, res := range results {
			kind, reason := corev1.EventTypeNormal, "HookSucceeded"
			if !res.Succeeded {
				kind, reason = corev1.EventTypeWarning, "HookFailed"
			}
			r.event(rs, kind, reason, fmt.Sprintf("hook %s in pod %s/%s: %s", h.Name, ns, res.Pod, res.Message))
		}
		rs.Status.Hooks = append(rs.Status.Hooks, results...)
	}
	return 0, nil
}

// readyPod says whether a pod the hook runner would run in (hooks.RunningPods) is Ready.
func (r *Reconciler) readyPod(ctx context.Context, ns string, sel metav1.LabelSelector) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		return true, nil // the runner reports the selector as the hook's failure
	}
	pods, err := hooks.RunningPods(ctx, r.Client, ns, s)
	if err != nil {
		return false, fmt.Errorf("listing the pods of namespace %s for restore hooks: %w", ns, err)
	}
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
	}
	return false, nil
}

// hookFailures names the hooks whose failure fails the Restore (onError Fail).
func hookFailures(rs *storkv1.Restore) []string {
	policy := map[string]storkv1.HookErrorPolicy{}
	for _, h := range rs.Spec.Hooks {
		policy[h.Name] = h.OnError
	}
	var out []string
	for _, res := range rs.Status.Hooks {
		if !res.Succeeded && policy[res.Name] != storkv1.HookContinue {
			where := ""
			if res.Pod != "" {
				where = " in pod " + res.Pod
			}
			out = append(out, fmt.Sprintf("hook %s%s: %s", res.Name, where, res.Message))
		}
	}
	return out
}
