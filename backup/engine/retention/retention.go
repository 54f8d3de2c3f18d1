package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Policy says what to keep; an item kept by any rule is kept. The zero Policy keeps everything
// (forgetting needs at least one rule).
type Policy struct {
	// Last keeps the newest N items.
	Last int `json:"keepLast,omitempty"`
	// Hourly, Daily, Weekly, Monthly and Yearly keep the newest item of each of the last N
	// hours, days, ISO weeks, months and years that have items (in the location given to
	// Apply, so "daily" follows the user's calendar).
	Hourly  int `json:"keepHourly,omitempty"`
	Daily   int `json:"keepDaily,omitempty"`
	Weekly  int `json:"keepWeekly,omitempty"`
	Monthly int `json:"keepMonthly,omitempty"`
	Yearly  int `json:"keepYearly,omitempty"`
	// Within keeps every item newer than this, relative to the newest item.
	Within time.Duration `json:"keepWithin,omitempty"`
}

// Span bounds how long the policy keeps an item when items come every interval: the longest of
// its rules, each counting N periods that have an item (an hour, a day, a week, 31 days, 366
// days, or the interval when that is longer), Last counting N intervals, Within plus one
// interval. Zero when the policy has no rule: it keeps everything, for no bounded time.
func (p Policy) Span(interval time.Duration) time.Duration {
	const day = 24 * time.Hour
	span := time.Duration(p.Last) * interval
	for _, r := range []struct {
		n      int
		period time.Duration
	}{{p.Hourly, time.Hour}, {p.Daily, day}, {p.Weekly, 7 * day}, {p.Monthly, 31 * day}, {p.Yearly, 366 * day}} {
		span = max(span, time.Duration(r.n)*max(r.period, interval))
	}
	if p.Within > 0 {
		span = max(span, p.Within+interval)
	}
	return span
}

// Empty says whether the policy has no rule.
func (p Policy) Empty() bool { return p == Policy{} }

// Validate refuses negative counts.
func (p Policy) Validate() error {
	for name, n := range map[string]int{"keepLast": p.Last, "keepHourly": p.Hourly, "keepDaily": p.Daily,
		"keepWeekly": p.Weekly, "keepMonthly": p.Monthly, "keepYearly": p.Yearly} {
		if n < 0 {
			return fmt.Errorf("retention %s is %d: it must be zero or more", name, n)
		}
	}
	if p.Within < 0 {
		return fmt.Errorf("retention keepWithin is %s: it must not be negative", p.Within)
	}
	return nil
}

// Decision is the verdict on one item: kept, with the rules that keep it.
type Decision struct {
	Index   int
	Keep    bool
	Reasons []string
}

// Apply decides for each item (given by its time) whether the policy keeps it. Decisions come
// back in the order of times. An empty policy keeps everything.
func Apply(times []time.Time, p Policy, loc *time.Location) []Decision {
	if loc == nil {
		loc = time.UTC
	}
	out := make([]Decision, len(times))
	order := make([]int, len(times))
	for i := range times {
		out[i].Index = i
		order[i] = i
	}
	if p.Empty() {
		for i := range out {
			out[i].Keep, out[i].Reasons = true, []string{"no policy"}
		}
		return out
	}
	// Newest first: each bucket rule keeps the first (newest) item it meets in a new period.
	sort.SliceStable(order, func(a, b int) bool { return times[order[a]].After(times[order[b]]) })
	type rule struct {
		name   string
		left   int
		period func(time.Time) string
	}
	rules := []*rule{
		{"last", p.Last, nil},
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
	lastPeriod := map[string]string{}
	for k, i := range order {
		t := times[i].In(loc)
		d := &out[i]
		if p.Within > 0 && times[order[0]].Sub(times[i]) <= p.Within {
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for _, r := range rules {
			if r.left <= 0 {
				continue
			}
			if r.period == nil {
				d.Reasons = append(d.Reasons, fmt.Sprintf("last %d", k+1))
				r.left--
				continue
			}
			if per := r.period(t); per != lastPeriod[r.name] {
				lastPeriod[r.name] = per
				d.Reasons = append(d.Reasons, r.name+" "+per)
				r.left--
			}
		}
		d.Keep = len(d.Reasons) > 0
	}
	return out
}

// String describes the policy as storkctl flags would.
func (p Policy) String() string {
	var parts []string
	for _, x := range []struct {
		n    int
		name string
	}{{p.Last, "last"}, {p.Hourly, "hourly"}, {p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", x.name, x.n))
		}
	}
	if p.Within > 0 {
		parts = append(parts, "within="+p.Within.String())
	}
	if len(parts) == 0 {
		return "keep everything"
	}
	return "keep " + strings.Join(parts, ",")
}
