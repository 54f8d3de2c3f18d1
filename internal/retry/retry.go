package retry

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Policy is the backoff and the bound of a step's retries. Zero fields take the defaults.
type Policy struct {
	// Base is the wait after the first failure (default 5s); Max caps the doubling (2m).
	Base, Max time.Duration
	// Limit is how long after the first failure the step gives up (default 15m).
	Limit time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Base <= 0 {
		p.Base = 5 * time.Second
	}
	if p.Max <= 0 {
		p.Max = 2 * time.Minute
	}
	if p.Limit <= 0 {
		p.Limit = 15 * time.Minute
	}
	return p
}

// Failed records a failed attempt of step reason at now in *r: a new window when there is none
// or it was of another step. It returns how long to wait before the next attempt, or giveUp
// with a message saying what failed, how often and for how long.
func (p Policy) Failed(r **storkv1.Retry, reason, msg string, now time.Time) (wait time.Duration, giveUp bool, summary string) {
	p = p.withDefaults()
	cur := *r
	if cur == nil || cur.Reason != reason {
		cur = &storkv1.Retry{Reason: reason, Since: metav1.NewTime(now), GiveUpTime: metav1.NewTime(now.Add(p.Limit))}
		*r = cur
	}
	cur.Attempts++
	cur.Message = msg
	if !now.Before(cur.GiveUpTime.Time) {
		return 0, true, fmt.Sprintf("%s failed %d times over %s; gave up: %s", reason, cur.Attempts,
			duration.HumanDuration(now.Sub(cur.Since.Time)), msg)
	}
	wait = p.Base
	for i := int32(1); i < cur.Attempts && wait < p.Max; i++ {
		wait *= 2
	}
	wait = min(wait, p.Max, cur.GiveUpTime.Sub(now))
	next := metav1.NewTime(now.Add(wait))
	cur.NextAttemptTime = &next
	return wait, false, ""
}

// Wait is how long until the next attempt of r's step is due; 0 when it is (or nothing fails).
// A controller checks it before trying anything: its own status write, which every failed
// attempt makes, wakes it up again at once, and without this check each wake-up would be an
// attempt, with no backoff at all.
func Wait(r *storkv1.Retry, now time.Time) time.Duration {
	if r == nil || r.NextAttemptTime == nil {
		return 0
	}
	return max(0, r.NextAttemptTime.Sub(now))
}

// Succeeded closes the window of step reason, if that is the one open.
func Succeeded(r **storkv1.Retry, reason string) {
	if *r != nil && (*r).Reason == reason {
		*r = nil
	}
}
