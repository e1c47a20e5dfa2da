package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
)

// The embedded init is written once into the cache and started from there;
// a cached file that is not root's, the wrong size or in a directory others
// may write is never used.
func TestInitCache(t *testing.T) {
	fixture.RequireRoot(t)
	old := initCache
	t.Cleanup(func() { initCache = old })
	initCache = filepath.Join(t.TempDir(), "berth")
	data := bytes.Repeat([]byte("init"), 1000)
	const sum = "0123456789abcdef0123"
	want := filepath.Join(initCache, "init-0123456789abcdef")

	if got := initExeFrom(nil, ""); got != "/proc/self/exe" {
		t.Fatalf("without an embedded init: %s", got)
	}
	got := initExeFrom(data, sum)
	b, err := os.ReadFile(want)
	if got != want || err != nil || !bytes.Equal(b, data) {
		t.Fatalf("first use: %s, %v", got, err)
	}
	if st, _ := os.Stat(want); st.Mode().Perm() != 0o555 {
		t.Errorf("cached init has mode %v", st.Mode())
	}
	// Used as it is, not written again.
	past := time.Now().Add(-time.Minute)
	os.Chtimes(want, past, past)
	if got := initExeFrom(data, sum); got != want {
		t.Fatalf("second use: %s", got)
	}
	if st, _ := os.Stat(want); !st.ModTime().Equal(past) {
		t.Errorf("the cached init was written again")
	}
	// Someone else's file, or a short one, is replaced.
	for name, spoil := range map[string]func() error{
		"not root's": func() error { return os.Lchown(want, 1000, 1000) },
		"truncated":  func() error { return os.Truncate(want, 10) },
	} {
		if err := spoil(); err != nil {
			t.Fatal(err)
		}
		if got := initExeFrom(data, sum); got != want {
			t.Fatalf("%s: %s", name, got)
		}
		st, _ := os.Stat(want)
		b, _ := os.ReadFile(want)
		if !rootOnly(st) || !bytes.Equal(b, data) {
			t.Errorf("%s: the cached init was not replaced", name)
		}
	}
	// A directory others may write is not trusted at all.
	os.Chmod(initCache, 0o777)
	if got := initExeFrom(data, sum); got != "/proc/self/exe" {
		t.Errorf("with a world-writable cache: %s", got)
	}
}
