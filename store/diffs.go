package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layer records: for each layer blob Ingest checked, diffids/<blob hex>
// holds "<diffID> <uncompressed size>\n". With them a blob already in the
// store is held to a new config's diffID without inflating it again, and
// images have an unpacked size. A record is derived data: written without
// fsync (temp + rename, so never half there), and a missing or unreadable
// one is recomputed from the blob.

func (s *Store) recordPath(blob v1.Hash) string {
	return filepath.Join(s.Root, "diffids", blob.Hex)
}

func (s *Store) writeRecord(blob, diff v1.Hash, size int64) error {
	f, err := os.CreateTemp(filepath.Join(s.Root, "tmp"), "diffid-")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %d\n", diff, size)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(f.Name(), s.recordPath(blob))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (s *Store) readRecord(blob v1.Hash) (v1.Hash, int64, bool) {
	data, err := os.ReadFile(s.recordPath(blob))
	if err != nil {
		return v1.Hash{}, 0, false
	}
	d, n, ok := strings.Cut(strings.TrimSuffix(string(data), "\n"), " ")
	if !ok {
		return v1.Hash{}, 0, false
	}
	diff, err := v1.NewHash(d)
	size, err2 := strconv.ParseInt(n, 10, 64)
	if err != nil || err2 != nil || size < 0 {
		return v1.Hash{}, 0, false
	}
	return diff, size, true
}

func (s *Store) removeBlob(h v1.Hash) error {
	os.Remove(s.recordPath(h))
	return os.Remove(s.blobPath(h))
}

// UnpackedSize is the uncompressed size of stored layer blob h, when its
// record says (false: unknown, e.g. a blob stored before records were).
func (s *Store) UnpackedSize(h v1.Hash) (int64, bool) {
	_, n, ok := s.readRecord(h)
	return n, ok
}

// LayerDiff returns the diffID and uncompressed size of stored layer blob
// h: from its record, or else by reading the blob through the same checks
// Ingest makes (digest, hostile entries), then recorded.
func (s *Store) LayerDiff(h v1.Hash) (v1.Hash, int64, error) {
	if d, n, ok := s.readRecord(h); ok {
		return d, n, nil
	}
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("layer %s: %w", short(h), err)
	}
	defer f.Close()
	bh := sha256.New()
	diff, n, comp, err := s.scanLayer(io.TeeReader(f, bh), io.Discard, false)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("layer %s: %w", short(h), err)
	}
	// Whatever the tar reader left (padding after the trailer) is part of the blob.
	if _, err := io.Copy(bh, f); err != nil {
		return v1.Hash{}, 0, err
	}
	if got := hex.EncodeToString(bh.Sum(nil)); got != h.Hex {
		return v1.Hash{}, 0, fmt.Errorf("layer %s: blob is damaged (run `berth system check`)", short(h))
	}
	if comp == "" {
		diff = h
	}
	s.writeRecord(h, diff, n)
	return diff, n, nil
}
