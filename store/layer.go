package store

import (
	"fmt"
	"io"
	"os"

	"github.com/berthproject/berth/layer"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer returns the stored blob b (an ingested layer) as a v1.Layer, for
// building images out of blobs already in the store.
func (s *Store) Layer(b Blob) (v1.Layer, error) {
	if !b.Layer {
		return nil, fmt.Errorf("blob %s is not a layer", b.Digest)
	}
	mt := types.OCILayer
	switch b.Compression {
	case "":
		mt = types.OCIUncompressedLayer
	case "zstd":
		mt = types.OCILayerZStd
	}
	return &blobLayer{s: s, b: b, mt: mt}, nil
}

type blobLayer struct {
	s  *Store
	b  Blob
	mt types.MediaType
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.b.Digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.b.DiffID, nil }
func (l *blobLayer) Size() (int64, error)                { return l.b.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.s.blobPath(l.b.Digest)) }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.s.blobPath(l.b.Digest))
	if err != nil {
		return nil, err
	}
	rc, _, err := layer.Decompress(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, closeBoth{rc, f}}, nil
}

type closeBoth [2]io.Closer

func (c closeBoth) Close() error {
	err := c[0].Close()
	if e := c[1].Close(); err == nil {
		err = e
	}
	return err
}
