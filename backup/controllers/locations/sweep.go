package locations

import (
	"context"
	"fmt"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/locator"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// AccessSweeper deletes access Secrets whose Backup or Restore is gone or finished: those its
// controller could not delete itself (a Restore deleted while it ran; a controller stopped
// between the end of the work and the deletion). Credentials do not linger in Stork's namespace.
type AccessSweeper struct {
	Client client.Client
	// Reader lists Secrets (an uncached reader: Secrets are never watched).
	Reader client.Reader
	// Namespace is Stork's namespace, where access Secrets are.
	Namespace string
	// Every is the time between sweeps (default 5 minutes).
	Every time.Duration
	Log   logr.Logger
}

// Start sweeps every Every until ctx ends (a manager.Runnable, run by the leader only).
func (s *AccessSweeper) Start(ctx context.Context) error {
	every := s.Every
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx, time.Minute); err != nil {
			s.Log.Error(err, "sweeping access Secrets")
		} else if n > 0 {
			s.Log.Info("deleted access Secrets whose work had ended", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes the access Secrets older than minAge whose Backup or Restore no longer needs
// them, and returns how many it deleted.
func (s *AccessSweeper) Sweep(ctx context.Context, minAge time.Duration) (int, error) {
	var list corev1.SecretList
	if err := s.Reader.List(ctx, &list, client.InNamespace(s.Namespace), client.HasLabels{access.LabelFor}); err != nil {
		return 0, fmt.Errorf("listing access Secrets in %s: %w", s.Namespace, err)
	}
	n := 0
	for i := range list.Items {
		sec := &list.Items[i]
		if time.Since(sec.CreationTimestamp.Time) < minAge {
			continue // its Backup or Restore may not be visible yet
		}
		done, err := s.workEnded(ctx, sec.Labels)
		if err != nil {
			return n, err
		}
		if done {
			if err := locator.DeleteAccessSecret(ctx, s.Client, sec.Namespace, sec.Name); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// workEnded reports whether the Backup or Restore an access Secret was made for is gone or final.
func (s *AccessSweeper) workEnded(ctx context.Context, labels map[string]string) (bool, error) {
	var obj client.Object
	var key client.ObjectKey
	switch {
	case labels["stork.dev/backup"] != "":
		obj, key = &storkv1.Backup{}, client.ObjectKey{Namespace: labels["stork.dev/backup-namespace"], Name: labels["stork.dev/backup"]}
	case labels["stork.dev/restore"] != "":
		obj, key = &storkv1.Restore{}, client.ObjectKey{Namespace: labels["stork.dev/restore-namespace"], Name: labels["stork.dev/restore"]}
	default:
		return false, nil // not one of ours
	}
	err := s.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	switch o := obj.(type) {
	case *storkv1.Backup:
		p := o.Status.Phase
		return o.DeletionTimestamp == nil && (p == storkv1.BackupCompleted || p == storkv1.BackupPartiallyFailed || p == storkv1.BackupFailed), nil
	case *storkv1.Restore:
		p := o.Status.Phase
		return p == storkv1.RestoreCompleted || p == storkv1.RestorePartiallyFailed || p == storkv1.RestoreFailed, nil
	}
	return false, nil
}
