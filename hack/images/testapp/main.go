package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"stork.dev/stork/internal/treesum"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: testapp run|hook|sum DIR [NAME|DIR...]"))
	}
	dir := os.Args[2]
	switch os.Args[1] {
	case "run":
		for _, dir := range os.Args[2:] {
			if err := fill(dir); err != nil {
				fail(err)
			}
			printSum(dir)
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
	case "hook":
		if len(os.Args) != 4 {
			fail(fmt.Errorf("usage: testapp hook DIR NAME"))
		}
		if err := os.WriteFile(filepath.Join(dir, os.Args[3]), []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("hook", os.Args[3], "written")
	case "sum":
		for _, dir := range os.Args[2:] {
			printSum(dir)
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testapp:", err)
	os.Exit(1)
}

// fill writes 200 files in 10 directories, of 1 KiB to 256 KiB of seeded random bytes, and a
// 4 MiB file, unless dir holds files already (a restored volume).
func fill(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i := range 200 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%10))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := writeRandom(r, filepath.Join(sub, fmt.Sprintf("f%03d", i)), 1<<10+r.IntN(255<<10)); err != nil {
			return err
		}
	}
	return writeRandom(r, filepath.Join(dir, "large"), 4<<20)
}

func writeRandom(r *rand.Rand, path string, n int) error {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return os.WriteFile(path, b, 0o644)
}

// printSum prints the tree's sum (treesum) and its directory.
func printSum(dir string) {
	sum, err := treesum.Of(dir)
	if err != nil {
		fail(err)
	}
	fmt.Println(sum, "dir", dir)
}
