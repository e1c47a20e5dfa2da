package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// logEntry is one line of docker's json-file log driver.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

func (e *Engine) logPath(id string) string { return filepath.Join(e.dir(id), id+"-json.log") }

// LogPath is where the container's json-file log is.
func (e *Engine) LogPath(id string) string { return e.logPath(id) }

// jsonLog appends entries to a container's json-file log, rotating it to
// .1, .2, ... when it grows past max bytes.
type jsonLog struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	max      int64
	maxFiles int
}

func openJSONLog(path string, o *Options) (*jsonLog, error) {
	max, _ := parseSize(o.LogMaxSize)
	if max == 0 {
		max = 10 << 20
	}
	files := o.LogMaxFile
	if files <= 0 {
		files = 3
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	st, _ := f.Stat()
	return &jsonLog{path: path, f: f, size: st.Size(), max: max, maxFiles: files}, nil
}

func (l *jsonLog) write(stream string, line []byte) {
	b, _ := json.Marshal(logEntry{Log: string(line), Stream: stream, Time: time.Now().UTC()})
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size+int64(len(b)) > l.max && l.size > 0 {
		l.rotate()
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

// rotate shifts path.N to path.N+1 (dropping the oldest) and starts anew.
func (l *jsonLog) rotate() {
	l.f.Close()
	if l.maxFiles > 1 {
		for i := l.maxFiles - 1; i >= 1; i-- {
			src := l.path
			if i > 1 {
				src = l.path + "." + strconv.Itoa(i-1)
			}
			os.Rename(src, l.path+"."+strconv.Itoa(i))
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err == nil {
		l.f = f
	}
	l.size = 0
}

func (l *jsonLog) Close() error { return l.f.Close() }

// copyLines reads r line by line (lines longer than 16 KiB are split, as
// docker does), logs each and, if tee is set, writes it there too.
func (l *jsonLog) copyLines(stream string, r io.Reader, tee io.Writer) {
	// tee gets what the container wrote as soon as it wrote it (a prompt
	// without a newline, a shell's echo); the log gets whole lines.
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if tee != nil {
				tee.Write(buf[:n])
			}
			if l != nil {
				pending = append(pending, buf[:n]...)
				for {
					i := bytes.IndexByte(pending, '\n')
					if i < 0 {
						break
					}
					l.write(stream, pending[:i+1])
					pending = pending[i+1:]
				}
				if len(pending) >= 16<<10 { // docker's longest log line
					l.write(stream, pending)
					pending = nil
				}
				pending = append([]byte(nil), pending...) // let the written part go
			}
		}
		if err != nil {
			if l != nil && len(pending) > 0 {
				l.write(stream, pending)
			}
			return
		}
	}
}

// LogOptions select what Logs prints.
type LogOptions struct {
	Follow     bool
	Tail       int // -1 = all
	Since      time.Time
	Until      time.Time
	Timestamps bool
}

// Logs writes the container's logged output to stdout and stderr.
func (e *Engine) Logs(ref string, o LogOptions, stdout, stderr io.Writer) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	if c.Opts.LogDriver == "none" {
		return fmt.Errorf("container %s has --log-driver none: there are no logs to read", c.Name)
	}
	p := e.logPath(c.ID)
	var entries []logEntry
	// Rotated files first, oldest (highest number) first.
	for i := 9; i >= 1; i-- {
		entries = append(entries, readLogFile(p+"."+strconv.Itoa(i))...)
	}
	entries = append(entries, readLogFile(p)...)
	var sel []logEntry
	for _, en := range entries {
		if !o.Since.IsZero() && en.Time.Before(o.Since) {
			continue
		}
		if !o.Until.IsZero() && en.Time.After(o.Until) {
			continue
		}
		sel = append(sel, en)
	}
	if o.Tail >= 0 && len(sel) > o.Tail {
		sel = sel[len(sel)-o.Tail:]
	}
	emit := func(en logEntry) {
		w := stdout
		if en.Stream == "stderr" {
			w = stderr
		}
		if o.Timestamps {
			fmt.Fprintf(w, "%s %s", en.Time.Format(time.RFC3339Nano), en.Log)
		} else {
			io.WriteString(w, en.Log)
		}
	}
	for _, en := range sel {
		emit(en)
	}
	if !o.Follow {
		return nil
	}
	// Follow: read what is appended to the current file until the
	// container stops, reopening it after a rotation.
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer func() { f.Close() }()
	st, _ := f.Stat()
	offset := st.Size()
	f.Seek(offset, io.SeekStart)
	br := bufio.NewReader(f)
	var partial []byte
	final := false
	for {
		line, err := br.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			var en logEntry
			if json.Unmarshal(bytes.TrimSpace(partial), &en) == nil {
				emit(en)
			}
			partial = partial[:0]
			continue
		}
		cur, cerr := e.loadID(c.ID)
		if cerr != nil {
			return nil
		}
		e.refresh(cur)
		if nst, serr := os.Stat(p); serr == nil && !os.SameFile(nst, st) {
			f.Close()
			if f, err = os.Open(p); err != nil {
				return nil
			}
			st, _ = f.Stat()
			br.Reset(f)
			continue
		}
		if !cur.State.Running {
			// One more pass for what was written just before it stopped.
			if final {
				return nil
			}
			final = true
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readLogFile(p string) []logEntry {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var en logEntry
		if json.Unmarshal(sc.Bytes(), &en) == nil {
			out = append(out, en)
		}
	}
	return out
}
