// Package docker tests berth's images against a real Docker daemon
// (Debian's docker.io, started privately by the test): docker loads and
// runs what berth saves and builds, and berth loads and runs what docker
// saves, with the image IDs unchanged both ways.
package docker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
)

var (
	dockerd  *fixture.Dockerd
	berthCmd string
	scratch  string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv("BERTH_BIN") == "" {
		os.Exit(m.Run()) // each test says why it skips
	}
	berthCmd = os.Getenv("BERTH_BIN")
	var err error
	if scratch, err = os.MkdirTemp("/var/tmp", "berth-docker-test-"); err != nil {
		panic(err)
	}
	if _, lerr := exec.LookPath("dockerd"); lerr == nil {
		if dockerd, err = fixture.StartDockerd(filepath.Join(scratch, "dockerd"), "vfs"); err != nil {
			os.Stderr.WriteString("starting dockerd: " + err.Error() + "\n")
			os.RemoveAll(scratch)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dockerd != nil {
		dockerd.Stop()
	}
	os.RemoveAll(scratch)
	os.Exit(code)
}

func requireDocker(t *testing.T) {
	t.Helper()
	fixture.RequireRoot(t)
	if berthCmd == "" {
		t.Skip("BERTH_BIN not set: run through `make test` (scripts/test.sh builds bin/berth)")
	}
	fixture.RequireBinary(t, "dockerd", "docker.io")
}

// berth runs the berth CLI on root and returns its stdout.
func berth(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command(berthCmd, append([]string{"--root", root}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("berth %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := dockerd.Docker(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// busyboxRoot is a fresh berth store holding the busybox image as bb.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := fixture.BusyboxTar(tarPath); err != nil {
		t.Fatal(err)
	}
	berth(t, root, "import", "-q", "--change", `CMD ["/bin/sh"]`, tarPath, "bb")
	t.Cleanup(func() {
		if out, err := exec.Command(berthCmd, "--root", root, "ps", "-aq").Output(); err == nil {
			for _, id := range strings.Fields(string(out)) {
				exec.Command(berthCmd, "--root", root, "rm", "-f", id).Run()
			}
		}
	})
	return root
}

func imageID(t *testing.T, root, ref string) string {
	t.Helper()
	return strings.TrimSpace(berth(t, root, "image", "inspect", "--format", "{{.Id}}", ref))
}

// A berth-built image with three layers (a whiteout among them) goes
// through `berth save` and `docker load`, keeps its ID, and runs under
// docker with the files each layer made or deleted.
func TestDockerLoadsBerthArchive(t *testing.T) {
	requireDocker(t)
	root := busyboxRoot(t)
	ctx := t.TempDir()
	df := "FROM bb\nRUN rm /bin/vi\nRUN echo made-by-berth > /greeting\nENV GREETING=hello\nCMD [\"cat\", \"/greeting\"]\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	berth(t, root, "build", "-q", "-t", "interop/berth-built:1", ctx)
	archive := filepath.Join(t.TempDir(), "img.tar")
	berth(t, root, "save", "-o", archive, "interop/berth-built:1")
	out := docker(t, "load", "-i", archive)
	if !strings.Contains(out, "interop/berth-built:1") {
		t.Fatalf("docker load did not name the image: %s", out)
	}
	want := imageID(t, root, "interop/berth-built:1")
	if got := strings.TrimSpace(docker(t, "image", "inspect", "--format", "{{.Id}}", "interop/berth-built:1")); got != want {
		t.Errorf("docker's image ID %s, berth's %s", got, want)
	}
	if got := strings.TrimSpace(docker(t, "run", "--rm", "--network", "none", "interop/berth-built:1")); got != "made-by-berth" {
		t.Errorf("docker run printed %q, want made-by-berth", got)
	}
	probe := "test -e /bin/vi && echo vi-present || echo vi-gone; echo $GREETING"
	if got := docker(t, "run", "--rm", "--network", "none", "interop/berth-built:1", "sh", "-c", probe); got != "vi-gone\nhello\n" {
		t.Errorf("docker run of the layers printed %q", got)
	}
	docker(t, "rmi", "interop/berth-built:1")
}

// What `docker save` writes (uncompressed layers, docker's manifest.json)
// loads into berth with the same image ID and runs.
func TestBerthLoadsDockerSave(t *testing.T) {
	requireDocker(t)
	src := busyboxRoot(t)
	archive := filepath.Join(t.TempDir(), "bb.tar")
	berth(t, src, "save", "-o", archive, "bb")
	docker(t, "load", "-i", archive)
	docker(t, "tag", "bb:latest", "interop/from-docker:2")
	ctx := t.TempDir()
	// A layer of docker's own on top, so the archive is not just berth's
	// bytes coming back.
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM interop/from-docker:2\nRUN echo made-by-docker > /greeting\n"), 0o644)
	docker(t, "build", "-q", "--network", "none", "-t", "interop/from-docker:3", ctx)
	saved := filepath.Join(t.TempDir(), "docker.tar")
	docker(t, "save", "-o", saved, "interop/from-docker:3")
	want := strings.TrimSpace(docker(t, "image", "inspect", "--format", "{{.Id}}", "interop/from-docker:3"))
	docker(t, "rmi", "interop/from-docker:3", "interop/from-docker:2", "bb:latest")

	root := t.TempDir()
	berth(t, root, "load", "-q", "-i", saved)
	if got := imageID(t, root, "interop/from-docker:3"); got != want {
		t.Errorf("berth's image ID %s, docker's %s", got, want)
	}
	if got := berth(t, root, "run", "--rm", "--network", "none", "interop/from-docker:3", "cat", "/greeting"); got != "made-by-docker\n" {
		t.Errorf("berth run printed %q", got)
	}
	if out := berth(t, root, "system", "check"); strings.Contains(strings.ToLower(out), "broken") {
		t.Errorf("system check after load: %s", out)
	}
}
