package locations

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/locator"
)

// Reasons of the Available condition besides objstore's problems.
const (
	ReasonVerified             = "Verified"
	ReasonSecretMissing        = locator.ReasonSecretMissing
	ReasonWrongEncryptionKey   = "WrongEncryptionKey"
	ReasonNoRepository         = "NoRepository"
	ReasonRepositoryUnreadable = "RepositoryUnreadable"
)

// Reconciler checks BackupLocations.
type Reconciler struct {
	Client client.Client
	// Secrets reads the Secrets a location names. Give it an uncached reader (the manager's
	// APIReader): the controller may then get Secrets by name without the right to list or
	// watch every Secret of the cluster.
	Secrets  client.Reader
	Recorder events.EventRecorder
	// Clock tells when checks and prunes are due; the real clock when nil.
	Clock clock.PassiveClock
	// PruneTimeout bounds one prune; DefaultPruneTimeout when zero.
	PruneTimeout time.Duration
	// Cluster is this cluster's name (the cluster tag of what its Backups write): before a
	// prune, the snapshots of its Backups that no record names and whose Backup is gone are
	// forgotten (forgetOrphans). Empty forgets nothing.
	Cluster string
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Several at once: one unreachable store, or one long prune, must not delay the checks of
	// the others.
	return ctrl.NewControllerManagedBy(mgr).Named("backuplocation").For(&storkv1.BackupLocation{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).Complete(r)
}

// Reconcile checks the location when its sync period has passed (or its spec changed), then
// prunes it when its maintenance interval has: each has its own due time, so a check that is
// not due never delays a prune, nor the other way round.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	loc := &storkv1.BackupLocation{}
	if err := r.Client.Get(ctx, req.NamespacedName, loc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	period := syncPeriod(loc)
	if r.checkDue(loc, period) {
		if err := r.checkAndRecord(ctx, loc); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.maintain(ctx, loc); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.nextWake(loc, period)}, nil
}

// syncPeriod is spec.syncPeriod or its default.
func syncPeriod(loc *storkv1.BackupLocation) time.Duration {
	if loc.Spec.SyncPeriod != nil {
		return loc.Spec.SyncPeriod.Duration
	}
	return time.Minute
}

// checkDue says whether the location must be checked: never checked, checked under an older
// spec, or checked a period ago.
func (r *Reconciler) checkDue(loc *storkv1.BackupLocation, period time.Duration) bool {
	last := loc.Status.LastValidationTime
	return last == nil || loc.Status.ObservedGeneration != loc.Generation || r.now().Sub(last.Time) >= period
}

// nextWake is how long until the next check or prune, whichever comes first.
func (r *Reconciler) nextWake(loc *storkv1.BackupLocation, period time.Duration) time.Duration {
	now := r.now()
	wake := period
	if last := loc.Status.LastValidationTime; last != nil {
		wake = last.Add(period).Sub(now)
	}
	if due, ok := nextPrune(loc); ok {
		wake = min(wake, due.Sub(now))
	}
	// Status times are whole seconds, so a due time may look a fraction of a second away; and
	// a zero RequeueAfter would mean no requeue at all.
	return max(wake, time.Second)
}

// checkAndRecord checks the location and writes the outcome into its status (Available
// condition, phase, repository ID), with an Event when the condition changes.
func (r *Reconciler) checkAndRecord(ctx context.Context, loc *storkv1.BackupLocation) error {
	orig := loc.DeepCopy()
	retain, err := r.lockRetention(ctx, loc)
	if err != nil {
		return err
	}
	loc.Status.ObjectLockRetention = retain // before the check: locator.Resolve reads it
	repoID, lockNote, err := r.check(ctx, loc)
	now := metav1.NewTime(r.now())
	st := &loc.Status
	st.LastValidationTime, st.ObservedGeneration = &now, loc.Generation
	cond := metav1.Condition{Type: storkv1.ConditionAvailable, ObservedGeneration: loc.Generation}
	var u *locator.Unavailable
	switch {
	case err == nil:
		st.Phase, st.RepositoryID = storkv1.BackupLocationAvailable, repoID
		cond.Status, cond.Reason = metav1.ConditionTrue, ReasonVerified
		cond.Message = "repository " + repoID + " opened"
		if loc.Spec.AccessMode != storkv1.AccessReadOnly {
			cond.Message += "; a probe object was written, read back and deleted"
		}
		cond.Message += lockNote
	case errors.As(err, &u):
		st.Phase = storkv1.BackupLocationUnavailable
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, u.Reason, u.Message
	default:
		return err
	}
	if u != nil && u.Readable {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: storkv1.ConditionReadable, Status: metav1.ConditionTrue,
			Reason: "WritesRefused", ObservedGeneration: loc.Generation,
			Message: "the store refuses writes but the repository reads: restores run, backups wait until writes are allowed again"})
	} else {
		meta.RemoveStatusCondition(&st.Conditions, storkv1.ConditionReadable)
	}
	was := meta.FindStatusCondition(orig.Status.Conditions, storkv1.ConditionAvailable)
	if was == nil || was.Status != cond.Status || was.Reason != cond.Reason {
		kind := corev1.EventTypeNormal
		if cond.Status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		if r.Recorder != nil {
			r.Recorder.Eventf(loc, nil, kind, cond.Reason, "Check", "%s", cond.Message)
		}
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if err := r.Client.Status().Patch(ctx, loc, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("updating the status of BackupLocation %s/%s: %w", loc.Namespace, loc.Name, err)
	}
	return nil
}

