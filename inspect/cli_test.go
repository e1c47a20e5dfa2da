package inspect

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// berthCLI runs the berth binary the test run was given (scripts/test.sh
// sets BERTH_BIN) against a store of the test's own.
type berthCLI struct {
	t    *testing.T
	bin  string
	root string
}

func newCLI(t *testing.T) *berthCLI {
	fixture.RequireRoot(t)
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		t.Skip("BERTH_BIN not set: run through `make test` (scripts/test.sh builds bin/berth)")
	}
	root := t.TempDir()
	b := &berthCLI{t: t, bin: bin, root: root}
	t.Cleanup(func() {
		// Containers the test left behind, then the store's mounts.
		if out, err := exec.Command(bin, "--root", root, "ps", "-aq").Output(); err == nil {
			for _, id := range strings.Fields(string(out)) {
				exec.Command(bin, "--root", root, "rm", "-f", id).Run()
			}
		}
	})
	return b
}

// run returns berth's stdout+stderr and exit status.
func (b *berthCLI) run(args ...string) (string, int) {
	b.t.Helper()
	cmd := exec.Command(b.bin, append([]string{"--root", b.root}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("berth %v: %v", args, err)
	}
	return string(out), code
}

func (b *berthCLI) must(args ...string) string {
	b.t.Helper()
	out, code := b.run(args...)
	if code != 0 {
		b.t.Fatalf("berth %v: exit %d\n%s", args, code, out)
	}
	return out
}

func (b *berthCLI) write(img v1.Image, tag string) {
	b.t.Helper()
	s, err := store.Open(b.root)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := s.Write(img, tag); err != nil {
		b.t.Fatalf("store %s: %v", tag, err)
	}
}

// requireRun skips when `berth run` itself does not work here: that is
// the engine's failure, reported by its own tests.
func (b *berthCLI) requireRun(ref string) {
	b.t.Helper()
	if out, code := b.run("run", "--rm", ref); code != 0 {
		b.t.Skipf("berth run --rm %s fails (exit %d): %s", ref, code, strings.TrimSpace(out))
	}
}

func TestCLIDoctorCompareAndJSON(t *testing.T) {
	b := newCLI(t)
	b.write(scratchImage(t, staticGo(t), nil), "go:scratch")
	b.write(scratchImage(t, dynamicC(t), nil), "c:scratch")
	out := b.must("doctor", "go:scratch", "--compare", "c:scratch")
	t.Log("\n" + out)
	if !strings.Contains(out, "go:scratch") || !strings.Contains(out, "BROKEN") {
		t.Errorf("compare table:\n%s", out)
	}
	js := b.must("doctor", "--format", "json", "c:scratch")
	if !strings.Contains(js, `"name": "/lib64/ld-linux-x86-64.so.2"`) || !strings.Contains(js, `"name": "libc.so.6"`) {
		t.Errorf("json lacks the missing pieces:\n%s", js)
	}
	if out, code := b.run("doctor", "no-such-image"); code != 125 || strings.Count(out, "\n") != 1 {
		t.Errorf("doctor of a missing image: exit %d %q", code, out)
	}
}

func TestCLISlimProbe(t *testing.T) {
	b := newCLI(t)
	b.write(scratchImage(t, staticGo(t), nil), "go:scratch")
	b.requireRun("go:scratch")
	b.write(cOnDebian(t), "c-dynamic:debian")
	out := b.must("slim", "c-dynamic:debian", "-t", "c:slim", "--probe", "")
	t.Log("\n" + out)
	if !strings.Contains(out, "probe: same output") {
		t.Errorf("slim output:\n%s", out)
	}
	run := b.must("run", "--rm", "c:slim")
	if run != "hello from c, uid 0 is root\n" {
		t.Errorf("slim image printed %q", run)
	}
	if out, code := b.run("run", "--rm", "--entrypoint", "/bin/sh", "c:slim", "-c", "true"); code == 0 {
		t.Errorf("the slim image has a shell: %s", out)
	}
	// `ls /` runs in the original but not in the slim image (no ls): the
	// probe fails and the slim tag is not kept.
	out, code := b.run("slim", "c-dynamic:debian", "-t", "c:bad", "--probe", "ls /")
	if code != 125 || !strings.Contains(out, "probe \"ls /\": exit status 0 from c-dynamic:debian, 127 from c:bad") {
		t.Errorf("differing probe: exit %d\n%s", code, out)
	}
	if imgs := b.must("images"); strings.Contains(imgs, "bad") {
		t.Errorf("failed probe left its tag:\n%s", imgs)
	}

	b.write(nodeOnDebian(t), "node-app:debian")
	out = b.must("slim", "node-app:debian", "-t", "node:slim", "--probe", "")
	t.Log("\n" + out)
	if got := b.must("run", "--rm", "node:slim"); got != "hello from node a/b linux 42\n" {
		t.Errorf("slim node image printed %q", got)
	}

	// The hand-written distroless images of testdata, built by berth build
	// from the same originals: they run alike, and slim keeps little more.
	for _, c := range []struct {
		dockerfile, tag, slim string
		slack                 int64
	}{
		{"distroless-c.Dockerfile", "c:hand", "c:slim", 1536 << 10},
		{"distroless-node.Dockerfile", "node:hand", "node:slim", 8 << 20},
	} {
		df, _ := filepath.Abs(filepath.Join("testdata", c.dockerfile))
		b.must("build", "-q", "-t", c.tag, "-f", df, t.TempDir())
		if a, s := b.must("run", "--rm", c.tag), b.must("run", "--rm", c.slim); a != s {
			t.Errorf("%s printed %q, %s %q", c.tag, a, c.slim, s)
		}
		hand, slim := b.report(c.tag), b.report(c.slim)
		t.Logf("%s: %d files %s; %s: %d files %s", c.tag, hand.Files, MB(hand.Size), c.slim, slim.Files, MB(slim.Size))
		if slim.Size > hand.Size+c.slack || slim.Shell != "" || hand.Shell != "" {
			t.Errorf("slim %s vs hand-written %s", MB(slim.Size), MB(hand.Size))
		}
	}
}

func (b *berthCLI) report(ref string) *Report {
	b.t.Helper()
	var r Report
	if err := json.Unmarshal([]byte(b.must("doctor", "--format", "json", ref)), &r); err != nil {
		b.t.Fatalf("doctor --format json %s: %v", ref, err)
	}
	return &r
}

func TestCLIDebug(t *testing.T) {
	b := newCLI(t)
	b.write(scratchImage(t, staticGo(t), nil), "go:scratch")
	b.requireRun("go:scratch")
	data := readFile(t, sleeper(t))
	b.write(imageOf(t, v1.Config{Entrypoint: []string{"/sleeper"}}, layerOf(t, map[string]file{
		"sleeper":    {mode: 0o755, data: data},
		"etc/passwd": {data: "root:x:0:0:root:/:/nonexistent\nsleepy:x:4242:4242::/:/nonexistent\n"},
	})), "sleeper:test")
	id := strings.TrimSpace(b.must("run", "-d", "--name", "target", "sleeper:test"))
	out := b.must("debug", "target", "--", "sh", "-c", "ps; echo ---; cat /target/etc/passwd")
	t.Log("\n" + out)
	if !strings.Contains(out, "    1 root     /sleeper") {
		t.Errorf("ps in the toolbox does not show the target:\n%s", out)
	}
	if !strings.Contains(out, "sleepy:x:4242:4242") {
		t.Errorf("/target/etc/passwd not the target's:\n%s", out)
	}
	ps := b.must("ps", "-aq", "--no-trunc")
	if strings.TrimSpace(ps) != id {
		t.Errorf("containers after debug: %q, want only the target %s", ps, id)
	}
	if st := b.must("inspect", "-f", "{{.State.Status}}", "target"); strings.TrimSpace(st) != "running" {
		t.Errorf("target is %q after debug", st)
	}
	if ents, _ := os.ReadDir(filepath.Join("/run/berth/debug")); len(ents) != 0 {
		t.Errorf("toolbox staging left: %v", ents)
	}
	b.must("rm", "-f", "target")

	// An image as target: a session container beside the toolbox, both gone after.
	out = b.must("debug", "sleeper:test", "--", "ps")
	if !strings.Contains(out, "/sleeper") {
		t.Errorf("ps beside a session container:\n%s", out)
	}
	if ps := b.must("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("session container left: %q", ps)
	}
}
