package main

// Medians, tables, targets and the JSON report.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type report struct {
	Started   time.Time              `json:"started"`
	Finished  time.Time              `json:"finished"`
	Machine   map[string]string      `json:"machine"`
	Tools     map[string]string      `json:"tools"`
	Settings  map[string]any         `json:"settings"`
	Dataset   datasetInfo            `json:"dataset"`
	Suites    map[string]datasetInfo `json:"suites,omitempty"` // the datasets of the suites other than the standard one
	Runs      []result               `json:"runs"`
	RepoSizes []repoSize             `json:"repository_sizes"`
	Medians   []cell                 `json:"medians"`
	Failures  []string               `json:"failures,omitempty"`
	// Calibrations are the machine's speed before each round and after the last (calibrate.go).
	Calibrations []calibration `json:"calibrations,omitempty"`
}

type datasetInfo struct {
	Dir           string `json:"dir"`
	Files         int    `json:"files"`
	Bytes         int64  `json:"bytes"`
	ChangedFiles  int    `json:"changed_files"`
	AppendedBytes int64  `json:"appended_bytes"`
}

type repoSize struct {
	Tool   string `json:"tool"`
	Target string `json:"target"`
	Run    int    `json:"run"`
	Bytes  int64  `json:"bytes"`
}

// cell is the median of one tool, target and scenario over the runs.
type cell struct {
	Tool      string  `json:"tool"`
	Target    string  `json:"target"`
	Scenario  string  `json:"scenario"`
	Runs      int     `json:"runs"`
	Seconds   float64 `json:"seconds"`
	MiBps     float64 `json:"mib_per_s"`
	MaxRSSMiB float64 `json:"max_rss_mib"`
	AnonMiB   float64 `json:"max_anon_mib"`
}

func machineInfo(ctx context.Context) map[string]string {
	m := map[string]string{"nproc": strconv.Itoa(runtime.NumCPU()), "goarch": runtime.GOARCH}
	m["go"], _ = output(ctx, "", "go", "version")
	m["kernel"], _ = output(ctx, "", "uname", "-sr")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	return m
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) medians() map[[3]string]cell {
	groups := map[[3]string][]result{}
	for _, r := range b.report.Runs {
		k := [3]string{r.Tool, r.Target, r.Scenario}
		groups[k] = append(groups[k], r)
	}
	out := map[[3]string]cell{}
	for k, rs := range groups {
		var secs, rss, anon []float64
		for _, r := range rs {
			secs = append(secs, r.Seconds)
			rss = append(rss, float64(r.MaxRSSKiB)/1024)
			anon = append(anon, float64(r.AnonKiB)/1024)
		}
		c := cell{Tool: k[0], Target: k[1], Scenario: k[2], Runs: len(rs), Seconds: median(secs), MaxRSSMiB: median(rss), AnonMiB: median(anon)}
		c.MiBps = float64(rs[0].Bytes) / mib / c.Seconds
		out[k] = c
	}
	return out
}

func (b *bench) printTables() {
	cells := b.medians()
	for _, target := range b.opt.targets {
		for _, tool := range b.opt.tools {
			for _, sc := range scenarios {
				if c, ok := cells[[3]string{tool, target, sc}]; ok {
					b.report.Medians = append(b.report.Medians, c)
				}
			}
		}
	}
	peers := b.peers()
	what := "times"
	if b.opt.repeat > 1 {
		what = fmt.Sprintf("medians of %d runs", b.opt.repeat)
	}
	for _, target := range b.opt.targets {
		fmt.Printf("\n== target %s — scale %g: %d files, %s; %s ==\n", target, b.opt.scale, len(b.ds.files), humanBytes(b.ds.bytes), what)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"scenario"}
		for _, t := range b.opt.tools {
			head = append(head, t+" s", "MiB/s", "RSS MiB")
		}
		for _, p := range peers {
			head = append(head, "÷"+p+" speed", "÷"+p+" RSS")
		}
		head = append(head, "targets")
		fmt.Fprintln(w, strings.Join(head, "\t")+"\t")
		for _, sc := range scenarios {
			row := []string{sc}
			for _, t := range b.opt.tools {
				if c, ok := cells[[3]string{t, target, sc}]; ok {
					row = append(row, fmt.Sprintf("%.2f", c.Seconds), fmt.Sprintf("%.0f", c.MiBps), fmt.Sprintf("%.0f", c.MaxRSSMiB))
				} else {
					row = append(row, "-", "-", "-")
				}
			}
			row = append(row, ratios(cells, peers, target, sc)...)
			row = append(row, targetChecks(sc, cells, target))
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
		var sizes []string
		for _, t := range b.opt.tools {
			var xs []float64
			for _, r := range b.report.RepoSizes {
				if r.Tool == t && r.Target == target {
					xs = append(xs, float64(r.Bytes))
				}
			}
			if len(xs) > 0 {
				sizes = append(sizes, fmt.Sprintf("%s %s", t, humanBytes(int64(median(xs)))))
			}
		}
		_ = w.Flush()
		fmt.Printf("repository size after the initial backup: %s\n", strings.Join(sizes, ", "))
	}
	fmt.Printf("\nMiB/s = %s (the dataset) ÷ wall seconds, for the 1%%-changed, copy and unchanged backups too; restore: the dataset.\n"+
		"cp -a copy: the dataset copied with cp -a to the same path after the 1%% change was undone: new inodes and ctimes, the 1%% of files and the\n"+
		"appended one differing from the parent (the 1%%-changed backup); what a scheduled backup of a volume's snapshot copy sees.\n"+
		"÷X speed = X's time ÷ ours (>1: we are faster); ÷X RSS = our peak RSS ÷ X's (<1: we use less); RSS = peak RSS of the process.\n"+
		"Targets (issue 17): initial backup ≥2.5× restic and ≥1.5× kopia, restore ≥2× both, unchanged re-backup <0.5 s, copy ≤2× our unchanged, peak RSS ≤ the lower of the peers' (each row; anon: the same for anonymous memory).\n",
		humanBytes(b.ds.bytes))
}

