package layers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Module is the import path of Stork's module.
const Module = "stork.dev/stork"

// Room is a layer of the import graph.
type Room string

// The rooms, lowest first.
const (
	Lib         Room = "lib"
	API         Room = "api"
	Engine      Room = "engine"
	Drivers     Room = "drivers"
	Kit         Room = "kit"
	Controllers Room = "controllers"
	Cmd         Room = "cmd"
	Testkit     Room = "testkit"
	Tests       Room = "tests"
)

// Rule is what the packages of a room may import.
type Rule struct {
	// MayImport lists the rooms a package of this room may import.
	MayImport []Room
	// SameTreeOnly limits imports of the room's own packages to those under the same
	// top-level directory: backup's controllers may use each other, placement may not use
	// restore's.
	SameTreeOnly bool
	// NoControllerLibraries forbids controller-runtime and client-go anywhere in the
	// package's (non-test) dependencies, so that the engine runs without Kubernetes.
	NoControllerLibraries bool
}

// Rules is the table the doc.go lines are held to.
var Rules = map[Room]Rule{
	Lib:         {MayImport: []Room{Lib}, NoControllerLibraries: true},
	API:         {MayImport: []Room{Lib, API}, NoControllerLibraries: true},
	Engine:      {MayImport: []Room{Lib, API, Engine}, NoControllerLibraries: true},
	Drivers:     {MayImport: []Room{Lib, API, Engine, Drivers}},
	Kit:         {MayImport: []Room{Lib, API, Engine, Drivers, Kit}},
	Controllers: {MayImport: []Room{Lib, API, Engine, Drivers, Kit, Controllers}, SameTreeOnly: true},
	Cmd:         {MayImport: []Room{Lib, API, Engine, Drivers, Kit, Controllers}},
	Testkit:     {MayImport: []Room{Lib, API, Engine, Drivers, Kit, Controllers, Testkit}},
	Tests:       {MayImport: []Room{Lib, API, Engine, Drivers, Kit, Controllers, Cmd, Testkit, Tests}},
}

// controllerLibraries are the import path prefixes NoControllerLibraries forbids.
var controllerLibraries = []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go"}

// Line is the sentence a doc.go of the room carries, word for word.
func Line(room Room) string {
	rule := Rules[room]
	var may []string
	for _, r := range rule.MayImport {
		if r == room && rule.SameTreeOnly {
			may = append(may, string(r)+" (same top-level directory)")
		} else {
			may = append(may, string(r))
		}
	}
	line := "Layer: " + string(room) + ". May import: " + strings.Join(may, ", ") + "."
	if rule.NoControllerLibraries {
		line += " No controller-runtime or client-go."
	}
	return line
}

// Package is one package of the module as the check sees it.
type Package struct {
	Path string // import path
	// Doc is the text of its doc.go ("" when it has none).
	Doc string
	// Imports are its direct imports; TestImports those of its test files (in-package and
	// external); Deps its non-test dependencies, transitively.
	Imports, TestImports, Deps []string
}

// Violation is one broken rule, for a person to read.
type Violation string

