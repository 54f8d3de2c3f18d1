package repo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"stork.dev/stork/backup/engine/retention"
)

// DefaultGroupBy groups snapshots for retention by what they are copies of: the same paths of
// the same PVC in the same namespace of the same cluster.
var DefaultGroupBy = []string{"paths", "tag:cluster", "tag:namespace", "tag:pvc"}

// groupKey is a snapshot's group under groupBy ("paths", "tag:NAME").
func groupKey(s *Snapshot, groupBy []string) (string, error) {
	var parts []string
	for _, g := range groupBy {
		switch {
		case g == "paths":
			parts = append(parts, "paths="+strings.Join(s.Paths, ","))
		case strings.HasPrefix(g, "tag:") && len(g) > 4:
			if v := s.Tags[g[4:]]; v != "" { // a missing tag and an empty one are alike
				parts = append(parts, g+"="+v)
			}
		default:
			return "", fmt.Errorf("group-by %q: use \"paths\" or \"tag:NAME\"", g)
		}
	}
	return strings.Join(parts, " "), nil
}

// ForgetDecision is the verdict of a retention policy on one snapshot.
type ForgetDecision struct {
	SnapshotInfo
	Group   string
	Keep    bool
	Reasons []string
}

// ApplyRetention groups snapshots and applies the policy to each group, newest first within
// each group, groups in key order.
func ApplyRetention(snaps []SnapshotInfo, p retention.Policy, groupBy []string, loc *time.Location) ([]ForgetDecision, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	groups := map[string][]SnapshotInfo{}
	for _, s := range snaps {
		k, err := groupKey(s.Snapshot, groupBy)
		if err != nil {
			return nil, err
		}
		groups[k] = append(groups[k], s)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []ForgetDecision
	for _, k := range keys {
		g := groups[k]
		times := make([]time.Time, len(g))
		for i, s := range g {
			times[i] = s.Time
		}
		ds := retention.Apply(times, p, loc)
		sort.SliceStable(ds, func(a, b int) bool { return times[ds[a].Index].After(times[ds[b].Index]) })
		for _, d := range ds {
			out = append(out, ForgetDecision{SnapshotInfo: g[d.Index], Group: k, Keep: d.Keep, Reasons: d.Reasons})
		}
	}
	return out, nil
}

// Forget deletes a snapshot. Its data stays until prune finds no other snapshot uses it.
func (r *Repository) Forget(ctx context.Context, id ID) error {
	return r.store.Delete(ctx, "snapshots/"+id.String())
}
