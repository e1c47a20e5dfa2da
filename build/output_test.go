package build

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthproject/berth/internal/fixture"
)

// With SOURCE_DATE_EPOCH, two builds of the same context in different
// stores (so nothing is shared or cached) give the same digest.
func TestReproducibleDigest(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	files := map[string]string{
		"Dockerfile": "FROM scratch\nCOPY . /app/\nCOPY <<EOF /etc/inline\nx\nEOF\nWORKDIR /app/work\nLABEL a=b\n",
		"one":        "1", "dir/two": "2",
	}
	var digests []string
	for i := 0; i < 2; i++ {
		e := newEnv(t)
		dir := writeContext(t, files)
		// Different mtimes on disk must not matter.
		os.Chtimes(filepath.Join(dir, "one"), time.Now().Add(time.Duration(i)*time.Hour), time.Now().Add(time.Duration(i)*time.Hour))
		r, _ := e.mustBuild(dir, func(o *Options) { o.Timestamp = &ts })
		d, err := onlyImage(t, r).Digest()
		if err != nil {
			t.Fatal(err)
		}
		cf := configOf(t, onlyImage(t, r))
		if !cf.Created.Time.Equal(ts) {
			t.Errorf("created %v, want %v", cf.Created, ts)
		}
		digests = append(digests, d.String())
		time.Sleep(1100 * time.Millisecond) // a build "now" a second later
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestOutputs(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n", "f": "content"})
	out := t.TempDir()

	// type=local: the rootfs as files.
	e.mustBuild(dir, func(o *Options) { o.Output = "type=local,dest=" + filepath.Join(out, "local") })
	if got := readFile(t, filepath.Join(out, "local", "f")); got != "content" {
		t.Errorf("local output: %q", got)
	}

	// type=docker: loadable docker archive with the tag.
	p := filepath.Join(out, "img.tar")
	e.mustBuild(dir, func(o *Options) { o.Output = "type=docker,dest=" + p; o.Tags = []string{"example.com/x:1"} })
	img, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		t.Fatalf("docker archive: %v", err)
	}
	if cf := configOf(t, img); strings.Join(cf.Config.Cmd, " ") != "/f" {
		t.Errorf("docker archive config %v", cf.Config.Cmd)
	}
	man := tarEntry(t, p, "manifest.json")
	if !strings.Contains(man, "example.com/x:1") {
		t.Errorf("manifest.json lacks the tag: %s", man)
	}

	// type=oci: an OCI layout tarball with index.json naming the tag.
	p = filepath.Join(out, "oci.tar")
	e.mustBuild(dir, func(o *Options) { o.Output = "type=oci,dest=" + p; o.Tags = []string{"x:1"} })
	var idx struct {
		Manifests []struct {
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal([]byte(tarEntry(t, p, "index.json")), &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "x:1" {
		t.Errorf("oci index.json: %+v %v", idx, err)
	}
	if tarEntry(t, p, "oci-layout") == "" {
		t.Errorf("no oci-layout")
	}
	// Nothing was stored in berth's store by --output builds.
	if _, err := e.store.Image("x:1", ""); err == nil {
		t.Errorf("--output build also stored the image")
	}
	if _, _, err := e.build(dir, func(o *Options) { o.Output = "type=bogus,dest=x" }); err == nil {
		t.Errorf("bad --output accepted")
	}
}

func tarEntry(t *testing.T, p, name string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return ""
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// RUN layers are reproducible too: mtimes clamped, entries normalized.
func TestReproducibleWithRun(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	ts := time.Unix(1700000000, 0)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo x > /f && mkdir -p /d/e && touch /d/e/g && rm /bin/vi\n"})
	var ds []string
	for i := 0; i < 2; i++ {
		r, out := e.mustBuild(dir, func(o *Options) { o.Timestamp = &ts; o.NoCache = true })
		if c, _ := cachedSteps(out); len(c) != 0 {
			t.Fatalf("--no-cache reused steps")
		}
		d, _ := onlyImage(t, r).Digest()
		ds = append(ds, d.String())
		time.Sleep(1100 * time.Millisecond)
	}
	if ds[0] != ds[1] {
		t.Errorf("RUN build not reproducible: %v", ds)
	}
}

// podman loads both archive outputs.
func TestOutputsLoadInPodman(t *testing.T) {
	fixture.RequireRoot(t)
	podman := fixture.RequireBinary(t, "podman", "podman")
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "x"})
	d := t.TempDir()
	store := []string{"--root", filepath.Join(d, "root"), "--runroot", filepath.Join(d, "run"), "--tmpdir", filepath.Join(d, "tmp"), "--storage-driver", "vfs"}
	t.Cleanup(func() { exec.Command(podman, append(store, "rmi", "-af")...).Run() })
	for _, typ := range []string{"docker", "oci"} {
		p := filepath.Join(d, typ+".tar")
		e.mustBuild(dir, func(o *Options) { o.Output = "type=" + typ + ",dest=" + p; o.Tags = []string{"localhost/out:" + typ} })
		out, err := exec.Command(podman, append(store, "load", "-i", p)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Loaded image") {
			t.Errorf("podman load %s: %v\n%s", typ, err, out)
		}
	}
}
