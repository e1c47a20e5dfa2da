package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/berthproject/berth/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// ChainIDs returns the chain ID of each layer prefix of diffIDs (OCI
// image spec): the first is the first diffID, each next one
// sha256(previous + " " + diffID).
func ChainIDs(diffIDs []v1.Hash) []v1.Hash {
	out := make([]v1.Hash, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1].String() + " " + d.String()))
		out[i] = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	return out
}

// SnapshotDir is where the snapshot of a chain ID lives (its fs/ subdir
// is the overlay lowerdir).
func (s *Store) SnapshotDir(chain v1.Hash) string {
	return filepath.Join(s.Root, "snapshots", chain.Hex)
}

func (s *Store) snapshots(img v1.Image) ([]string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image config lists %d layers, manifest %d", len(cf.RootFS.DiffIDs), len(layers))
	}
	unlock, err := s.Lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	chains := ChainIDs(cf.RootFS.DiffIDs)
	dirs := make([]string, len(chains))
	var missing []int
	for i, c := range chains {
		dirs[i] = filepath.Join(s.SnapshotDir(c), "fs")
		if _, err := os.Stat(dirs[i]); err != nil {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return dirs, nil
	}
	// One process unpacks at a time (snapshots.lock), so racing
	// containers of one image unpack it once; the layers themselves are
	// independent directories and unpack in parallel.
	unlockSnap, err := s.flock("snapshots.lock", true)
	if err != nil {
		return nil, err
	}
	defer unlockSnap()
	var g errgroup.Group
	g.SetLimit(max(2, runtime.NumCPU()))
	for _, i := range missing {
		g.Go(func() error { return s.unpack(s.SnapshotDir(chains[i]), layers[i], cf.RootFS.DiffIDs[i]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return dirs, nil
}

// unpack applies one layer into tmp/ and renames the result into place,
// so a snapshot directory either is complete or does not exist. Callers
// hold snapshots.lock.
func (s *Store) unpack(dir string, l v1.Layer, diffID v1.Hash) error {
	if _, err := os.Stat(filepath.Join(dir, "fs")); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.Root, "tmp"), "snap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	fs := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	// The blob is hashed on the way in (a blob damaged on disk since it
	// was stored must not become a snapshot), and so is the tar: the
	// snapshot is keyed by the diffID, so it must hold that layer
	// whatever image asked for it.
	h, dh := sha256.New(), sha256.New()
	tee := io.TeeReader(rc, h)
	zr, _, err := layer.Decompress(tee)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", short(diffID), err)
	}
	closed := false
	defer func() {
		if !closed {
			zr.Close()
		}
	}()
	tar := io.TeeReader(zr, dh)
	_, err = layer.Apply(fs, tar, layer.Options{Overlay: true, MaxBytes: s.MaxLayerBytes, NoDevices: os.Geteuid() != 0})
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", short(diffID), err)
	}
	if _, err := io.Copy(io.Discard, tar); err != nil {
		return fmt.Errorf("unpack layer %s: %w", short(diffID), err)
	}
	closed = true
	zr.Close() // stops read-ahead before the rest of the blob is hashed
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if want, err := l.Digest(); err == nil && want.Hex != hex.EncodeToString(h.Sum(nil)) {
		return fmt.Errorf("unpack layer %s: blob %s is damaged (run `berth system check`)", short(diffID), short(want))
	}
	if got := hex.EncodeToString(dh.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("unpack layer %s: content has digest sha256:%s: refused", short(diffID), got)
	}
	if err := os.WriteFile(filepath.Join(tmp, "diffid"), []byte(diffID.String()+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// snapshotIDs lists the chain IDs that have a snapshot directory.
func (s *Store) snapshotIDs() ([]v1.Hash, error) {
	ents, err := os.ReadDir(filepath.Join(s.Root, "snapshots"))
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == 64 && strings.Trim(e.Name(), "0123456789abcdef") == "" {
			out = append(out, v1.Hash{Algorithm: "sha256", Hex: e.Name()})
		}
	}
	return out, nil
}

// removeSnapshot moves a snapshot into tmp/ before deleting it: a kill
// mid-delete must not leave a half-empty fs/ that looks complete.
func (s *Store) removeSnapshot(dir string) error {
	trash, err := os.MkdirTemp(filepath.Join(s.Root, "tmp"), "del-")
	if err != nil {
		return err
	}
	if err := os.Rename(dir, filepath.Join(trash, "snap")); err != nil {
		os.Remove(trash)
		return err
	}
	return os.RemoveAll(trash)
}
