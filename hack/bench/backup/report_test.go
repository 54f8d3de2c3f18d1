package main

import "testing"

func TestTargetChecks(t *testing.T) {
	cells := func(cs ...cell) map[[3]string]cell {
		m := map[[3]string]cell{}
		for _, c := range cs {
			c.Target = "file"
			m[[3]string{c.Tool, c.Target, c.Scenario}] = c
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		sc    string
		cells map[[3]string]cell
		want  string
	}{
		{"initial backup: restic at 2.5×, kopia at 1.5×, RSS under the lower peer's", scInitial, cells(
			cell{Tool: "ours", Scenario: scInitial, Seconds: 2, MaxRSSMiB: 100, AnonMiB: 50},
			cell{Tool: "restic", Scenario: scInitial, Seconds: 5, MaxRSSMiB: 120, AnonMiB: 60},
			cell{Tool: "kopia", Scenario: scInitial, Seconds: 2.9, MaxRSSMiB: 110, AnonMiB: 40}),
			"≥2.5× restic PASS, ≥1.5× kopia MISS, RSS≤peers PASS (anon MISS)"},
		{"restore: 2× both", scRestore, cells(
			cell{Tool: "ours", Scenario: scRestore, Seconds: 1, MaxRSSMiB: 100, AnonMiB: 50},
			cell{Tool: "restic", Scenario: scRestore, Seconds: 1.9, MaxRSSMiB: 90, AnonMiB: 60},
			cell{Tool: "kopia", Scenario: scRestore, Seconds: 2, MaxRSSMiB: 300, AnonMiB: 200}),
			"≥2× restic MISS, ≥2× kopia PASS, RSS≤peers MISS (anon PASS)"},
		{"unchanged, no peers", scUnchanged, cells(cell{Tool: "ours", Scenario: scUnchanged, Seconds: 0.49}), "<0.5 s PASS"},
		{"no row of ours", scRestore, cells(cell{Tool: "restic", Scenario: scRestore, Seconds: 1}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := targetChecks(tc.sc, tc.cells, "file"); got != tc.want {
				t.Errorf("targetChecks: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCalibrationLine(t *testing.T) {
	r := report{Calibrations: []calibration{
		{Suite: "standard", When: "before run 1", MiBs: 480},
		{Suite: "files", When: "before run 1", MiBs: 100},
		{Suite: "standard", When: "after the last run", MiBs: 320},
	}}
	for _, tc := range []struct{ suite, want string }{
		{"standard", "machine speed through the runs (MiB/s; before run 1, after the last run): 480 / 320; the slowest 33% below the fastest"},
		{"files", "machine speed through the runs (MiB/s; before run 1): 100; the slowest 0% below the fastest"},
		{"empty", ""},
	} {
		if got := r.calibrationLine(tc.suite); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.suite, got, tc.want)
		}
	}
}