// peers are the tools our ratios are taken against, if ours is in the table.
func (b *bench) peers() []string {
	var peers []string
	if slices.Contains(b.opt.tools, "ours") {
		for _, t := range b.opt.tools {
			// kopia-zstd gets its own ratios only when plain kopia is not in the table.
			if t != "ours" && (t != "kopia-zstd" || !slices.Contains(b.opt.tools, "kopia")) {
				peers = append(peers, t)
			}
		}
	}
	return peers
}

// ratios are a row's "÷peer speed" and "÷peer RSS" cells: the peer's time over ours, our
// peak RSS over the peer's.
func ratios(cells map[[3]string]cell, peers []string, target, sc string) []string {
	var row []string
	ours, okOurs := cells[[3]string{"ours", target, sc}]
	for _, p := range peers {
		if c, ok := cells[[3]string{p, target, sc}]; ok && okOurs {
			row = append(row, fmt.Sprintf("%.2f×", c.Seconds/ours.Seconds), fmt.Sprintf("%.2f", ours.MaxRSSMiB/c.MaxRSSMiB))
		} else {
			row = append(row, "-", "-")
		}
	}
	return row
}

// targetChecks says PASS or MISS for issue 17's targets that apply to a scenario's row: speed
// against restic and kopia, and peak RSS against the lower of the two (with anonymous memory,
// which leaves out the mapped pages of each binary, beside it).
func targetChecks(sc string, cells map[[3]string]cell, target string) string {
	ours, ok := cells[[3]string{"ours", target, sc}]
	if !ok {
		return ""
	}
	verdict := func(ok bool) string { return map[bool]string{true: "PASS", false: "MISS"}[ok] }
	var peers []cell // restic's and kopia's rows, in that order, where they ran
	for _, p := range []string{"restic", "kopia"} {
		if c, ok := cells[[3]string{p, target, sc}]; ok {
			peers = append(peers, c)
		}
	}
	var checks []string
	// faster checks the speed against each peer, with the peer's factor.
	faster := func(factor map[string]float64) {
		for _, c := range peers {
			f := factor[c.Tool]
			checks = append(checks, fmt.Sprintf("≥%g× %s %s", f, c.Tool, verdict(c.Seconds/ours.Seconds >= f)))
		}
	}
	switch sc {
	case scInitial:
		faster(map[string]float64{"restic": 2.5, "kopia": 1.5})
	case scRestore:
		faster(map[string]float64{"restic": 2, "kopia": 2})
	case scUnchanged:
		checks = append(checks, "<0.5 s "+verdict(ours.Seconds < 0.5))
	case scCopy:
		if unchanged, ok := cells[[3]string{"ours", target, scUnchanged}]; ok {
			checks = append(checks, "≤2× unchanged "+verdict(ours.Seconds <= 2*unchanged.Seconds))
		}
	}
	if len(peers) > 0 {
		rss, anon := peers[0].MaxRSSMiB, peers[0].AnonMiB
		for _, c := range peers[1:] {
			rss, anon = min(rss, c.MaxRSSMiB), min(anon, c.AnonMiB)
		}
		checks = append(checks, fmt.Sprintf("RSS≤peers %s (anon %s)", verdict(ours.MaxRSSMiB <= rss), verdict(ours.AnonMiB <= anon)))
	}
	return strings.Join(checks, ", ")
}
