package cronspec

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts five fields, six with leading seconds, and descriptors (@hourly, @every 5m).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads expr in time zone tz (UTC when empty); errors name the fields as the object's
// spec does (spec.schedule, spec.timeZone).
func Parse(expr, tz string) (cron.Schedule, *time.Location, error) {
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, nil, fmt.Errorf("spec.timeZone %q is not a known IANA time zone (e.g. Europe/Paris): %v", tz, err)
		}
	}
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return nil, nil, fmt.Errorf("spec.schedule %q: set the time zone in spec.timeZone, not in the expression", expr)
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("spec.schedule %q: %v", expr, err)
	}
	if s.Next(time.Now().In(loc)).IsZero() {
		return nil, nil, fmt.Errorf("spec.schedule %q never fires (a day that does not exist, such as February 30)", expr)
	}
	return s, loc, nil
}

// Reason is the condition reason for an error of Parse: InvalidTimeZone or InvalidSchedule.
func Reason(err error) string {
	if strings.HasPrefix(err.Error(), "spec.timeZone") {
		return "InvalidTimeZone"
	}
	return "InvalidSchedule"
}

// LatestDue returns the latest time of the schedule after last and not after now, and how many
// such times there were (capped: a schedule of seconds down for a day is not walked in full).
func LatestDue(cs cron.Schedule, last, now time.Time) (time.Time, int) {
	var due time.Time
	n := 0
	for t := cs.Next(last); !t.IsZero() && !t.After(now); t = cs.Next(t) {
		due, n = t, n+1
		if n == 10000 {
			// Skip ahead: what counts is the latest time, not every one.
			for t2 := cs.Next(now.Add(-24 * time.Hour)); !t2.IsZero() && !t2.After(now); t2 = cs.Next(t2) {
				if t2.After(due) {
					due = t2
				}
			}
			break
		}
	}
	return due, n
}
