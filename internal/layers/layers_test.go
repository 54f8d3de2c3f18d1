package layers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// moduleRoot is the checkout this test runs in.
const moduleRoot = "../.."

func doc(room Room) string { return "// Package p.\n//\n// " + Line(room) + "\npackage p\n" }

// TestModule holds the whole module to its rules.
func TestModule(t *testing.T) {
	pkgs, err := Load(context.Background(), moduleRoot, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 40 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	for _, v := range Check(pkgs) {
		t.Error(v)
	}
	// The bar, spelled out: the agent and the drivers reach no reconciler, placement
	// does not import restore.
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[rel(p.Path)] = p
	}
	reconcilers := []string{"backup/controllers", "backup/controllers/locations", "restore", "schedules", "placement"}
	for _, p := range pkgs {
		if r := rel(p.Path); r != "cmd/stork-agent" && !strings.HasPrefix(r, "drivers") {
			continue
		}
		for _, d := range p.Deps {
			if slices.Contains(reconcilers, rel(d)) {
				t.Errorf("%s depends on the reconciler package %s", rel(p.Path), rel(d))
			}
		}
	}
	if slices.Contains(byPath["placement"].Deps, Module+"/restore") {
		t.Error("placement depends on restore")
	}
	// stork-repo is the repository command line without Kubernetes clients (its smaller binary
	// is the point of it).
	if len(byPath["cmd/stork-repo"].Deps) == 0 {
		t.Error("go list did not list cmd/stork-repo or its dependencies")
	}
	for _, d := range byPath["cmd/stork-repo"].Deps {
		if controllerLibrary(d) {
			t.Errorf("cmd/stork-repo depends on %s", d)
		}
	}
}

// TestUpwardImportsCaught adds upward imports to the real module (through a go list overlay,
// so that nothing is written to the checkout) and expects the check to name each.
func TestUpwardImportsCaught(t *testing.T) {
	abs, err := filepath.Abs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	probes := map[string]string{
		// A driver package importing a controller.
		"drivers/taskstatus/zz_probe.go": "package taskstatus\n\nimport _ \"stork.dev/stork/placement\"\n",
		// A controller importing another tree's controller.
		"placement/zz_probe.go": "package placement\n\nimport _ \"stork.dev/stork/restore\"\n",
		// The engine linking client-go, indirectly through a package that is not Stork's.
		"backup/engine/retention/zz_probe.go": "package retention\n\nimport _ \"k8s.io/client-go/kubernetes/scheme\"\n",
	}
	dir := t.TempDir()
	overlay := struct{ Replace map[string]string }{Replace: map[string]string{}}
	for name, src := range probes {
		f := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		overlay.Replace[filepath.Join(abs, name)] = f
	}
	b, _ := json.Marshal(overlay)
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := Load(context.Background(), moduleRoot, overlayFile)
	if err != nil {
		t.Fatal(err)
	}
	got := Check(pkgs)
	for _, want := range []string{
		"drivers/taskstatus imports placement (room controllers): " + Line(Drivers),
		"placement imports restore (room controllers, under restore/): " + Line(Controllers),
		"backup/engine/retention (room engine) depends on k8s.io/client-go/kubernetes/scheme: " + Line(Engine),
	} {
		if !slices.Contains(got, Violation(want)) {
			t.Errorf("missing violation %q; got:\n%s", want, join(got))
		}
	}
	// Packages importing the probed ones inherit the dependency: the engine packages above
	// retention are reported too, and nothing else is.
	for _, v := range got {
		if !strings.HasPrefix(string(v), "drivers/taskstatus ") && !strings.HasPrefix(string(v), "placement ") &&
			!strings.HasPrefix(string(v), "backup/engine/") {
			t.Errorf("unexpected violation %q", v)
		}
	}
}

func join(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  " + string(v) + "\n")
	}
	return b.String()
}

// TestCheck runs the rules over small made-up graphs.
func TestCheck(t *testing.T) {
	const m = Module + "/"
	lib := Package{Path: m + "internal/names", Doc: doc(Lib)}
	engine := Package{Path: m + "backup/engine/repo", Doc: doc(Engine), Imports: []string{m + "internal/names"}}
	testkit := Package{Path: m + "internal/harness", Doc: doc(Testkit)}
	restore := Package{Path: m + "restore", Doc: doc(Controllers)}
	tests := []struct {
		name string
		pkg  Package
		want string // "" for no violation
	}{
		{"downward import", Package{Path: m + "drivers/csi", Doc: doc(Drivers), Imports: []string{m + "backup/engine/repo", "fmt"}}, ""},
		{"upward import", Package{Path: m + "backup/engine/archive", Doc: doc(Engine), Imports: []string{m + "restore"}},
			"backup/engine/archive imports restore (room controllers): " + Line(Engine)},
		{"controllers of one tree", Package{Path: m + "restore/sub", Doc: doc(Controllers), Imports: []string{m + "restore"}}, ""},
		{"controllers of another tree", Package{Path: m + "placement", Doc: doc(Controllers), Imports: []string{m + "restore"}},
			"placement imports restore (room controllers, under restore/): " + Line(Controllers)},
		{"test kit from a test", Package{Path: m + "api/v1alpha1", Doc: doc(API), TestImports: []string{m + "internal/harness"}}, ""},
		{"test kit from code", Package{Path: m + "cmd/stork", Doc: doc(Cmd), Imports: []string{m + "internal/harness"}},
			"cmd/stork imports internal/harness (room testkit): " + Line(Cmd)},
		{"upward import from a test", Package{Path: m + "backup/engine/catalog", Doc: doc(Engine), TestImports: []string{m + "restore"}},
			"backup/engine/catalog (tests) import restore (room controllers): " + Line(Engine)},
		{"controller library", Package{Path: m + "backup/engine/transfer", Doc: doc(Engine), Deps: []string{"fmt", "sigs.k8s.io/controller-runtime/pkg/client"}},
			"backup/engine/transfer (room engine) depends on sigs.k8s.io/controller-runtime/pkg/client: " + Line(Engine)},
		{"controller library in a driver", Package{Path: m + "drivers/csi", Doc: doc(Drivers), Deps: []string{"k8s.io/client-go/kubernetes"}}, ""},
		{"no doc.go", Package{Path: m + "x"}, "x: no doc.go"},
		{"no layer line", Package{Path: m + "x", Doc: "// Package x.\npackage x\n"}, `x: doc.go has no line`},
		{"unknown layer", Package{Path: m + "x", Doc: "// Layer: core. May import: lib.\npackage x\n"}, `x: doc.go names layer "core"`},
		{"line not the rule", Package{Path: m + "x", Doc: "// Layer: engine. May import: everything.\npackage x\n"},
			`x: doc.go says "Layer: engine. May import: everything."; the rule of room engine is`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check([]Package{lib, engine, testkit, restore, tt.pkg})
			switch {
			case tt.want == "" && len(got) > 0:
				t.Fatalf("violations %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.HasPrefix(string(got[0]), tt.want)):
				t.Fatalf("violations %q, want one starting %q", got, tt.want)
			}
		})
	}
}
