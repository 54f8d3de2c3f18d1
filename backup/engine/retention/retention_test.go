package retention

import (
	"strings"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	base := time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC) // a Tuesday
	// Every 6 hours back over 40 days, newest first; index i is base - 6h*i.
	var times []time.Time
	for i := range 160 {
		times = append(times, base.Add(-6*time.Hour*time.Duration(i)))
	}
	cases := []struct {
		name string
		p    Policy
		loc  *time.Location
		want []int // indexes kept
	}{
		{"empty keeps all", Policy{}, nil, nil},
		{"last 3", Policy{Last: 3}, nil, []int{0, 1, 2}},
		{"hourly 2 (each slot is its own hour)", Policy{Hourly: 2}, nil, []int{0, 1}},
		{"daily 3: newest of each day", Policy{Daily: 3}, nil, []int{0, 4, 8}},
		{"weekly 2", Policy{Weekly: 2}, nil, []int{0, 8}}, // index 8 is Sunday 29 March, 23:30
		{"monthly 2", Policy{Monthly: 2}, nil, []int{0, 124}},
		{"last 1 + daily 2 overlap", Policy{Last: 1, Daily: 2}, nil, []int{0, 4}},
		{"within 1 day", Policy{Within: 24 * time.Hour}, nil, []int{0, 1, 2, 3, 4}},
		// In UTC+10 the two newest (23:30 and 17:30 UTC) fall on 1 April: the day before
		// begins with index 2.
		{"daily in another zone", Policy{Daily: 2}, time.FixedZone("AEST", 10*3600), []int{0, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := Apply(times, tc.p, tc.loc)
			var kept []int
			for _, d := range ds {
				if d.Keep {
					kept = append(kept, d.Index)
				}
				if d.Keep != (len(d.Reasons) > 0) {
					t.Errorf("decision %+v: keep and reasons disagree", d)
				}
			}
			if tc.want == nil {
				if len(kept) != len(times) {
					t.Errorf("kept %d of %d", len(kept), len(times))
				}
				return
			}
			if len(kept) != len(tc.want) {
				t.Fatalf("kept %v, want %v", kept, tc.want)
			}
			for i := range kept {
				if kept[i] != tc.want[i] {
					t.Fatalf("kept %v, want %v", kept, tc.want)
				}
			}
		})
	}
}

func TestApplyIgnoresInputOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	times := []time.Time{t0, t0.Add(2 * time.Hour), t0.Add(time.Hour)}
	ds := Apply(times, Policy{Last: 1}, nil)
	if !ds[1].Keep || ds[0].Keep || ds[2].Keep {
		t.Fatalf("keep-last 1 of unsorted times: %+v", ds)
	}
}

func TestValidate(t *testing.T) {
	if err := (Policy{Daily: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "keepDaily") {
		t.Fatalf("negative daily: %v", err)
	}
	if err := (Policy{Last: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSpan(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name     string
		p        Policy
		interval time.Duration
		want     time.Duration
	}{
		{"keeps everything", Policy{}, time.Hour, 0},
		{"last 10 hourly runs", Policy{Last: 10}, time.Hour, 10 * time.Hour},
		{"7 daily, 4 weekly: the weeks", Policy{Daily: 7, Weekly: 4}, time.Hour, 28 * day},
		{"12 monthly", Policy{Daily: 7, Monthly: 12}, day, 12 * 31 * day},
		{"daily rule with weekly runs counts weeks", Policy{Daily: 7}, 7 * day, 49 * day},
		{"within", Policy{Within: 36 * time.Hour}, time.Hour, 37 * time.Hour},
		{"yearly", Policy{Yearly: 2, Last: 3}, day, 2 * 366 * day},
	} {
		if got := tc.p.Span(tc.interval); got != tc.want {
			t.Errorf("%s: Span(%v) = %v, want %v", tc.name, tc.interval, got, tc.want)
		}
	}
}
