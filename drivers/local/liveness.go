package local

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/local/agent"
)

// ConfigAgentNamespace is the namespace of the agents' Leases (default stork-system).
const ConfigAgentNamespace = "local.agentNamespace"

// liveness marks a StorageNode's agent dead when its Lease has expired: an agent cannot say
// so itself. It is the storage counterpart of the node lifecycle controller, which does the
// same for kubelets.
type liveness struct {
	c         client.Client
	namespace string
	now       func() time.Time
}

// SetupWithManager implements drivers.ControllerOwner.
func (d *Driver) SetupWithManager(mgr ctrl.Manager) error {
	l := &liveness{c: mgr.GetClient(), namespace: d.agentNamespace, now: time.Now}
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		sn, ok := o.(*storkv1.StorageNode)
		return ok && sn.Spec.Driver == Name
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("local-agent-liveness").
		For(&storkv1.StorageNode{}, builder.WithPredicates(ours)).
		Complete(l)
}

func (l *liveness) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sn := &storkv1.StorageNode{}
	if err := l.c.Get(ctx, req.NamespacedName, sn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	lease := &coordinationv1.Lease{}
	err := l.c.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: agent.LeaseName(Name, sn.Spec.NodeName)}, lease)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("reading the agent lease of %s: %w", sn.Spec.NodeName, err)
	}
	var expires time.Time
	if err == nil && lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expires = lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	}
	if left := expires.Sub(l.now()); left > 0 {
		// Alive: look again just after the lease would expire.
		return ctrl.Result{RequeueAfter: left + time.Second}, nil
	}
	if meta.IsStatusConditionFalse(sn.Status.Conditions, storkv1.StorageConditionAgentAlive) && sn.Status.Health == storkv1.StorageUnknown {
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	orig := sn.DeepCopy()
	msg := "the agent has not renewed its lease " + l.namespace + "/" + agent.LeaseName(Name, sn.Spec.NodeName)
	if !expires.IsZero() {
		msg += " since " + expires.UTC().Format(time.RFC3339)
	}
	meta.SetStatusCondition(&sn.Status.Conditions, metav1.Condition{Type: storkv1.StorageConditionAgentAlive,
		Status: metav1.ConditionFalse, Reason: "LeaseExpired", Message: msg, ObservedGeneration: sn.Generation})
	sn.Status.Health = storkv1.StorageUnknown
	if err := l.c.Status().Patch(ctx, sn, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("marking the agent of %s dead: %w", sn.Spec.NodeName, err)
	}
	return ctrl.Result{RequeueAfter: time.Minute}, nil
}
