package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// InUse returns the manifest and config digests that containers use: the
// containers/<id>/{berth,config}.json scan documented on Store, plus
// SetUsedBy's source.
func (s *Store) InUse() (map[v1.Hash]bool, error) {
	out := map[v1.Hash]bool{}
	dirs, err := os.ReadDir(filepath.Join(s.Root, "containers"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, d := range dirs {
		for _, f := range []string{"berth.json", "container.json", "config.json"} {
			data, err := os.ReadFile(filepath.Join(s.Root, "containers", d.Name(), f))
			if err != nil {
				continue
			}
			var m map[string]any
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			for _, k := range []string{"ImageDigest", "ImageID", "Image"} {
				if v, ok := m[k].(string); ok {
					if h, err := v1.NewHash(v); err == nil {
						out[h] = true
					}
				}
			}
		}
	}
	if s.usedBy != nil {
		hs, err := s.usedBy()
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			out[h] = true
		}
	}
	return out, nil
}

// entryDigests lists what an entry stands for: its manifest (or index and
// each child manifest) and their configs.
func (s *Store) entryDigests(d v1.Descriptor) []v1.Hash {
	out := []v1.Hash{d.Digest}
	if d.MediaType.IsIndex() {
		idx, err := s.Index(d.Digest)
		if err != nil {
			return out
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return out
		}
		for _, c := range im.Manifests {
			out = append(out, s.entryDigests(c)...)
		}
		return out
	}
	if m, err := s.Manifest(d.Digest); err == nil {
		out = append(out, m.Config.Digest)
	}
	return out
}

func (s *Store) used(d v1.Descriptor, inUse map[v1.Hash]bool) bool {
	for _, h := range s.entryDigests(d) {
		if inUse[h] {
			return true
		}
	}
	return false
}

// RemoveResult says what Remove did, for docker-style output.
type RemoveResult struct {
	Untagged []string
	Deleted  []v1.Hash
}

// ErrInUse is returned for removing an image a container uses.
var ErrInUse = errors.New("image is in use by a container")

// Remove untags or deletes the image ref names, with docker's rules: a
// name is untagged and the image deleted only with its last name; an ID
// deletes the image, needing force when several names point at it; an
// image in use is never deleted (force only untags it, leaving it <none>).
func (s *Store) Remove(ref string, force bool) (RemoveResult, error) {
	var res RemoveResult
	unlockGC, err := s.Lock(false)
	if err != nil {
		return res, err
	}
	inUse, err := s.InUse()
	if err != nil {
		unlockGC()
		return res, err
	}
	var deleted v1.Hash
	err = s.updateIndex(func(im *v1.IndexManifest) error {
		var entries []Entry
		for _, d := range im.Manifests {
			entries = append(entries, Entry{Name: d.Annotations[RefAnnotation], Descriptor: d})
		}
		e, ok := s.resolveIn(entries, ref)
		if !ok {
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		full, _ := Normalize(ref)
		byName := e.Name != "" && e.Name == full
		var same, named []Entry
		for _, x := range entries {
			if x.Descriptor.Digest == e.Descriptor.Digest {
				same = append(same, x)
				if x.Name != "" {
					named = append(named, x)
				}
			}
		}
		used := s.used(e.Descriptor, inUse)
		id, _ := s.ID(e.Descriptor)
		switch {
		case byName && len(named) > 1:
			res.Untagged = []string{e.Name}
			im.Manifests = without(im.Manifests, func(d v1.Descriptor) bool { return d.Annotations[RefAnnotation] == e.Name })
			return nil
		case !byName && len(named) > 1 && !force:
			return fmt.Errorf("unable to delete %s (must be forced): image is referenced in %d names", short(id), len(named))
		case used && !force:
			return fmt.Errorf("unable to remove %s: %w (use -f to untag it)", ref, ErrInUse)
		}
		for _, x := range named {
			res.Untagged = append(res.Untagged, x.Name)
		}
		im.Manifests = without(im.Manifests, func(d v1.Descriptor) bool { return d.Digest == e.Descriptor.Digest })
		if used {
			addDangling(im, e.Descriptor)
			return nil
		}
		deleted = id
		return nil
	})
	unlockGC()
	if err != nil {
		return res, err
	}
	if deleted.Hex != "" {
		res.Deleted = append(res.Deleted, deleted)
		if _, err := s.GC(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func without(ds []v1.Descriptor, drop func(v1.Descriptor) bool) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range ds {
		if !drop(d) {
			out = append(out, d)
		}
	}
	return out
}

// PruneResult says what Prune removed.
type PruneResult struct {
	Removed   []Entry
	Reclaimed int64 // bytes of blobs and snapshots deleted
}

// Prune removes dangling images (all=true: every image) that no container
// uses, then whatever blobs and snapshots nothing references.
func (s *Store) Prune(all bool) (PruneResult, error) {
	var res PruneResult
	unlockGC, err := s.Lock(false)
	if err != nil {
		return res, err
	}
	inUse, err := s.InUse()
	if err == nil {
		err = s.updateIndex(func(im *v1.IndexManifest) error {
			im.Manifests = without(im.Manifests, func(d v1.Descriptor) bool {
				n := d.Annotations[RefAnnotation]
				if (n == "" || all) && !s.used(d, inUse) {
					res.Removed = append(res.Removed, Entry{Name: n, Descriptor: d})
					return true
				}
				return false
			})
			return nil
		})
	}
	unlockGC()
	if err != nil {
		return res, err
	}
	res.Reclaimed, err = s.GC()
	return res, err
}

// reachable returns every blob index.json leads to.
func (s *Store) reachable() (map[v1.Hash]bool, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := map[v1.Hash]bool{}
	var walk func(d v1.Descriptor)
	walk = func(d v1.Descriptor) {
		if out[d.Digest] {
			return
		}
		out[d.Digest] = true
		switch {
		case d.MediaType.IsIndex():
			f, err := os.Open(s.blobPath(d.Digest))
			if err != nil {
				return
			}
			defer f.Close()
			child, err := v1.ParseIndexManifest(f)
			if err != nil {
				return
			}
			for _, c := range child.Manifests {
				walk(c)
			}
		case d.MediaType.IsImage():
			m, err := s.Manifest(d.Digest)
			if err != nil {
				return
			}
			out[m.Config.Digest] = true
			for _, l := range m.Layers {
				out[l.Digest] = true
			}
		}
	}
	for _, d := range im.Manifests {
		walk(d)
	}
	return out, nil
}

// neededChains returns the chain IDs (with their layer's diffID) of
// every stored image's layers, children of indexes included.
func (s *Store) neededChains() (map[v1.Hash]v1.Hash, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := map[v1.Hash]v1.Hash{}
	seen := map[v1.Hash]bool{}
	var walk func(d v1.Descriptor)
	walk = func(d v1.Descriptor) {
		if seen[d.Digest] {
			return
		}
		seen[d.Digest] = true
		if d.MediaType.IsIndex() {
			if idx, err := s.Index(d.Digest); err == nil {
				if cm, err := idx.IndexManifest(); err == nil {
					for _, c := range cm.Manifests {
						walk(c)
					}
				}
			}
			return
		}
		m, err := s.Manifest(d.Digest)
		if err != nil {
			return
		}
		f, err := os.Open(s.blobPath(m.Config.Digest))
		if err != nil {
			return
		}
		defer f.Close()
		cf, err := v1.ParseConfigFile(f)
		if err != nil {
			return
		}
		for i, c := range ChainIDs(cf.RootFS.DiffIDs) {
			out[c] = cf.RootFS.DiffIDs[i]
		}
	}
	for _, d := range im.Manifests {
		walk(d)
	}
	return out, nil
}

// GC deletes blobs and snapshots that no index.json entry leads to, and
// leftovers of interrupted writes in tmp/. It holds the GC lock
// exclusively (no writer in flight) and returns the bytes freed.
func (s *Store) GC() (int64, error) {
	unlockGC, err := s.Lock(true)
	if err != nil {
		return 0, err
	}
	defer unlockGC()
	unlockIdx, err := s.flock("lock", true)
	if err != nil {
		return 0, err
	}
	defer unlockIdx()
	reach, err := s.reachable()
	if err != nil {
		return 0, err
	}
	var freed int64
	blobs, err := s.blobList()
	if err != nil {
		return 0, err
	}
	for _, h := range blobs {
		if !reach[h] {
			if fi, err := os.Stat(s.blobPath(h)); err == nil {
				freed += fi.Size()
			}
			if err := s.removeBlob(h); err != nil {
				return freed, err
			}
		}
	}
	// Records of blobs gone another way (by hand, by Check).
	recs, _ := os.ReadDir(filepath.Join(s.Root, "diffids"))
	for _, e := range recs {
		if !s.HasBlob(v1.Hash{Algorithm: "sha256", Hex: e.Name()}, -1) {
			os.Remove(filepath.Join(s.Root, "diffids", e.Name()))
		}
	}
	chains, err := s.neededChains()
	if err != nil {
		return freed, err
	}
	snaps, err := s.snapshotIDs()
	if err != nil {
		return freed, err
	}
	for _, c := range snaps {
		if _, ok := chains[c]; !ok {
			freed += diskUsage(s.SnapshotDir(c))
			if err := s.removeSnapshot(s.SnapshotDir(c)); err != nil {
				return freed, err
			}
		}
	}
	// Nobody writes now: whatever is in tmp/ is a leftover.
	ents, _ := os.ReadDir(filepath.Join(s.Root, "tmp"))
	for _, e := range ents {
		os.RemoveAll(filepath.Join(s.Root, "tmp", e.Name()))
	}
	return freed, nil
}

func (s *Store) blobList() ([]v1.Hash, error) {
	ents, err := os.ReadDir(filepath.Join(s.Root, "oci", "blobs", "sha256"))
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, e := range ents {
		out = append(out, v1.Hash{Algorithm: "sha256", Hex: e.Name()})
	}
	return out, nil
}

// CheckResult lists what Check found and, with repair, what it dropped.
type CheckResult struct {
	Blobs, Refs, Snapshots int
	Problems               []string
	Repaired               []string
}

// Check verifies every blob's digest and size, every ref (its manifest,
// config and layers present and parseable) and every snapshot (complete,
// holding the layer its chain ID says). With repair it deletes broken
// blobs, drops refs that lead to missing blobs, removes broken snapshots
// and leftovers in tmp/.
func (s *Store) Check(repair bool) (CheckResult, error) {
	var res CheckResult
	unlockGC, err := s.Lock(true)
	if err != nil {
		return res, err
	}
	defer unlockGC()
	unlockIdx, err := s.flock("lock", true)
	if err != nil {
		return res, err
	}
	defer unlockIdx()
	problem := func(fix func() error, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		res.Problems = append(res.Problems, msg)
		if repair && fix != nil {
			if err := fix(); err == nil {
				res.Repaired = append(res.Repaired, msg)
			}
		}
	}
	blobs, err := s.blobList()
	if err != nil {
		return res, err
	}
	for _, h := range blobs {
		res.Blobs++
		p := s.blobPath(h)
		got, err := fileDigest(p)
		if err != nil || got != h {
			problem(func() error { return s.removeBlob(h) }, "blob %s: content does not match its digest", h)
		}
	}
	im, err := s.readIndex()
	if err != nil {
		var rebuilt *v1.IndexManifest
		problem(func() error {
			rebuilt = s.rebuildIndex()
			return s.writeIndexFile(rebuilt)
		}, "index.json: %v", err)
		if rebuilt == nil {
			return res, nil
		}
		im = rebuilt
	}
	var keep []v1.Descriptor
	for _, d := range im.Manifests {
		res.Refs++
		name := d.Annotations[RefAnnotation]
		if name == "" {
			name = "<none>@" + d.Digest.String()
		}
		if err := s.checkDescriptor(d); err != nil {
			problem(func() error { return nil }, "ref %s: %v", name, err)
			if repair {
				continue
			}
		}
		keep = append(keep, d)
	}
	if repair && len(keep) != len(im.Manifests) {
		im.Manifests = keep
		if err := s.writeIndexFile(im); err != nil {
			return res, err
		}
	}
	chains, err := s.neededChains()
	if err != nil {
		return res, err
	}
	snaps, _ := s.snapshotIDs()
	for _, c := range snaps {
		res.Snapshots++
		dir := s.SnapshotDir(c)
		data, err := os.ReadFile(filepath.Join(dir, "diffid"))
		fi, ferr := os.Stat(filepath.Join(dir, "fs"))
		want, needed := chains[c]
		switch {
		case err != nil || ferr != nil || !fi.IsDir():
			problem(func() error { return s.removeSnapshot(dir) }, "snapshot %s: incomplete", short(c))
		case needed && strings.TrimSpace(string(data)) != want.String():
			problem(func() error { return s.removeSnapshot(dir) }, "snapshot %s: holds layer %s, its chain needs %s", short(c), strings.TrimSpace(string(data)), want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "tmp")); len(ents) > 0 {
		problem(func() error {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(s.Root, "tmp", e.Name()))
			}
			return nil
		}, "tmp: %d leftovers of interrupted writes", len(ents))
	}
	return res, nil
}

// rebuildIndex recovers from an unreadable index.json: every stored
// manifest or index that no other index lists becomes a dangling entry
// (the names are lost; the images are not).
func (s *Store) rebuildIndex() *v1.IndexManifest {
	im := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	blobs, _ := s.blobList()
	children := map[v1.Hash]bool{}
	var tops []v1.Descriptor
	for _, h := range blobs {
		data, err := s.ReadJSONBlob(h) // not the layers, which may be GBs
		if err != nil || len(data) == 0 || data[0] != '{' {
			continue
		}
		if x, err := v1.ParseIndexManifest(bytes.NewReader(data)); err == nil && len(x.Manifests) > 0 && x.Manifests[0].MediaType != "" {
			mt := x.MediaType
			if mt == "" {
				mt = types.OCIImageIndex
			}
			for _, c := range x.Manifests {
				children[c.Digest] = true
			}
			tops = append(tops, v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(data))})
			continue
		}
		if m, err := v1.ParseManifest(bytes.NewReader(data)); err == nil && m.Config.Digest.Hex != "" {
			mt := m.MediaType
			if mt == "" {
				mt = types.OCIManifestSchema1
			}
			tops = append(tops, v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(data))})
		}
	}
	for _, d := range tops {
		if !children[d.Digest] {
			im.Manifests = append(im.Manifests, d)
		}
	}
	return im
}

