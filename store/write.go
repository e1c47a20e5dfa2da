package store

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

func (s *Store) normalizeTags(tags []string) ([]string, error) {
	var out []string
	for _, t := range tags {
		full, err := Normalize(t)
		if err != nil {
			return nil, err
		}
		if strings.Contains(full, "@") {
			return nil, fmt.Errorf("cannot tag with a digest reference: %s", t)
		}
		out = append(out, full)
	}
	return out, nil
}

func (s *Store) write(img v1.Image, tags []string) (v1.Hash, error) {
	return s.store(tags, func(added *[]v1.Hash) (v1.Descriptor, error) { return s.writeImageBlobs(img, added) })
}

// WriteIndex stores a multi-platform index with every child image and
// points each tag at the index.
func (s *Store) WriteIndex(idx v1.ImageIndex, tags ...string) (v1.Hash, error) {
	return s.store(tags, func(added *[]v1.Hash) (v1.Descriptor, error) { return s.writeIndexBlobs(idx, added) })
}

// store writes blobs with put under the shared GC lock, then points tags
// at the result; on failure the blobs it added are dropped again.
func (s *Store) store(tags []string, put func(added *[]v1.Hash) (v1.Descriptor, error)) (v1.Hash, error) {
	full, err := s.normalizeTags(tags)
	if err != nil {
		return v1.Hash{}, err
	}
	unlock, err := s.Lock(false)
	if err != nil {
		return v1.Hash{}, err
	}
	defer unlock()
	var added []v1.Hash
	d, err := put(&added)
	if err == nil {
		err = s.updateIndex(func(im *v1.IndexManifest) error {
			s.point(im, d, full)
			return nil
		})
	}
	if err != nil {
		s.dropNew(added)
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

func (s *Store) point(im *v1.IndexManifest, d v1.Descriptor, full []string) {
	if len(full) == 0 {
		addDangling(im, d)
	}
	for _, n := range full {
		setTag(im, d, n)
	}
}

// dropNew removes blobs this failed write added, so that the store is as
// it was; blobs another writer referenced meanwhile are kept.
func (s *Store) dropNew(added []v1.Hash) {
	if len(added) == 0 {
		return
	}

	reach, err := s.reachable()
	if err != nil {
		return
	}
	for _, h := range added {
		if !reach[h] {
			s.removeBlob(h)
		}
	}
}

func (s *Store) writeIndexBlobs(idx v1.ImageIndex, added *[]v1.Hash) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, c := range im.Manifests {
		switch {
		case c.MediaType.IsIndex():
			child, err := idx.ImageIndex(c.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := s.writeIndexBlobs(child, added); err != nil {
				return v1.Descriptor{}, err
			}
		case c.MediaType.IsImage():
			img, err := idx.Image(c.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := s.writeImageBlobs(img, added); err != nil {
				return v1.Descriptor{}, err
			}
		default:
			return v1.Descriptor{}, fmt.Errorf("index %s: unsupported entry media type %q", c.Digest, c.MediaType)
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return s.putBytes(raw, mt, added)
}

// writeImageBlobs writes layers (in parallel, skipping those present),
// then config, then manifest: a manifest is only ever stored once all it
// references is.
func (s *Store) writeImageBlobs(img v1.Image, added *[]v1.Hash) (v1.Descriptor, error) {
	m, err := img.Manifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if len(layers) != len(m.Layers) {
		return v1.Descriptor{}, fmt.Errorf("image has %d layers, its manifest %d", len(layers), len(m.Layers))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var g errgroup.Group
	g.SetLimit(max(2, runtime.NumCPU()))
	newBlobs := make([]v1.Hash, len(layers))
	for i, l := range layers {
		desc := m.Layers[i]
		if s.HasBlob(desc.Digest, desc.Size) {
			if i >= len(cf.RootFS.DiffIDs) {
				continue // refused below
			}
			// Checked when it came in, but maybe for another config: this
			// one's diffID must be what the blob holds too (else a snapshot
			// keyed by it would hold other content).
			g.Go(func() error {
				diff, _, err := s.LayerDiff(desc.Digest)
				if err != nil {
					return err
				}
				if diff != cf.RootFS.DiffIDs[i] {
					return fmt.Errorf("layer %s: uncompressed digest %s, config says %s: refused", short(desc.Digest), diff, cf.RootFS.DiffIDs[i])
				}
				return nil
			})
			continue
		}
		if !desc.MediaType.IsLayer() {
			return v1.Descriptor{}, fmt.Errorf("layer %s: unsupported media type %q", desc.Digest, desc.MediaType)
		}
		g.Go(func() error {
			rc, err := l.Compressed()
			if err != nil {
				return fmt.Errorf("layer %s: %w", desc.Digest, err)
			}
			defer rc.Close()
			b, err := s.Ingest(rc, IngestOptions{Digest: &desc.Digest, Size: desc.Size, Layer: true})
			if err != nil {
				return fmt.Errorf("layer %s: %w", short(desc.Digest), err)
			}
			if b.New {
				newBlobs[i] = b.Digest
			}
			if i < len(cf.RootFS.DiffIDs) && b.DiffID != cf.RootFS.DiffIDs[i] {
				return fmt.Errorf("layer %s: uncompressed digest %s, config says %s: refused", short(desc.Digest), b.DiffID, cf.RootFS.DiffIDs[i])
			}
			return nil
		})
	}
	err = g.Wait()
	for _, h := range newBlobs {
		if h.Hex != "" {
			*added = append(*added, h)
		}
	}
	if err != nil {
		return v1.Descriptor{}, err
	}
	if len(cf.RootFS.DiffIDs) != len(layers) {
		return v1.Descriptor{}, fmt.Errorf("image config lists %d layers, manifest %d", len(cf.RootFS.DiffIDs), len(layers))
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cd, err := s.putBytes(rawCfg, m.Config.MediaType, added)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if cd.Digest != m.Config.Digest {
		return v1.Descriptor{}, fmt.Errorf("config has digest %s, manifest says %s: refused", cd.Digest, m.Config.Digest)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := s.putBytes(raw, mt, added)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if p := cf.Platform(); p != nil && p.OS != "" {
		d.Platform = p
	}
	return d, nil
}

func (s *Store) putBytes(raw []byte, mt types.MediaType, added *[]v1.Hash) (v1.Descriptor, error) {
	b, err := s.Ingest(bytes.NewReader(raw), IngestOptions{Size: int64(len(raw)), Label: "-"})
	if err != nil {
		return v1.Descriptor{}, err
	}
	if b.New {
		*added = append(*added, b.Digest)
	}
	return v1.Descriptor{MediaType: mt, Digest: b.Digest, Size: b.Size}, nil
}
