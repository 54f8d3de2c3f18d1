package main

// The machine's speed during a run: this VM's CPU time per byte moved by up to 70% between runs
// an hour apart (docs/performance.md, 2026-12-07, second session), and ratios between tools
// measured in different periods moved with it. A short fixed workload before every round and
// after the last says how steady the machine was.

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// calibration is one measurement of the probe.
type calibration struct {
	Suite string  `json:"suite"`
	When  string  `json:"when"`
	MiBs  float64 `json:"mib_per_s"`
}

// calibrationBytes is what each of the probe's two goroutines compresses and hashes.
const calibrationBytes = 16 << 20

// calibrator holds the probe's input, made once: log text as the dataset's, so that the probe
// does what the engine spends most of its CPU on (zstd's fastest level and BLAKE3).
type calibrator struct {
	text []byte
	enc  *zstd.Encoder
	out  [2][]byte // the goroutines' output buffers, reused: fresh memory costs this VM a fault per page
}

func newCalibrator() (*calibrator, error) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeText(w, rand.New(rand.NewChaCha8([32]byte{'c', 'a', 'l'})), calibrationBytes); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	c := &calibrator{text: buf.Bytes(), enc: enc}
	for i := range c.out {
		c.out[i] = enc.EncodeAll(c.text, make([]byte, 0, len(c.text))) // and the encoder's tables are made
	}
	return c, nil
}

// measure compresses and hashes the text on both cores, five times, and returns the median
// rate in MiB/s of input: a slow period of the host shows, one slow moment does not.
func (c *calibrator) measure() float64 {
	rates := make([]float64, 5)
	for r := range rates {
		start := time.Now()
		var g errgroup.Group
		for i := range c.out {
			g.Go(func() error {
				c.out[i] = c.enc.EncodeAll(c.text, c.out[i][:0])
				_ = blake3.Sum256(c.out[i])
				_ = blake3.Sum256(c.text)
				return nil
			})
		}
		_ = g.Wait()
		rates[r] = float64(len(c.out)*len(c.text)) / (1 << 20) / time.Since(start).Seconds()
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

// calibrate records and prints one measurement.
func (b *bench) calibrate(suite, when string) {
	m := calibration{Suite: suite, When: when, MiBs: b.cal.measure()}
	b.report.Calibrations = append(b.report.Calibrations, m)
	fmt.Printf("machine speed %s: %.0f MiB/s (zstd-fastest and BLAKE3 of log text, both cores)\n", when, m.MiBs)
}

// calibrationLine is one line on a suite's calibrations: each, and their spread ("" if none).
func (r *report) calibrationLine(suite string) string {
	var whens, rates []string
	lo, hi := math.Inf(1), 0.0
	for _, c := range r.Calibrations {
		if c.Suite != suite {
			continue
		}
		whens, rates = append(whens, c.When), append(rates, fmt.Sprintf("%.0f", c.MiBs))
		lo, hi = min(lo, c.MiBs), max(hi, c.MiBs)
	}
	if len(rates) == 0 {
		return ""
	}
	return fmt.Sprintf("machine speed through the runs (MiB/s; %s): %s; the slowest %.0f%% below the fastest",
		strings.Join(whens, ", "), strings.Join(rates, " / "), 100*(1-lo/hi))
}
