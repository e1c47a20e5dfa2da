package build

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
)

// stepStates maps each step line's instruction to CACHED or "ran".
func cachedSteps(out string) (cached, ran []string) {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "[") || strings.Contains(l, "] FROM ") || strings.Contains(l, "] DONE ") {
			continue
		}
		i := strings.Index(l, "] ")
		if i < 0 {
			continue
		}
		ins := l[i+2:]
		if strings.HasSuffix(ins, " CACHED") {
			cached = append(cached, strings.TrimSuffix(ins, " CACHED"))
		} else {
			if j := strings.LastIndex(ins, " "); j > 0 && strings.HasSuffix(ins, "s") {
				if _, err := strconv.ParseFloat(strings.TrimSuffix(ins[j+1:], "s"), 64); err == nil {
					ins = ins[:j]
				}
			}
			ran = append(ran, ins)
		}
	}
	return
}

func TestCacheReuseAndInvalidation(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\nCMD [\"cat\", \"/copy\"]\n",
		"a.txt":      "first",
		"b.txt":      "bee",
	})
	r1, out1 := e.mustBuild(dir, nil)
	if c, _ := cachedSteps(out1); len(c) != 0 {
		t.Fatalf("first build reused %v\n%s", c, out1)
	}
	r2, out2 := e.mustBuild(dir, nil)
	c, ran := cachedSteps(out2)
	if len(ran) != 0 || len(c) != 5 {
		t.Fatalf("rebuild: cached %v, ran %v\n%s", c, ran, out2)
	}
	d1, _ := onlyImage(t, r1).Digest()
	d2, _ := onlyImage(t, r2).Digest()
	if d1 != d2 {
		t.Errorf("fully cached rebuild changed the image: %s -> %s", d1, d2)
	}
	// Change a.txt: the first step reading it and everything after rerun.
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	r3, out3 := e.mustBuild(dir, nil)
	c, ran = cachedSteps(out3)
	if strings.Join(c, "|") != "RUN echo one > /one" || len(ran) != 4 {
		t.Fatalf("after change: cached %v, ran %v\n%s", c, ran, out3)
	}
	got, code := e.runImage(onlyImage(t, r3))
	if code != 0 || got != "second" {
		t.Errorf("rebuilt image prints %q (exit %d)", got, code)
	}
	// --no-cache runs everything.
	_, out4 := e.mustBuild(dir, func(o *Options) { o.NoCache = true })
	if c, _ := cachedSteps(out4); len(c) != 0 {
		t.Errorf("--no-cache reused %v", c)
	}
	// Prune empties the cache: the next build runs every step again.
	rep, err := Prune(e.root)
	if err != nil || rep.Entries == 0 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	_, out5 := e.mustBuild(dir, nil)
	if c, _ := cachedSteps(out5); len(c) != 0 {
		t.Errorf("after prune reused %v", c)
	}
}

// Inline files and touched (same content) files keep their cache.
func TestCacheIgnoresMtimes(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY <<EOF /inline\nhello\nEOF\nCOPY f /f\n",
		"f":          "same",
	})
	e.mustBuild(dir, nil)
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "f"), later, later)
	_, out := e.mustBuild(dir, nil)
	if c, ran := cachedSteps(out); len(ran) != 0 || len(c) != 2 {
		t.Errorf("cached %v ran %v\n%s", c, ran, out)
	}
}

// A build killed mid-RUN leaves its scratch dir (and maybe a mount); the
// next build detaches and removes it, and leaves running builds' alone.
func TestStaleBuildDirsCleaned(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	c, err := openCache(e.root)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(c.dir, "tmp", "build-dead")
	os.MkdirAll(filepath.Join(stale, "run-1", "rootfs"), 0o755)
	os.WriteFile(filepath.Join(stale, "lock"), nil, 0o600)
	if err := syscall.Mount("tmpfs", filepath.Join(stale, "run-1", "rootfs"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	live, release, err := c.workDir()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nLABEL a=b\n"})
	e.mustBuild(dir, nil)
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale build dir kept")
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a running build's dir was removed")
	}
}

// The remembered file digests never hide a change: same size, mtime put
// back, the new content still rebuilds (the inode's ctime moved).
func TestFileSumMemoSeesChanges(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "aaaa"})
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "f"), old, old)
	time.Sleep(1100 * time.Millisecond) // let the memo trust this file
	e.mustBuild(dir, nil)
	if _, out := e.mustBuild(dir, nil); !strings.Contains(out, "COPY f /f CACHED") {
		t.Fatalf("not cached:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("bbbb"), 0o644)
	os.Chtimes(filepath.Join(dir, "f"), old, old)
	r, out := e.mustBuild(dir, nil)
	if strings.Contains(out, "CACHED") {
		t.Errorf("changed file served from cache:\n%s", out)
	}
	if got := readFile(t, filepath.Join(rootfsOf(t, onlyImage(t, r)), "f")); got != "bbbb" {
		t.Errorf("content %q", got)
	}
}
