package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

// berthCLI runs the berth binary (BERTH_BIN, set by scripts/test.sh) on
// a private root.
func berthCLI(t *testing.T, root string, args ...string) (string, string, int) {
	t.Helper()
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		t.Skip("BERTH_BIN not set: the CLI test runs the built binary (make test sets it)")
	}
	cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

// The CLI end to end: berth build with -t (twice), -q, --iidfile,
// --build-arg, --label, --progress, RUN through berth's runtime, a fully
// cached rebuild, a failing build's exit status and message, builder prune.
func TestCLIBuild(t *testing.T) {
	fixture.RequireRoot(t)
	root := t.TempDir()
	bb := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(bb); err != nil {
		t.Fatal(err)
	}
	if _, se, code := berthCLI(t, root, "import", bb, "busybox"); code != 0 {
		t.Fatalf("import: %s", se)
	}
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nARG MSG=default\nRUN echo \"$MSG\" > /msg\nCMD [\"cat\", \"/msg\"]\n",
	})
	iid := filepath.Join(t.TempDir(), "iid")
	so, se, code := berthCLI(t, root, "build", "-q", "-t", "cli:1", "-t", "cli:2", "--iidfile", iid,
		"--build-arg", "MSG=from-cli", "--label", "k=v", dir)
	if code != 0 {
		t.Fatalf("build exit %d: %s", code, se)
	}
	id := strings.TrimSpace(so)
	if !strings.HasPrefix(id, "sha256:") || readFile(t, iid) != id || se != "" {
		t.Errorf("-q/--iidfile: stdout %q iidfile %q stderr %q", so, readFile(t, iid), se)
	}
	// The built image runs with berth run.
	if so, se, code := berthCLI(t, root, "run", "--rm", "cli:1"); code != 0 || so != "from-cli\n" {
		t.Errorf("berth run cli:1: exit %d, %q %s", code, so, se)
	}
	so, _, _ = berthCLI(t, root, "image", "inspect", "cli:2")
	if !strings.Contains(so, `"k": "v"`) && !strings.Contains(so, `"k":"v"`) {
		t.Errorf("label not in inspect: %s", so)
	}
	_, se, code = berthCLI(t, root, "build", "--progress=plain", "-t", "cli:1", "--build-arg", "MSG=from-cli", "--label", "k=v", dir)
	if code != 0 || strings.Count(se, " CACHED") != 3 {
		t.Errorf("cached rebuild (exit %d):\n%s", code, se)
	}
	// A failing RUN: non-zero exit, one-line error with the line, no tag.
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo failing-output; false\n"), 0o644)
	_, se, code = berthCLI(t, root, "build", "--progress=quiet", "-t", "broken:1", dir)
	if code == 0 || !strings.Contains(se, "Dockerfile:2: RUN echo failing-output; false: the command exited with status 1") || !strings.Contains(se, "failing-output") {
		t.Errorf("failing build: exit %d\n%s", code, se)
	}
	if _, _, code := berthCLI(t, root, "image", "inspect", "broken:1"); code == 0 {
		t.Errorf("failed build was tagged")
	}
	so, _, code = berthCLI(t, root, "builder", "prune")
	if code != 0 || !strings.HasPrefix(so, "Deleted ") {
		t.Errorf("builder prune: %q", so)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "build-cache", "keys")); len(ents) != 0 {
		t.Errorf("prune left %d keys", len(ents))
	}
}

// A base image (FROM) or COPY --from image the store lacks is pulled
// first, as docker build does.
func TestCLIBuildPullsMissingBase(t *testing.T) {
	root := t.TempDir()
	bb := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(bb); err != nil {
		t.Fatal(err)
	}
	reg := fixture.StartRegistry(t, "", "")
	ref := reg + "/base/busybox:1"
	if _, se, code := berthCLI(t, root, "import", "-q", bb, ref); code != 0 {
		t.Fatalf("import: %s", se)
	}
	if _, se, code := berthCLI(t, root, "push", "-q", ref); code != 0 {
		t.Fatalf("push: %s", se)
	}
	if _, se, code := berthCLI(t, root, "rmi", ref); code != 0 {
		t.Fatalf("rmi: %s", se)
	}
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + ref + "\nCOPY --from=" + ref + " /bin/busybox /copied\nCOPY f /f\n", "f": "x\n",
	})
	if _, se, code := berthCLI(t, root, "build", "-q", "-t", "pulled:1", dir); code != 0 {
		t.Fatalf("build of a missing base: exit %d: %s", code, se)
	}
	if so, _, _ := berthCLI(t, root, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(so, ref) || !strings.Contains(so, "pulled:1") {
		t.Errorf("after the build: images %q", so)
	}
	if _, se, code := berthCLI(t, root, "build", "-q", "--pull", "-t", "pulled:2", dir); code != 0 {
		t.Errorf("build --pull: exit %d: %s", code, se)
	}
}
