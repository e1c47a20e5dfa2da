package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageFromManifest returns the image a raw manifest describes, reading
// its config and layers from the store's blobs (they must be there).
func (s *Store) ImageFromManifest(raw []byte) (v1.Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	if !mt.IsImage() {
		return nil, fmt.Errorf("manifest: unsupported media type %q", mt)
	}
	return partial.CompressedToImage(&blobImage{s: s, raw: raw, m: m, mt: mt})
}

// MaxJSONBlob bounds the configs, manifests and indexes read whole: a
// gzip archive of a few MB (or a registry) can hand over a "config" of
// many GB, which reading would take as much memory.
const MaxJSONBlob = 16 << 20

// ReadJSONBlob reads blob h, a config, manifest or index, refusing one
// larger than MaxJSONBlob. A missing blob is an fs.ErrNotExist.
func (s *Store) ReadJSONBlob(h v1.Hash) ([]byte, error) {
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var data []byte
	if fi.Size() <= MaxJSONBlob {
		data, err = io.ReadAll(io.LimitReader(f, MaxJSONBlob+1))
	}
	if err == nil && (fi.Size() > MaxJSONBlob || len(data) > MaxJSONBlob) {
		return nil, fmt.Errorf("blob %s: more than %d bytes, too large for a config or manifest", short(h), MaxJSONBlob)
	}
	return data, err
}

// ImageByDigest returns the stored image whose manifest digest is h.
func (s *Store) ImageByDigest(h v1.Hash) (v1.Image, error) {
	raw, err := s.ReadJSONBlob(h)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	return s.ImageFromManifest(raw)
}

type blobImage struct {
	s   *Store
	raw []byte
	m   *v1.Manifest
	mt  types.MediaType
}

func (b *blobImage) MediaType() (types.MediaType, error) { return b.mt, nil }
func (b *blobImage) RawManifest() ([]byte, error)        { return b.raw, nil }
func (b *blobImage) RawConfigFile() ([]byte, error) {
	data, err := b.s.ReadJSONBlob(b.m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", b.m.Config.Digest, err)
	}
	return data, nil
}

func (b *blobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == b.m.Config.Digest {
		return &blobDesc{s: b.s, d: b.m.Config}, nil
	}
	for _, l := range b.m.Layers {
		if l.Digest == h {
			return &blobDesc{s: b.s, d: l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s not in image", h)
}

type blobDesc struct {
	s *Store
	d v1.Descriptor
}

func (b *blobDesc) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *blobDesc) Size() (int64, error)                { return b.d.Size, nil }
func (b *blobDesc) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }
func (b *blobDesc) Compressed() (io.ReadCloser, error)  { return os.Open(b.s.blobPath(b.d.Digest)) }

// blobIndex is a stored multi-platform index.
type blobIndex struct {
	s   *Store
	raw []byte
	im  *v1.IndexManifest
	mt  types.MediaType
}

// IndexFromManifest returns the index a raw index manifest describes,
// with children read from the store's blobs.
func (s *Store) IndexFromManifest(raw []byte) (v1.ImageIndex, error) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	mt := im.MediaType
	if mt == "" {
		mt = types.OCIImageIndex
	}
	return &blobIndex{s: s, raw: raw, im: im, mt: mt}, nil
}

func (x *blobIndex) MediaType() (types.MediaType, error) { return x.mt, nil }
func (x *blobIndex) Digest() (v1.Hash, error)            { return partial.Digest(x) }
func (x *blobIndex) Size() (int64, error)                { return int64(len(x.raw)), nil }
func (x *blobIndex) IndexManifest() (*v1.IndexManifest, error) {
	var c v1.IndexManifest
	err := json.Unmarshal(x.raw, &c)
	return &c, err
}
func (x *blobIndex) RawManifest() ([]byte, error) { return x.raw, nil }
func (x *blobIndex) Image(h v1.Hash) (v1.Image, error) {
	return x.s.ImageByDigest(h)
}
func (x *blobIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return x.s.Index(h) }

// Index returns the stored multi-platform index with digest h.
func (s *Store) Index(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := s.ReadJSONBlob(h)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", h, err)
	}
	return s.IndexFromManifest(raw)
}

// DropUnreferenced deletes those of hs that no index.json entry leads to:
// blobs an aborted or partial ingest (e.g. load) left.
func (s *Store) DropUnreferenced(hs []v1.Hash) { s.dropNew(hs) }

// BlobPath is where blob h lives (read only: never write there).
func (s *Store) BlobPath(h v1.Hash) string { return s.blobPath(h) }
