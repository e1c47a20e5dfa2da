package layer

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/klauspost/pgzip"
)

// benchLayer is the layer the benchmarks unpack: $BERTH_LAYER_TAR, or the
// debootstrapped Debian rootfs tarball of the test fixtures.
func benchLayer(b *testing.B) string {
	if p := os.Getenv("BERTH_LAYER_TAR"); p != "" {
		return p
	}
	p, err := fixture.DebianTar()
	if err != nil {
		b.Skipf("no Debian rootfs tarball: %v", err)
	}
	return p
}

// benchApply applies path b.N times, each into a fresh dir (or once into
// $BERTH_LAYER_DST, which bench/layer-unpack.sh uses to time single runs
// against tar -x).
func benchApply(b *testing.B, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	o := Options{Overlay: true, NoDevices: !isRoot()}
	if dst := os.Getenv("BERTH_LAYER_DST"); dst != "" {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := Apply(dst, f, o); err != nil {
			b.Fatal(err)
		}
		return
	}
	base := b.TempDir()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(base, "root")
		os.RemoveAll(dir)
		os.Mkdir(dir, 0o755)
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, err = Apply(dir, f, o)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyDebian(b *testing.B) { benchApply(b, benchLayer(b)) }

func BenchmarkApplyDebianGzip(b *testing.B) {
	src := benchLayer(b)
	gz := os.Getenv("BERTH_LAYER_TGZ")
	if gz == "" {
		gz = filepath.Join(b.TempDir(), "layer.tar.gz")
		if err := gzipFile(src, gz); err != nil {
			b.Fatal(err)
		}
	}
	benchApply(b, gz)
}

func BenchmarkTarDebian(b *testing.B) {
	src := benchLayer(b)
	dir := filepath.Join(b.TempDir(), "root")
	os.Mkdir(dir, 0o755)
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	_, err = Apply(dir, f, Options{NoDevices: !isRoot()})
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(src)
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var n countWriter
		if err := Tar(dir, &n, DiffOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw := pgzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}
