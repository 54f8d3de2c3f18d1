package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Main runs root with the process's arguments and exits: 0 on success, 1 after printing the
// error as "NAME: error".
func Main(root *cobra.Command) {
	if os.Getenv("GOGC") == "" {
		// Backups and restores reuse their big buffers, so what the garbage collector frees is
		// small: a low target keeps the peak RSS near the live memory (168 → 120 MiB on the
		// benchmark's backup) for no measurable CPU (docs/performance.md).
		debug.SetGCPercent(25)
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", root.Name(), err)
		os.Exit(1)
	}
}

// ParseMap reads repeated --flag A=B values; form says how they look (FROM=TO, KEY=VALUE).
func ParseMap(flag, form string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--%s %q: want %s", flag, p, form)
		}
		m[k] = v
	}
	return m, nil
}

// Bar is a byte progress bar on a terminal, and nothing elsewhere (logs stay clean).
type Bar struct {
	pb *progressbar.ProgressBar
}

// NewBar returns a bar drawn on w when w is a terminal, and an inactive one otherwise.
func NewBar(w io.Writer, what string) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &Bar{}
	}
	return &Bar{pb: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())}
}

// Active says whether the bar is drawn (callers print lines instead when it is not).
func (b *Bar) Active() bool { return b.pb != nil }

// Update moves the bar to done of total bytes.
func (b *Bar) Update(done, total int64) {
	if b.pb == nil {
		return
	}
	if b.pb.GetMax64() != total {
		b.pb.ChangeMax64(total)
	}
	_ = b.pb.Set64(done)
}

// Finish completes the bar and clears it from the terminal.
func (b *Bar) Finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}
