package main

// The generated dataset and the 1% change applied to it.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// genVersion changes whenever the generator does, so a dataset made the old way is not reused.
const genVersion = 2

type fileSpec struct {
	rel   string
	size  int64
	text  bool
	index uint64 // seeds the content
}

type dataset struct {
	dir        string
	files      []fileSpec
	bytes      int64
	changed    []fileSpec // small files that the 1% change rewrites
	appendTo   fileSpec   // the text file that it appends to
	appendSize int64
	marker     string // exists while the dataset is changed
	seed       uint64
}

// baseTime is the modification time of every generated file, plus its index in seconds.
var baseTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func planDataset(work string, seed uint64, scale float64) *dataset {
	key := fmt.Sprintf("dataset-v%d-seed%d-scale%g", genVersion, seed, scale)
	d := &dataset{dir: filepath.Join(work, key), marker: filepath.Join(work, key+".changed"), seed: seed}
	scaled := func(n float64) int64 { return max(1, int64(math.Round(n*scale))) }
	var idx uint64
	add := func(rel string, size int64, text bool) {
		idx++
		d.files = append(d.files, fileSpec{rel: rel, size: size, text: text, index: idx})
		d.bytes += size
	}
	add("random/blob.bin", scaled(1<<30), false)
	for i := range 8 {
		add(fmt.Sprintf("text/app-%d.log", i), scaled(64<<20), true)
	}
	d.appendTo = d.files[1]
	d.appendSize = scaled(4 << 20)
	r := rand.New(rand.NewPCG(seed, 0))
	n := int(scaled(20000))
	k := max(1, n/100)
	for i := range n {
		size := 4<<10 + r.Int64N(60<<10+1)
		text := r.IntN(2) == 0
		ext := map[bool]string{true: "txt", false: "bin"}[text]
		add(fmt.Sprintf("small/g%02d/s%02d/f%05d.%s", i%10, i/10%10, i, ext), size, text)
		if i%(n/k) == n/k/2 && len(d.changed) < k {
			d.changed = append(d.changed, d.files[len(d.files)-1])
		}
	}
	return d
}

