package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cache is the build cache under <storeRoot>/build-cache:
//
//	keys/<key>          JSON entry: the step's layer (if any) and when it was made
//	blobs/sha256/<hex>  layer tars made by builds
//	mounts/<id>/        RUN --mount=type=cache directories, kept across builds
//	tmp/                layers and RUN roots being made
//
// A key is the hash of the parent's key, the expanded instruction and the
// digests of the files the step reads, so an entry never goes stale: it
// is either found or not.
type cache struct {
	dir string

	sumsMu    sync.Mutex
	sums      map[string]fileSum // host path -> content digest, see fileSum
	sumsDirty bool
}

// fileSum remembers a file's content digest with what would change if
// the file did (inode, size, mtime and ctime in ns).
type fileSum struct {
	Dev, Ino           uint64
	Size, Mtime, Ctime int64
	Sum                string
}

type cacheEntry struct {
	Layer   *v1.Hash  `json:"layer,omitempty"`
	Created time.Time `json:"created"`
}

func openCache(storeRoot string) (*cache, error) {
	dir := filepath.Join(storeRoot, "build-cache")
	for _, d := range []string{"keys", "blobs/sha256", "mounts", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("build cache: %w", err)
		}
	}
	return &cache{dir: dir}, nil
}

// stepKey chains a step onto its parent's key.
func stepKey(parent string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(parent))
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *cache) get(key string) (*cacheEntry, *fileLayer, bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "keys", key))
	if err != nil {
		return nil, nil, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil {
		return nil, nil, false
	}
	if e.Layer == nil {
		return &e, nil, true
	}
	l, err := c.layerFromCache(*e.Layer)
	if err != nil {
		return nil, nil, false // blob pruned or lost: rebuild the step
	}
	return &e, l, true
}

func (c *cache) put(key string, e *cacheEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "key-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	return os.Rename(tmp.Name(), filepath.Join(c.dir, "keys", key))
}

// mountDir is the persistent directory of a RUN cache mount.
func (c *cache) mountDir(id string) (string, error) {
	h := sha256.Sum256([]byte(id))
	d := filepath.Join(c.dir, "mounts", hex.EncodeToString(h[:16]))
	return d, os.MkdirAll(d, 0o755)
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries int
	Bytes   int64
}

// Prune empties the build cache of storeRoot: every cache key, layer blob
// made by builds and RUN cache mount. Images in the store are not touched
// (the store holds its own copies of their blobs).
func Prune(storeRoot string) (PruneReport, error) {
	var r PruneReport
	dir := filepath.Join(storeRoot, "build-cache")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	lock, err := lockCache(dir)
	if err != nil {
		return r, err
	}
	defer lock.Close()
	os.Remove(filepath.Join(dir, "filesums.json"))
	for _, sub := range []string{"keys", "blobs", "mounts", "downloads", "tmp"} {
		d := filepath.Join(dir, sub)
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					r.Bytes += fi.Size()
				}
				if sub == "keys" {
					r.Entries++
				}
			}
			return nil
		})
		if err := os.RemoveAll(d); err != nil {
			return r, fmt.Errorf("prune %s: %w", d, err)
		}
	}
	return r, nil
}

// lockCache takes the cache's exclusive lock (prune) so that it never
// removes blobs under a running build, which holds it shared.
func lockCache(dir string) (*os.File, error) {
	return lockFile(dir, syscall.LOCK_EX)
}

func lockFile(dir string, how int) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func shortID(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// workDir makes this build's scratch directory under tmp/, locked while
// the build runs; release unmounts what a failure left and removes it.
func (c *cache) workDir() (string, func(), error) {
	dir, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "build-")
	if err != nil {
		return "", nil, err
	}
	lock, err := lockFile(dir, syscall.LOCK_EX)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		unmountUnder(dir)
		os.RemoveAll(dir)
		lock.Close()
	}, nil
}

// cleanStale removes the scratch dirs of builds that died (kill -9, a
// crash): their lock is free. Mounts left inside are detached first.
func (c *cache) cleanStale() {
	ents, _ := os.ReadDir(filepath.Join(c.dir, "tmp"))
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "build-") {
			continue
		}
		dir := filepath.Join(c.dir, "tmp", e.Name())
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			unmountUnder(dir)
			os.RemoveAll(dir)
		}
		f.Close()
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	for _, m := range mps {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// fileSum is the sha256 of a context file's content, read again only when
// its inode, size, mtime or ctime changed since a build last hashed it.
func (c *cache) fileSum(p string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return "", err
	}
	want := fileSum{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	c.sumsMu.Lock()
	if c.sums == nil {
		c.sums = map[string]fileSum{}
		if b, err := os.ReadFile(filepath.Join(c.dir, "filesums.json")); err == nil {
			json.Unmarshal(b, &c.sums)
		}
	}
	got, ok := c.sums[p]
	c.sumsMu.Unlock()
	// A file changed within the same clock tick as its last hash could
	// look unchanged: trust the memo only for files older than a second.
	if ok && got.Sum != "" && got.Dev == want.Dev && got.Ino == want.Ino && got.Size == want.Size &&
		got.Mtime == want.Mtime && got.Ctime == want.Ctime && time.Since(time.Unix(0, want.Ctime)) > time.Second {
		return got.Sum, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	want.Sum = hex.EncodeToString(h.Sum(nil))
	c.sumsMu.Lock()
	c.sums[p] = want
	c.sumsDirty = true
	c.sumsMu.Unlock()
	return want.Sum, nil
}

// saveSums writes the remembered digests back (best effort: it is only
// a shortcut, a lost update means hashing again).
func (c *cache) saveSums() {
	c.sumsMu.Lock()
	defer c.sumsMu.Unlock()
	if !c.sumsDirty {
		return
	}
	b, err := json.Marshal(c.sums)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "sums-")
	if err != nil {
		return
	}
	_, err = tmp.Write(b)
	tmp.Close()
	if err != nil {
		os.Remove(tmp.Name())
		return
	}
	os.Rename(tmp.Name(), filepath.Join(c.dir, "filesums.json"))
	c.sumsDirty = false
}
