package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

type recorder struct {
	mu     sync.Mutex
	starts map[string]int64
	last   map[string]int64
	done   map[string]bool
}

func (r *recorder) Start(id string, total int64) { r.mu.Lock(); r.starts[id] = total; r.mu.Unlock() }
func (r *recorder) Update(id string, n int64)    { r.mu.Lock(); r.last[id] = n; r.mu.Unlock() }
func (r *recorder) Done(id string, err error)    { r.mu.Lock(); r.done[id] = err == nil; r.mu.Unlock() }

func TestImageWrapperReportsEachLayer(t *testing.T) {
	img, err := random.Image(10000, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{starts: map[string]int64{}, last: map[string]int64{}, done: map[string]bool{}}
	ls, _ := Image(img, r).Layers()
	for _, l := range ls {
		rc, _ := l.Compressed()
		io.Copy(io.Discard, rc)
		rc.Close()
	}
	if len(r.starts) != 3 || len(r.done) != 3 {
		t.Fatalf("starts %v done %v, want 3 each", r.starts, r.done)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		size, _ := l.Size()
		id := d.Hex[:12]
		if r.starts[id] != size || r.last[id] != size || !r.done[id] {
			t.Fatalf("layer %s: total %d, last %d, done %v; size %d", id, r.starts[id], r.last[id], r.done[id], size)
		}
	}
}

func TestPlainOutputOneLinePerStep(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	p := New(f, false)
	if p.tty {
		t.Fatal("a regular file taken for a terminal")
	}
	p.Start("abc", 2000)
	p.Update("abc", 1000)
	p.Update("abc", 2000)
	p.Done("abc", nil)
	p.Line("step %d", 2)
	f.Close()
	out, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || lines[0] != "Copying blob abc" || !strings.HasPrefix(lines[1], "Copied blob abc (2.0 kB, ") || lines[2] != "step 2" {
		t.Fatalf("plain output:\n%s", out)
	}
	if bytes.Contains(out, []byte("\x1b[")) {
		t.Fatal("escape sequences in plain output")
	}
	if New(f, true) != nil {
		t.Fatal("quiet printer is not nil")
	}
}