// Check holds every package to its room's rule and returns what breaks it.
func Check(pkgs []Package) []Violation {
	rooms := map[string]Room{}
	var out []Violation
	for _, p := range pkgs {
		room, err := roomOf(p.Doc)
		if err != nil {
			out = append(out, Violation(fmt.Sprintf("%s: %v", rel(p.Path), err)))
			continue
		}
		rooms[p.Path] = room
	}
	for _, p := range pkgs {
		room, ok := rooms[p.Path]
		if !ok {
			continue
		}
		rule := Rules[room]
		for _, imp := range p.Imports {
			if msg := refused(p.Path, room, imp, rooms, rule); msg != "" {
				out = append(out, Violation(rel(p.Path)+" imports "+msg))
			}
		}
		// Test files may import what their package may, and the test kits.
		testRule := rule
		testRule.MayImport = append(slices.Clone(rule.MayImport), Testkit)
		for _, imp := range p.TestImports {
			if imp == p.Path {
				continue // an external test package importing the package it tests
			}
			if msg := refused(p.Path, room, imp, rooms, testRule); msg != "" {
				out = append(out, Violation(rel(p.Path)+" (tests) import "+msg))
			}
		}
		if rule.NoControllerLibraries {
			for _, d := range p.Deps {
				if controllerLibrary(d) {
					out = append(out, Violation(fmt.Sprintf("%s (room %s) depends on %s: %s", rel(p.Path), room, d, Line(room))))
					break
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// refused says why imp may not be imported by pkg, or "" when it may.
func refused(pkg string, room Room, imp string, rooms map[string]Room, rule Rule) string {
	if !strings.HasPrefix(imp, Module+"/") {
		return ""
	}
	to, ok := rooms[imp]
	if !ok {
		return "" // a package without a room is reported on its own
	}
	if !slices.Contains(rule.MayImport, to) {
		return fmt.Sprintf("%s (room %s): %s", rel(imp), to, Line(room))
	}
	if to == room && rule.SameTreeOnly && top(pkg) != top(imp) {
		return fmt.Sprintf("%s (room %s, under %s/): %s", rel(imp), to, top(imp), Line(room))
	}
	return ""
}

func controllerLibrary(path string) bool {
	for _, l := range controllerLibraries {
		if path == l || strings.HasPrefix(path, l+"/") {
			return true
		}
	}
	return false
}

// roomOf finds the "Layer: " line of a doc.go and checks it says what the table says.
func roomOf(doc string) (Room, error) {
	if doc == "" {
		return "", errors.New("no doc.go: every package says in its doc.go what lives there and its layer")
	}
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		text, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "// ")
		if !ok || !strings.HasPrefix(text, "Layer: ") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(text, "Layer: "), ".")
		room := Room(name)
		if _, ok := Rules[room]; !ok {
			return "", fmt.Errorf("doc.go names layer %q, which is not one of %s", name, roomNames())
		}
		if text != Line(room) {
			return "", fmt.Errorf("doc.go says %q; the rule of room %s is %q", text, room, Line(room))
		}
		return room, nil
	}
	return "", fmt.Errorf(`doc.go has no line "// Layer: ROOM. May import: …" (rooms: %s)`, roomNames())
}

func roomNames() string {
	var names []string
	for _, r := range []Room{Lib, API, Engine, Drivers, Kit, Controllers, Cmd, Testkit, Tests} {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

func rel(path string) string { return strings.TrimPrefix(path, Module+"/") }

// top is the top-level directory of a package of the module.
func top(path string) string {
	first, _, _ := strings.Cut(rel(path), "/")
	return first
}

// Load lists the module's packages in dir with `go list`. overlay, when not "", is a
// `go list -overlay` file: the check can then be shown a change without writing it.
func Load(ctx context.Context, dir, overlay string) ([]Package, error) {
	args := []string{"list", "-e", "-json=ImportPath,Dir,Imports,TestImports,XTestImports,Deps,Error"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./...")...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list ./... in %s: %v: %s", dir, err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var lp struct {
			ImportPath, Dir                    string
			Imports, TestImports, XTestImports []string
			Deps                               []string
			Error                              *struct{ Err string }
		}
		if err := dec.Decode(&lp); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		if lp.Error != nil {
			return nil, fmt.Errorf("go list: package %s: %s", lp.ImportPath, lp.Error.Err)
		}
		doc, err := os.ReadFile(filepath.Join(lp.Dir, "doc.go"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		pkgs = append(pkgs, Package{Path: lp.ImportPath, Doc: string(doc), Imports: lp.Imports,
			TestImports: append(lp.TestImports, lp.XTestImports...), Deps: lp.Deps})
	}
	return pkgs, nil
}
