package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layers are kept uncompressed: building and unpacking stay cheap (as
// containers-storage does), digest equals diffID, and compression is left
// to push/save.
const layerMediaType = types.OCIUncompressedLayer

// fileLayer is a layer blob in the build cache.
type fileLayer struct {
	path string
	hash v1.Hash
	size int64
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.hash, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.hash, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return layerMediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }

// blobPath is where the cache keeps the layer blob of digest h.
func (c *cache) blobPath(h v1.Hash) string {
	return filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)
}

// layerFromCache reopens a stored layer blob.
func (c *cache) layerFromCache(h v1.Hash) (*fileLayer, error) {
	p := c.blobPath(h)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	return &fileLayer{path: p, hash: h, size: fi.Size()}, nil
}

// layerWriter writes a layer tar into the cache, hashing as it goes; the
// blob appears under its digest only when Commit succeeds.
type layerWriter struct {
	*tar.Writer
	c     *cache
	f     *os.File
	h     hash.Hash
	n     int64
	epoch *time.Time
}

func (c *cache) newLayer(epoch *time.Time) (*layerWriter, error) {
	dir := filepath.Join(c.dir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "layer-")
	if err != nil {
		return nil, err
	}
	lw := &layerWriter{c: c, f: f, h: sha256.New(), epoch: epoch}
	lw.Writer = tar.NewWriter(io.MultiWriter(f, lw.h, countWriter{&lw.n}))
	return lw, nil
}

type countWriter struct{ n *int64 }

func (c countWriter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// WriteHeader normalizes h so that equal content gives equal bytes: PAX,
// second-granularity times (clamped to SOURCE_DATE_EPOCH when set), no
// user/group names, no atime/ctime.
func (lw *layerWriter) WriteHeader(h *tar.Header) error {
	h.Format = tar.FormatPAX
	h.ModTime = h.ModTime.Truncate(time.Second)
	if lw.epoch != nil && h.ModTime.After(*lw.epoch) {
		h.ModTime = *lw.epoch
	}
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	if h.PAXRecords != nil {
		for k := range h.PAXRecords {
			if k == "atime" || k == "ctime" || k == "mtime" {
				delete(h.PAXRecords, k)
			}
		}
	}
	return lw.Writer.WriteHeader(h)
}

// Commit finishes the tar and moves it into place under its digest.
func (lw *layerWriter) Commit() (*fileLayer, error) {
	if err := lw.Writer.Close(); err != nil {
		lw.Abort()
		return nil, err
	}
	if err := lw.f.Close(); err != nil {
		os.Remove(lw.f.Name())
		return nil, err
	}
	hx := hex.EncodeToString(lw.h.Sum(nil))
	h := v1.Hash{Algorithm: "sha256", Hex: hx}
	dst := lw.c.blobPath(h)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(lw.f.Name(), dst); err != nil {
		os.Remove(lw.f.Name())
		return nil, fmt.Errorf("store layer: %w", err)
	}
	return &fileLayer{path: dst, hash: h, size: lw.n}, nil
}

// Abort drops a layer being written.
func (lw *layerWriter) Abort() {
	lw.f.Close()
	os.Remove(lw.f.Name())
}
