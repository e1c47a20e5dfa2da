package layer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply feeds arbitrary bytes to Apply: it must not panic, and must
// never touch anything beside its target (a sentinel dir stands there).
// The seeds in testdata/fuzz/FuzzApply (hostile layers, gzip and zstd
// streams) run with every `go test`.
func FuzzApply(f *testing.F) {
	f.Add(mkTar(f, dirE("a"), file("a/b", "x"), symlink("a/l", "../../sentinel"), hardlink("h", "a/b")))
	f.Add(mkTar(f, symlink("s", "../sentinel"), file("s/passwd", "pwned")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzOne(t, data, len(data)) })
}

// fuzzOne applies data next to a sentinel and fails if anything beside
// the target changed; seed picks the options.
func fuzzOne(t *testing.T, data []byte, seed int) {
	base := t.TempDir()
	root, sentinel := filepath.Join(base, "root"), filepath.Join(base, "sentinel")
	os.Mkdir(root, 0o755)
	os.Mkdir(sentinel, 0o755)
	os.WriteFile(filepath.Join(sentinel, "passwd"), []byte("keep"), 0o644)
	t.Cleanup(func() { makeRemovable(root) })
	before := manifest(t, base, "root")
	// Odd seeds try overlay whiteouts too (they need mknod: root), and
	// every third one follows symlinks in the root.
	o := Options{MaxBytes: 1 << 20, NoDevices: true, Overlay: isRoot() && seed%2 == 1, InRootSymlinks: seed%3 == 0}
	n, err := Apply(root, bytes.NewReader(data), o)
	if err == nil && n > o.MaxBytes {
		t.Fatalf("read %d bytes past the %d limit without an error", n, o.MaxBytes)
	}
	if after := manifest(t, base, "root"); after != before {
		t.Fatalf("Apply wrote outside its target (err %v):\nbefore:\n%s\nafter:\n%s", err, before, after)
	}
}
