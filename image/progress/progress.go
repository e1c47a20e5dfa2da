// Package progress shows blob copies to a person: a live bar per blob
// (bytes and rate) on a terminal, one plain line per step otherwise.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Printer implements store.Progress.
type Printer struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	bars  []*bar
	drawn int
	last  time.Time
}

type bar struct {
	id          string
	total, done int64
	start       time.Time
	end         time.Time
	err         error
	finished    bool
}

// New returns a printer writing to f (normally stderr), nil when quiet.
func New(f *os.File, quiet bool) *Printer {
	if quiet {
		return nil
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return &Printer{w: f, tty: err == nil}
}

func (p *Printer) find(id string) *bar {
	for _, b := range p.bars {
		if b.id == id && !b.finished {
			return b
		}
	}
	return nil
}

// Start announces a blob copy; total < 0 when unknown.
func (p *Printer) Start(id string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bars = append(p.bars, &bar{id: id, total: total, start: time.Now()})
	if !p.tty {
		fmt.Fprintf(p.w, "Copying blob %s\n", id)
		return
	}
	p.redraw(true)
}

// Update reports done bytes so far.
func (p *Printer) Update(id string, done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.find(id); b != nil {
		b.done = done
	}
	if p.tty {
		p.redraw(false)
	}
}

// Done ends a blob copy.
func (p *Printer) Done(id string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.find(id)
	if b == nil {
		return
	}
	b.finished, b.err, b.end = true, err, time.Now()
	if !p.tty {
		if err == nil {
			fmt.Fprintf(p.w, "Copied blob %s (%s, %s)\n", id, human(b.done), rate(b.done, b.end.Sub(b.start)))
		}
		return
	}
	p.redraw(true)
}

// Line prints a step on its own line.
func (p *Printer) Line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	if p.tty {
		p.drawn = 0
		p.redraw(true)
	}
}

func (p *Printer) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA", p.drawn)
		for i := 0; i < p.drawn; i++ {
			fmt.Fprint(p.w, "\x1b[K\n")
		}
		fmt.Fprintf(p.w, "\x1b[%dA", p.drawn)
	}
}

// redraw repaints the bars in place, at most ten times a second unless
// forced.
func (p *Printer) redraw(force bool) {
	if !force && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	var sb strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", p.drawn)
	}
	for _, b := range p.bars {
		sb.WriteString("\x1b[K")
		sb.WriteString(b.line())
		sb.WriteByte('\n')
	}
	p.drawn = len(p.bars)
	io.WriteString(p.w, sb.String())
}

func (b *bar) line() string {
	end := time.Now()
	if b.finished {
		end = b.end
	}
	el := end.Sub(b.start)
	switch {
	case b.finished && b.err != nil:
		return fmt.Sprintf("%-14s failed: %v", b.id, b.err)
	case b.finished:
		return fmt.Sprintf("%-14s done   %10s  %s", b.id, human(b.done), rate(b.done, el))
	}
	const width = 30
	if b.total > 0 {
		n := int(float64(width) * float64(b.done) / float64(b.total))
		n = min(max(n, 0), width)
		return fmt.Sprintf("%-14s [%s%s] %s / %s  %s", b.id, strings.Repeat("=", n), strings.Repeat(" ", width-n), human(b.done), human(b.total), rate(b.done, el))
	}
	return fmt.Sprintf("%-14s %s  %s", b.id, human(b.done), rate(b.done, el))
}

func human(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB"} {
		if f < 1000 || u == "GB" {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1000
	}
	return ""
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return human(int64(float64(n)/d.Seconds())) + "/s"
}
