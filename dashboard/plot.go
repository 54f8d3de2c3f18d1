package dashboard

import (
	"strconv"
	"time"

	"stork.dev/stork/internal/units"
)

// Plot is a bar chart of one value per backup, oldest on the left, drawn as inline SVG by the
// page template (templates/plot.html). A bar per backup, a y-axis maximum and the first and last
// dates is all these plots need: made here in a few lines, where a plotting library (gonum/plot)
// would bring fonts and a drawing stack into the controller, and a JavaScript one a script into
// a page that otherwise runs none.
type Plot struct {
	Title         string
	Width, Height int
	// Top is the y-axis maximum as a label; Left and Right are the x-axis ends (dates).
	Top, Left, Right string
	Bars             []Bar
	// X0, Y0, X1 are the axes' corners.
	X0, Y0, X1 float64
}

// Bar is one backup's bar; Value is the raw number (bytes or seconds, for tests and tools
// reading the page), Title its tooltip.
type Bar struct {
	X, Y, W, H                  float64
	Backup, Value, Title, Class string
}

const (
	plotWidth, plotHeight = 640, 180
	plotLeft, plotBottom  = 72, 22
	plotTop, plotRight    = 8, 8
	// plotBackups is how many of the newest backups a plot shows.
	plotBackups = 60
)

// historyPlots makes the size and duration plots of rows (newest first); nil when there is
// nothing to draw.
func historyPlots(rows []BackupRow) (size, took *Plot) {
	var sized, timed []BackupRow
	for _, r := range rows {
		if r.bytes > 0 && len(sized) < plotBackups {
			sized = append(sized, r)
		}
		if r.took > 0 && len(timed) < plotBackups {
			timed = append(timed, r)
		}
	}
	size = barPlot("Backup size", sized, func(r BackupRow) float64 { return float64(r.bytes) },
		func(v float64) string { return units.Bytes(int64(v)) })
	took = barPlot("Backup duration", timed, func(r BackupRow) float64 { return r.took.Seconds() },
		func(v float64) string {
			return time.Duration(v * float64(time.Second)).Round(time.Second / 10).String()
		})
	return size, took
}

// barPlot lays out one bar per row (given newest first; drawn oldest first).
func barPlot(title string, rows []BackupRow, value func(BackupRow) float64, label func(float64) string) *Plot {
	if len(rows) == 0 {
		return nil
	}
	p := &Plot{Title: title, Width: plotWidth, Height: plotHeight,
		X0: plotLeft, Y0: plotHeight - plotBottom, X1: plotWidth - plotRight}
	top := 0.0
	for _, r := range rows {
		top = max(top, value(r))
	}
	p.Top = label(top)
	slot := (p.X1 - p.X0) / float64(len(rows))
	w := min(slot*0.8, 40)
	for i := range rows {
		r := rows[len(rows)-1-i]
		v := value(r)
		h := 0.0
		if top > 0 {
			h = v / top * (p.Y0 - plotTop)
		}
		p.Bars = append(p.Bars, Bar{X: p.X0 + float64(i)*slot + (slot-w)/2, Y: p.Y0 - h, W: w, H: h,
			Backup: r.Name, Value: strconv.FormatFloat(v, 'f', -1, 64), Title: r.Name + ": " + label(v), Class: r.Phase.Class})
	}
	p.Left, p.Right = rows[len(rows)-1].start.UTC().Format(time.DateTime), rows[0].start.UTC().Format(time.DateTime)
	return p
}
