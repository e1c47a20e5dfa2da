// Command store-bench times berth's image store against its peers on a
// debootstrapped Debian bookworm rootfs: import (berth vs podman), save
// and load (berth vs podman, and vs skopeo for oci-archive), and unpacking
// the layer into a snapshot (berth vs tar -x). Runs are interleaved so
// machine noise hits every tool alike; it prints medians and ratios.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
)

var (
	runs  = flag.Int("n", 5, "runs per tool")
	berth = flag.String("berth", "bin/berth", "berth binary")
	work  = flag.String("dir", "", "scratch directory (default: a temp dir under /var/tmp)")
)

type tool struct {
	name  string
	setup func() // untimed, before each run
	run   func() error
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "store-bench:", err)
		os.Exit(1)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// compare runs the tools interleaved and prints one table row each, with
// the ratio of the first (berth) to every other.
func compare(title string, tools []tool) {
	times := make([][]time.Duration, len(tools))
	for r := 0; r < *runs; r++ {
		for i, t := range tools {
			if t.setup != nil {
				t.setup()
			}
			sh("sync")
			start := time.Now()
			must(t.run())
			times[i] = append(times[i], time.Since(start))
		}
	}
	fmt.Printf("\n%s (median of %d, interleaved)\n", title, *runs)
	base := median(times[0])
	for i, t := range tools {
		m := median(times[i])
		ratio := ""
		if i > 0 {
			ratio = fmt.Sprintf("  berth/this = %.2f", float64(base)/float64(m))
		}
		fmt.Printf("  %-34s %8.0f ms%s\n", t.name, float64(m.Microseconds())/1000, ratio)
	}
}

func main() {
	flag.Parse()
	tarPath, err := fixture.DebianTar()
	must(err)
	b, err := filepath.Abs(*berth)
	must(err)
	dir := *work
	if dir == "" {
		dir, err = os.MkdirTemp("/var/tmp", "bsb")
		must(err)
		defer os.RemoveAll(dir)
	}
	fi, _ := os.Stat(tarPath)
	fmt.Printf("Debian bookworm minbase rootfs: %s (%.0f MB)\n", tarPath, float64(fi.Size())/1e6)
	podman := func(root string, args ...string) error {
		return sh("podman", append([]string{"--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs", "--events-backend", "none"}, args...)...)
	}
	broot, proot := filepath.Join(dir, "b"), filepath.Join(dir, "p") // podman: runroot under 50 chars
	fresh := func() { os.RemoveAll(broot); podman(proot, "system", "reset", "-f"); os.RemoveAll(proot) }

	compare("import rootfs tarball -> image", []tool{
		{"berth import", fresh, func() error { return sh(b, "--root", broot, "import", "-q", tarPath, "deb:1") }},
		{"podman import", fresh, func() error { return podman(proot, "import", "-q", tarPath, "deb:1") }},
	})

	// One image in each store for save; archives for load.
	fresh()
	must(sh(b, "--root", broot, "import", "-q", tarPath, "deb:1"))
	must(podman(proot, "import", "-q", tarPath, "deb:1"))
	out := filepath.Join(dir, "out.tar")
	rm := func() { os.Remove(out) }
	compare("save -> docker-archive", []tool{
		{"berth save", rm, func() error { return sh(b, "--root", broot, "save", "-q", "-o", out, "deb:1") }},
		{"podman save", rm, func() error { return podman(proot, "save", "-q", "-o", out, "localhost/deb:1") }},
	})
	compare("save -> oci-archive", []tool{
		{"berth save --format oci-archive", rm, func() error {
			return sh(b, "--root", broot, "save", "-q", "--format", "oci-archive", "-o", out, "deb:1")
		}},
		{"podman save --format oci-archive", rm, func() error {
			return podman(proot, "save", "-q", "--format", "oci-archive", "-o", out, "localhost/deb:1")
		}},
		{"skopeo copy oci: -> oci-archive:", rm, func() error {
			return sh("skopeo", "--insecure-policy", "copy", "-q", "oci:"+broot+"/oci:docker.io/library/deb:1", "oci-archive:"+out)
		}},
	})
	dockerTar, ociTar := filepath.Join(dir, "deb-docker.tar"), filepath.Join(dir, "deb-oci.tar")
	must(podman(proot, "save", "-q", "-o", dockerTar, "localhost/deb:1"))
	must(sh(b, "--root", broot, "save", "-q", "--format", "oci-archive", "-o", ociTar, "deb:1"))
	lroot, lproot := filepath.Join(dir, "bl"), filepath.Join(dir, "pl")
	freshLoad := func() { os.RemoveAll(lroot); podman(lproot, "system", "reset", "-f"); os.RemoveAll(lproot) }
	compare("load podman's docker-archive", []tool{
		{"berth load", freshLoad, func() error { return sh(b, "--root", lroot, "load", "-q", "-i", dockerTar) }},
		{"podman load", freshLoad, func() error { return podman(lproot, "load", "-q", "-i", dockerTar) }},
		{"skopeo copy docker-archive: -> oci:", freshLoad, func() error {
			return sh("skopeo", "--insecure-policy", "copy", "-q", "docker-archive:"+dockerTar, "oci:"+lroot+":deb")
		}},
	})
	compare("load berth's oci-archive (gzip layer)", []tool{
		{"berth load", freshLoad, func() error { return sh(b, "--root", lroot, "load", "-q", "-i", ociTar) }},
		{"podman load", freshLoad, func() error { return podman(lproot, "load", "-q", "-i", ociTar) }},
		{"skopeo copy oci-archive: -> oci:", freshLoad, func() error {
			return sh("skopeo", "--insecure-policy", "copy", "-q", "oci-archive:"+ociTar, "oci:"+lroot+":deb")
		}},
	})

	// Unpack: berth's snapshot of the stored gzip layer vs tar -x of the
	// same rootfs (plain) and of the same gzip blob.
	s, err := store.Open(broot)
	must(err)
	img, err := s.Image("deb:1", "")
	must(err)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blob := s.BlobPath(ld)
	dest := filepath.Join(dir, "unpack")
	clean := func() {
		os.RemoveAll(dest)
		os.MkdirAll(dest, 0o755)
		os.RemoveAll(filepath.Join(broot, "snapshots"))
		os.MkdirAll(filepath.Join(broot, "snapshots"), 0o755)
	}
	compare("unpack the layer", []tool{
		{"berth snapshot (gzip blob)", clean, func() error { _, err := s.Snapshots(img); return err }},
		{"tar -x (plain rootfs tar)", clean, func() error { return sh("tar", "--numeric-owner", "-xpf", tarPath, "-C", dest) }},
		{"tar -xz (same gzip blob)", clean, func() error { return sh("tar", "--numeric-owner", "-xzpf", blob, "-C", dest) }},
	})
	fresh()
	freshLoad()
}