// lockRetention is the retention objects written to the location get on a bucket with Object
// Lock: spec.s3.objectLockRetention, or the longest backupRetentionSpan of the schedules whose
// Backups go here, whichever is longer; nil when neither says (or the location is read-only).
func (r *Reconciler) lockRetention(ctx context.Context, loc *storkv1.BackupLocation) (*metav1.Duration, error) {
	if loc.Spec.S3 == nil || loc.Spec.AccessMode == storkv1.AccessReadOnly {
		return nil, nil
	}
	var d time.Duration
	if v := loc.Spec.S3.ObjectLockRetention; v != nil {
		d = v.Duration
	}
	var list storkv1.SnapshotScheduleList
	if err := r.Client.List(ctx, &list, client.InNamespace(loc.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the SnapshotSchedules of namespace %s: %w", loc.Namespace, err)
	}
	for _, s := range list.Items {
		if s.Spec.Template.Spec.BackupLocation == loc.Name && s.Status.BackupRetentionSpan != nil {
			d = max(d, s.Status.BackupRetentionSpan.Duration)
		}
	}
	if d <= 0 {
		return nil, nil
	}
	return &metav1.Duration{Duration: d}, nil
}

// check opens the location and its repository and returns the repository's ID and, for a bucket
// with Object Lock, a note on its retention for the Available condition; or an
// *locator.Unavailable error.
func (r *Reconciler) check(ctx context.Context, loc *storkv1.BackupLocation) (repoID, lockNote string, err error) {
	a, err := locator.Resolve(ctx, r.Secrets, loc)
	if err != nil {
		return "", "", err
	}
	cfg, key := a.Store, a.Key
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	store, err := objstore.Open(ctx, cfg)
	if err != nil {
		return "", "", &locator.Unavailable{Reason: objstore.Problem(err), Message: "opening " + loc.Spec.URL + ": " + err.Error()}
	}
	defer store.Close()
	readOnly := loc.Spec.AccessMode == storkv1.AccessReadOnly
	if err := store.Probe(ctx, readOnly); err != nil {
		p := objstore.Problem(err)
		u := &locator.Unavailable{Reason: p, Message: fmt.Sprintf("%s: %v%s", loc.Spec.URL, err, hint(p, loc))}
		// A bucket made read-only (a policy, a quota, a lock) still serves restores.
		if !readOnly && p == objstore.ProblemAccessDenied && store.Probe(ctx, true) == nil {
			_, verr := repo.Verify(ctx, store, key)
			u.Readable = verr == nil
		}
		return "", "", u
	}
	// Only the configuration and keys: a check every sync period must not read the index of
	// a repository of any size.
	rcfg, err := repo.Verify(ctx, store, key)
	switch {
	case errors.Is(err, repo.ErrNoRepository) && readOnly:
		return "", "", &locator.Unavailable{Reason: ReasonNoRepository, Message: loc.Spec.URL + " holds no backup repository, and the location is ReadOnly: check the URL and prefix"}
	case errors.Is(err, repo.ErrNoRepository):
		rp, err := repo.Init(ctx, store, key, repo.InitOptions{Compression: loc.Spec.Compression})
		if err != nil {
			return "", "", &locator.Unavailable{Reason: objstore.Problem(err), Message: "initialising a repository in " + loc.Spec.URL + ": " + err.Error()}
		}
		rcfg = rp.Config()
		rp.Close()
		if r.Recorder != nil {
			r.Recorder.Eventf(loc, nil, corev1.EventTypeNormal, "RepositoryInitialised", "Check", "initialised repository %s in %s", rcfg.ID, loc.Spec.URL)
		}
	case errors.Is(err, repo.ErrWrongKey):
		return "", "", &locator.Unavailable{Reason: ReasonWrongEncryptionKey, Message: fmt.Sprintf("the passphrase in Secret %s (key %s) does not open the repository in %s: give the key it was created with",
			loc.Spec.EncryptionKeySecretRef.Name, loc.Spec.EncryptionKeySecretRef.Key, loc.Spec.URL)}
	case err != nil:
		return "", "", &locator.Unavailable{Reason: ReasonRepositoryUnreadable, Message: "opening the repository in " + loc.Spec.URL + ": " + err.Error()}
	}
	if store.ObjectLock() {
		lockNote = "; the bucket has S3 Object Lock"
		if p := store.RetentionPeriod(); p > 0 {
			lockNote += ": new objects are retained " + p.String() + " and prunes extend what backups still use"
		} else {
			lockNote += " but no default retention: set spec.s3.objectLockRetention, or a retention policy on the schedules backing up here, for immutable backups"
		}
	}
	return rcfg.ID, lockNote, nil
}

func hint(problem string, loc *storkv1.BackupLocation) string {
	secret := "(none)"
	if loc.Spec.CredentialsSecretRef != nil {
		secret = loc.Spec.CredentialsSecretRef.Name
	}
	switch problem {
	case objstore.ProblemInvalidCredentials:
		return "; the store does not accept the credentials of Secret " + secret
	case objstore.ProblemAccessDenied:
		return "; the credentials of Secret " + secret + " lack a permission (list, and for ReadWrite locations put, get and delete)"
	case objstore.ProblemBucketNotFound:
		return "; create the bucket, or fix spec.url"
	}
	return ""
}
