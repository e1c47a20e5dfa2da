package build

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// printer writes the step lines a person reads: one line per step with
// CACHED or its time, a RUN's output indented under it. Stages build in
// parallel, so whole lines are written under a lock. quiet prints
// nothing (failures still show their output tail through the error).
// On a terminal (tty) RUN output is a live window of its last lines at
// the bottom, redrawn in place, and only step lines stay on screen.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
	tty   bool
	live  []string // tty: the window of recent output lines
	shown int      // tty: lines of the window now on screen
	busy  int      // RUN steps printing output now (parallel stages)
}

const liveLines = 6

// clearLive erases the window from the screen (cursor up, clear below).
func (p *printer) clearLive() {
	if p.shown > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.shown)
		p.shown = 0
	}
}

func (p *printer) drawLive() {
	for _, l := range p.live {
		if len(l) > 120 {
			l = l[:120]
		}
		fmt.Fprintf(p.w, "\x1b[2m    %s\x1b[0m\n", l)
	}
	p.shown = len(p.live)
}

func newPrinter(w io.Writer, mode string) *printer {
	return &printer{w: w, quiet: mode == "quiet", tty: mode == "tty"}
}

func (p *printer) printf(format string, a ...any) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clearLive()
		fmt.Fprintf(p.w, format, a...)
		p.drawLive()
		return
	}
	fmt.Fprintf(p.w, format, a...)
}

// outputLine shows one line of a RUN's output: indented in plain mode
// (tagged with its step while several steps print at once), in the live
// window on a terminal.
func (p *printer) outputLine(prefix, l string) {
	if p.quiet {
		return
	}
	if !p.tty {
		p.mu.Lock()
		many := p.busy > 1
		p.mu.Unlock()
		if many {
			p.printf("    %s %s\n", prefix, l)
		} else {
			p.printf("    %s\n", l)
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLive()
	p.live = append(p.live, l)
	if len(p.live) > liveLines {
		p.live = p.live[1:]
	}
	p.drawLive()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func (p *printer) line(prefix, text, suffix string) {
	if suffix != "" {
		suffix = " " + suffix
	}
	p.printf("%s %s%s\n", prefix, oneLine(text), suffix)
}

func (p *printer) cached(prefix, text string) { p.line(prefix, text, "CACHED") }

func (p *printer) begin(prefix, text string) {
	p.mu.Lock()
	p.busy++
	p.mu.Unlock()
	p.line(prefix, text, "")
}

func (p *printer) done(prefix, text string, d time.Duration, begun bool) {
	el := fmt.Sprintf("%.2fs", d.Seconds())
	if begun {
		p.mu.Lock()
		p.busy--
		if p.tty {
			p.clearLive()
			p.live = nil
		}
		p.mu.Unlock()
		p.printf("%s DONE %s\n", prefix, el)
		return
	}
	p.line(prefix, text, el)
}

func (p *printer) warn(msg string) { p.printf("WARNING: %s\n", msg) }

// output returns a writer for a RUN's output: lines are indented under
// the step and the last ones kept for the error message.
func (p *printer) output(prefix string) *stepOutput {
	return &stepOutput{p: p, prefix: prefix}
}

type stepOutput struct {
	p      *printer
	prefix string
	mu     sync.Mutex
	part   []byte
	tail   []string
}

const tailLines = 20

func (o *stepOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.part = append(o.part, b...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.emit(string(o.part[:i]))
		o.part = o.part[i+1:]
	}
	return len(b), nil
}

func (o *stepOutput) emit(l string) {
	l = strings.TrimRight(l, "\r")
	o.tail = append(o.tail, l)
	if len(o.tail) > tailLines {
		o.tail = o.tail[1:]
	}
	o.p.outputLine(o.prefix, l)
}

// Close flushes a last unterminated line.
func (o *stepOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.part) > 0 {
		o.emit(string(o.part))
		o.part = nil
	}
	return nil
}

// Tail is the last lines of output, for a failure message.
func (o *stepOutput) Tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.tail, "\n")
}
