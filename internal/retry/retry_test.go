package retry

import (
	"strings"
	"testing"
	"time"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestBackoffAndGiveUp(t *testing.T) {
	p := Policy{Base: time.Second, Max: 8 * time.Second, Limit: time.Minute}
	var r *storkv1.Retry
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var waits []time.Duration
	for {
		wait, giveUp, summary := p.Failed(&r, "SavingResources", "listing ConfigMaps: forbidden", now)
		if giveUp {
			if !strings.Contains(summary, "SavingResources failed 11 times over 60s; gave up: listing ConfigMaps: forbidden") {
				t.Errorf("summary %q", summary)
			}
			break
		}
		if next := r.NextAttemptTime; next == nil || !next.Time.Equal(now.Add(wait)) || Wait(r, now) != wait || Wait(r, now.Add(wait)) != 0 {
			t.Fatalf("next attempt %v, Wait %s: want due %s after the failure at %s", next, Wait(r, now), wait, now)
		}
		waits = append(waits, wait)
		now = now.Add(wait)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8, 8, 8, 8, 5}
	for i := range want {
		want[i] *= time.Second
	}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v (the last one ends at the limit)", waits, want)
		}
	}
	if r.Attempts != 11 || !r.Since.Time.Equal(t0) || !r.GiveUpTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("retry status %+v", r)
	}
	// Another step's failure opens a window of its own; success closes only its own.
	p.Failed(&r, "ReadingRecord", "timeout", now)
	if r.Reason != "ReadingRecord" || r.Attempts != 1 {
		t.Errorf("after another step failed: %+v", r)
	}
	Succeeded(&r, "SavingResources")
	if r == nil {
		t.Error("the success of another step closed the window")
	}
	Succeeded(&r, "ReadingRecord")
	if r != nil {
		t.Errorf("window still open after success: %+v", r)
	}
}
