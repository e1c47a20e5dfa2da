package build

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/berthproject/berth/internal/fixture"
)

// buildahStore is a private buildah/podman store in a temp dir (vfs, so
// nothing is mounted), holding the same busybox image as berth's store.
type buildahStore struct {
	t           *testing.T
	root, run   string
	transport   string
	buildahPath string
}

func newBuildahStore(t *testing.T, e *env) *buildahStore {
	t.Helper()
	fixture.RequireRoot(t)
	bp := fixture.RequireBinary(t, "buildah", "buildah")
	fixture.RequireBinary(t, "skopeo", "skopeo")
	d := t.TempDir()
	s := &buildahStore{t: t, root: filepath.Join(d, "root"), run: filepath.Join(d, "runroot"), buildahPath: bp}
	s.transport = fmt.Sprintf("containers-storage:[vfs@%s+%s]", s.root, s.run)
	t.Cleanup(func() {
		// buildah leaves its overlay-free vfs store; nothing is mounted, but
		// be sure before TempDir removal.
		exec.Command(bp, "--root", s.root, "--runroot", s.run, "--storage-driver", "vfs", "rm", "--all").Run()
	})
	// Same base image in both: copy berth's busybox over with skopeo.
	e.importBusybox("busybox")
	s.skopeo("copy", "oci:"+filepath.Join(e.root, "oci")+":docker.io/library/busybox:latest", s.transport+"docker.io/library/busybox:latest")
	return s
}

func (s *buildahStore) skopeo(args ...string) {
	s.t.Helper()
	if out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
}

// bud builds dir with buildah and returns the image's OCI layout path, or
// an error when buildah cannot build it (e.g. syntax it does not know).
func (s *buildahStore) bud(dir, tag string) (string, error) {
	cmd := exec.Command(s.buildahPath, "--root", s.root, "--runroot", s.run, "--storage-driver", "vfs",
		"bud", "--pull=never", "--network=host", "--isolation=oci", "--runtime", "runc", "-t", tag, dir)
	cmd.Env = append(os.Environ(), "BUILDAH_LAYERS=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, lastLines(string(out), 6))
	}
	oci := filepath.Join(s.t.TempDir(), "oci")
	s.skopeo("copy", s.transport+tag, "oci:"+oci+":x")
	return oci, nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// Compatibility: for each corpus Dockerfile buildah builds offline here,
// berth's rootfs (paths, types, modes, owners, sizes, content) and config
// (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Labels) match.
func TestCompatWithBuildah(t *testing.T) {
	e := newEnv(t)
	bs := newBuildahStore(t, e)
	corpus := []struct {
		name  string
		setup func(dir string)
	}{
		{"ten-steps", nil},
		{"dockerignore", nil},
		{"seed002-rootfs", func(dir string) {
			if err := fixture.BusyboxTar(filepath.Join(dir, "rootfs.tar")); err != nil {
				t.Fatal(err)
			}
		}},
		{"static-prebuilt", func(dir string) { hostStatic(t, dir, "hello-amd64") }},
		{"every-instruction", nil},
		{"copy-semantics", nil},
		{"compat-instructions", nil},
	}
	compared := 0
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			var dir string
			if c.name == "copy-semantics" || c.name == "compat-instructions" {
				dir = filepath.Join(t.TempDir(), c.name)
				if out, err := exec.Command("cp", "-a", filepath.Join("testdata", c.name), dir).CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			} else {
				dir = example(t, c.name)
			}
			if c.setup != nil {
				c.setup(dir)
			}
			oci, err := bs.bud(dir, "localhost/compat-"+c.name)
			if err != nil {
				t.Skipf("buildah cannot build %s here: %v", c.name, err)
			}
			lp, err := layout.FromPath(oci)
			if err != nil {
				t.Fatal(err)
			}
			idx, _ := lp.ImageIndex()
			im, _ := idx.IndexManifest()
			theirs, err := lp.Image(im.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			r, out := e.mustBuild(dir, nil)
			ours := onlyImage(t, r)
			compared++

			a, b := tree(t, rootfsOf(t, ours)), tree(t, rootfsOf(t, theirs))
			// buildah's RUN leaves the mount points it made (empty
			// /etc/hosts, /etc/hostname, /etc/resolv.conf, /run) in the
			// image; BuildKit and berth do not. Nothing else is excused.
			for _, p := range []string{"etc/hosts", "etc/hostname", "etc/resolv.conf", "run"} {
				if f, ok := b[p]; ok && f.Size == 0 {
					if _, mine := a[p]; !mine {
						delete(b, p)
					}
				}
			}
			var diffs []string
			for _, k := range unionKeys(a, b) {
				x, okx := a[k]
				y, oky := b[k]
				switch {
				case !okx:
					diffs = append(diffs, "only buildah: /"+k+" "+y.String())
				case !oky:
					diffs = append(diffs, "only berth:   /"+k+" "+x.String())
				case x != y:
					diffs = append(diffs, fmt.Sprintf("differs:      /%s berth %v, buildah %v", k, x, y))
				}
			}
			if len(diffs) > 0 {
				t.Errorf("rootfs differs from buildah's (%d):\n%s\n%s", len(diffs), strings.Join(diffs, "\n"), out)
			}
			oc, tc := configOf(t, ours).Config, configOf(t, theirs).Config
			delete(tc.Labels, "io.buildah.version")
			if len(tc.Labels) == 0 {
				tc.Labels = nil
			}
			if len(oc.Labels) == 0 {
				oc.Labels = nil
			}
			for _, f := range []struct {
				what       string
				mine, them any
			}{
				{"Env", oc.Env, tc.Env}, {"Cmd", oc.Cmd, tc.Cmd}, {"Entrypoint", oc.Entrypoint, tc.Entrypoint},
				{"WorkingDir", oc.WorkingDir, tc.WorkingDir}, {"User", oc.User, tc.User},
				{"ExposedPorts", oc.ExposedPorts, tc.ExposedPorts}, {"Labels", oc.Labels, tc.Labels},
			} {
				if fmtv(f.mine) != fmtv(f.them) {
					t.Errorf("config %s: berth %v, buildah %v", f.what, fmtv(f.mine), fmtv(f.them))
				}
			}
		})
	}
}

func unionKeys(a, b map[string]fileInfo) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