func (s *Store) checkDescriptor(d v1.Descriptor) error {
	if !isImageType(d.MediaType) {
		return fmt.Errorf("unsupported media type %q", d.MediaType)
	}
	if !s.HasBlob(d.Digest, d.Size) {
		return fmt.Errorf("manifest %s missing", short(d.Digest))
	}
	if d.MediaType.IsIndex() {
		f, err := os.Open(s.blobPath(d.Digest))
		if err != nil {
			return err
		}
		defer f.Close()
		im, err := v1.ParseIndexManifest(f)
		if err != nil {
			return fmt.Errorf("index %s: %v", short(d.Digest), err)
		}
		for _, c := range im.Manifests {
			if err := s.checkDescriptor(c); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := s.Manifest(d.Digest)
	if err != nil {
		return fmt.Errorf("manifest %s: %v", short(d.Digest), err)
	}
	if !s.HasBlob(m.Config.Digest, m.Config.Size) {
		return fmt.Errorf("config %s missing", short(m.Config.Digest))
	}
	for _, l := range m.Layers {
		if !s.HasBlob(l.Digest, l.Size) {
			return fmt.Errorf("layer %s missing or damaged", short(l.Digest))
		}
	}
	return nil
}

func fileDigest(p string) (v1.Hash, error) {
	f, err := os.Open(p)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// DF is the space the store uses, by kind.
type DF struct {
	Images, ImagesActive       int
	ImageBytes, ImageReclaim   int64
	Snapshots                  int
	SnapshotBytes              int64
	Containers                 int
	ContainerBytes, OtherBytes int64
}

// DiskUsage measures the store: unique blob bytes of images (reclaimable:
// those only unused images need), snapshots and containers on disk.
func (s *Store) DiskUsage() (DF, error) {
	var df DF
	entries, err := s.List()
	if err != nil {
		return df, err
	}
	inUse, err := s.InUse()
	if err != nil {
		return df, err
	}
	seen := map[v1.Hash]bool{}
	for _, e := range entries {
		if seen[e.Descriptor.Digest] {
			continue
		}
		seen[e.Descriptor.Digest] = true
		df.Images++
		if s.used(e.Descriptor, inUse) {
			df.ImagesActive++
		}
	}
	blobs, _ := s.blobList()
	for _, h := range blobs {
		if fi, err := os.Stat(s.blobPath(h)); err == nil {
			df.ImageBytes += fi.Size()
		}
	}
	// Reclaimable: blobs that only unused images reach.
	usedBlobs := map[v1.Hash]bool{}
	for _, e := range entries {
		if s.used(e.Descriptor, inUse) {
			for _, h := range s.entryBlobs(e.Descriptor) {
				usedBlobs[h] = true
			}
		}
	}
	for _, h := range blobs {
		if !usedBlobs[h] {
			if fi, err := os.Stat(s.blobPath(h)); err == nil {
				df.ImageReclaim += fi.Size()
			}
		}
	}
	snaps, _ := s.snapshotIDs()
	df.Snapshots = len(snaps)
	df.SnapshotBytes = diskUsage(filepath.Join(s.Root, "snapshots"))
	cs, _ := os.ReadDir(filepath.Join(s.Root, "containers"))
	df.Containers = len(cs)
	df.ContainerBytes = diskUsage(filepath.Join(s.Root, "containers"))
	return df, nil
}

func (s *Store) entryBlobs(d v1.Descriptor) []v1.Hash {
	out := []v1.Hash{d.Digest}
	if d.MediaType.IsIndex() {
		if f, err := os.Open(s.blobPath(d.Digest)); err == nil {
			im, err := v1.ParseIndexManifest(f)
			f.Close()
			if err == nil {
				for _, c := range im.Manifests {
					out = append(out, s.entryBlobs(c)...)
				}
			}
		}
		return out
	}
	if m, err := s.Manifest(d.Digest); err == nil {
		out = append(out, m.Config.Digest)
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

// diskUsage sums allocated bytes under dir, counting hardlinks once.
// Overlay mounts are not crossed (same device only).
func diskUsage(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	var dev uint64
	if st, err := os.Lstat(dir); err == nil {
		dev = st.Sys().(*syscall.Stat_t).Dev
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			return filepath.SkipDir
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}