// prepareDataset generates a planned dataset, or reuses one generated with the same parameters.
func prepareDataset(ctx context.Context, d *dataset) (*dataset, error) {
	done := d.dir + ".done"
	if fileExists(done) {
		if fileExists(d.marker) { // a run was interrupted during the 1% change
			fmt.Println("undoing an interrupted run's change to the dataset")
			if err := d.revert(); err != nil {
				return nil, err
			}
		}
		fmt.Printf("reusing dataset %s\n", d.dir)
		return d, nil
	}
	fmt.Printf("generating dataset %s: %d files, %s\n", d.dir, len(d.files), humanBytes(d.bytes))
	start := time.Now()
	if err := os.RemoveAll(d.dir); err != nil {
		return nil, err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for _, f := range d.files {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return d.write(f, 0, false)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	syscall.Sync()
	fmt.Printf("generated in %.1f s\n", time.Since(start).Seconds())
	return d, os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// write generates a file's content: variant 0 is the original, 1 the changed one. With appendSize
// it appends that many bytes of variant 1 instead.
func (d *dataset) write(f fileSpec, variant uint64, appending bool) error {
	p := filepath.Join(d.dir, f.rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mtime := baseTime.Add(time.Duration(f.index) * time.Second)
	if f.size == 0 { // the empty-files suite: millions of them
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	}
	flags, size := os.O_WRONLY|os.O_CREATE|os.O_TRUNC, f.size
	if appending {
		flags, size = os.O_WRONLY|os.O_APPEND, d.appendSize
	}
	file, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(file, 1<<20)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[0:], d.seed)
	binary.LittleEndian.PutUint64(seed[8:], f.index)
	binary.LittleEndian.PutUint64(seed[16:], variant)
	if f.text {
		err = writeText(w, rand.New(rand.NewChaCha8(seed)), size)
	} else {
		_, err = io.CopyN(w, rand.NewChaCha8(seed), size)
	}
	if err == nil {
		err = w.Flush()
	}
	if err = errors.Join(err, file.Close()); err != nil || variant != 0 {
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}

// change applies the 1% change: rewrite 1% of the small files (same sizes, new content) and append
// to one text file. Every tool sees exactly the same change.
func (d *dataset) change() error {
	if err := os.WriteFile(d.marker, nil, 0o644); err != nil {
		return err
	}
	for _, f := range d.changed {
		if err := d.write(f, 1, false); err != nil {
			return err
		}
	}
	return d.write(d.appendTo, 1, true)
}

// recopy replaces the dataset by a `cp -a` copy of itself, as a volume's snapshot copy is: the
// same content, modes, owners and modification times (to the nanosecond), new inodes and
// ctimes, at the same path.
func (d *dataset) recopy(ctx context.Context) error {
	orig := d.dir + ".orig"
	if err := os.RemoveAll(orig); err != nil {
		return err
	}
	if err := os.Rename(d.dir, orig); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", orig, d.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", orig, d.dir, err, out)
	}
	return os.RemoveAll(orig)
}

// revert restores the original content and modification times, if the dataset is changed.
func (d *dataset) revert() error {
	if !fileExists(d.marker) {
		return nil
	}
	for _, f := range d.changed {
		if err := d.write(f, 0, false); err != nil {
			return err
		}
	}
	p := filepath.Join(d.dir, d.appendTo.rel)
	mtime := baseTime.Add(time.Duration(d.appendTo.index) * time.Second)
	if err := errors.Join(os.Truncate(p, d.appendTo.size), os.Chtimes(p, mtime, mtime)); err != nil {
		return err
	}
	return os.Remove(d.marker)
}

// The text is log-like lines: timestamp, level, component, a message template and a few free words
// (both Zipf-distributed over a vocabulary of common English words and made-up ones) and fields.
// zstd's fastest level compresses it about 4.5× in 1 MiB pieces (zstd -1: 4.4×, gzip -6: 4.7×).
var (
	vocabulary = makeVocabulary()
	components = []string{"api", "scheduler", "controller", "agent", "repo", "restore", "backup", "gc", "webhook",
		"leader", "cache", "informer", "csi", "snapshotter", "placement", "metrics", "auth", "s3", "index", "pack"}
	levels = []string{"INFO ", "INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN ", "ERROR"}
)

func makeVocabulary() []string {
	words := strings.Fields(`the of and to a in is it you that he was for on are with as I his they be at one
		have this from or had by not word but what some we can out other were all there when up use your how
		said an each she which do their time if will way about many then them write would like so these her
		long make thing see him two has look more day could go come did number sound no most people my over
		know water than call first who may down side been now find any new work part take get place made
		live where after back little only round man year came show every good me give our under name very
		through just form sentence great think say help low line differ turn cause much mean before move
		right boy old too same tell does set three want air well also play small end put home read hand
		port large spell add even land here must big high such follow act why ask men change went light
		kind off need house picture try us again animal point mother world near build self earth father
		request volume node pod snapshot backup restore error timeout retry bucket object chunk pack index`)
	syllables := strings.Fields("ka lo mi ne ru ta sho vin der pel cor an ex tra lum mor qui zen bar fi go hal " +
		"jo ke lan mu nor pi ros sel tor ul ver wix yan zo ble cru dra fen gri pro sti tek")
	r := rand.New(rand.NewPCG(42, 42)) // the same vocabulary whatever the seed
	seen := map[string]bool{}
	for _, w := range words {
		seen[w] = true
	}
	for len(words) < 8000 {
		var sb strings.Builder
		for range 1 + r.IntN(3) + r.IntN(2) {
			sb.WriteString(syllables[r.IntN(len(syllables))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// templates are the messages of the log lines: fixed word sequences, as a program's log calls
// are, each line picking one (Zipf) and adding a few free words and fields.
var templates = makeTemplates()

func makeTemplates() [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	words := rand.NewZipf(r, 1.1, 4, uint64(len(vocabulary)-1))
	out := make([][]byte, 600)
	for i := range out {
		var t []byte
		for j := range 3 + r.IntN(10) {
			if j > 0 {
				t = append(t, ' ')
			}
			t = append(t, vocabulary[words.Uint64()]...)
		}
		out[i] = t
	}
	return out
}

func writeText(w *bufio.Writer, r *rand.Rand, size int64) error {
	words := rand.NewZipf(r, 1.1, 4, uint64(len(vocabulary)-1))
	tmpl := rand.NewZipf(r, 1.1, 2, uint64(len(templates)-1))
	comps := rand.NewZipf(r, 1.3, 1, uint64(len(components)-1))
	t := baseTime.UnixMilli() + r.Int64N(1e9)
	line := make([]byte, 0, 512)
	for size > 0 {
		t += r.Int64N(1500)
		line = time.UnixMilli(t).UTC().AppendFormat(line[:0], "2006-01-02T15:04:05.000Z ")
		line = append(line, levels[r.IntN(len(levels))]...)
		line = append(line, " ["...)
		line = append(line, components[comps.Uint64()]...)
		line = append(line, "] "...)
		line = append(line, templates[tmpl.Uint64()]...)
		for range r.IntN(6) {
			line = append(line, ' ')
			line = append(line, vocabulary[words.Uint64()]...)
		}
		switch r.IntN(4) {
		case 0:
			line = append(line, " took="...)
			line = strconv.AppendInt(line, r.Int64N(5000), 10)
			line = append(line, "ms"...)
		case 1:
			line = append(line, " req="...)
			line = strconv.AppendUint(line, uint64(r.Uint32()), 16)
		case 2:
			line = append(line, " node=node-"...)
			line = strconv.AppendInt(line, r.Int64N(64), 10)
			line = append(line, " zone="...)
			line = append(line, "abc"[r.IntN(3)])
		}
		line = append(line, '\n')
		if int64(len(line)) > size {
			line = line[:size]
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		size -= int64(len(line))
	}
	return nil
}
