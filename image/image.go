// Package image makes and describes images in the store: a rootfs
// tarball becomes a one-layer image (import, with Dockerfile-style
// changes), and stored images are listed and inspected as docker does.
package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImportOptions tune Import.
type ImportOptions struct {
	Platform string   // os/arch[/variant], "" = host
	Changes  []string // Dockerfile lines: CMD, ENTRYPOINT, ENV, ...
	Message  string   // history comment
	Source   string   // where the tarball came from, for history
	Created  time.Time
	// Compression of the stored layer: "gzip" (default), "zstd" or
	// "none" (see store.IngestOptions.Compression).
	Compression string
}

// Import stores the rootfs tarball r (plain, gzip or zstd) as a one-layer
// image named tag ("" = dangling) and returns it with its manifest digest.
func Import(s *store.Store, r io.Reader, tag string, o ImportOptions) (v1.Image, v1.Hash, error) {
	plat, err := store.ParsePlatform(o.Platform)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	var cfg v1.Config
	if err := ApplyChanges(&cfg, o.Changes); err != nil {
		return nil, v1.Hash{}, err
	}
	if tag != "" {
		if _, err := store.Normalize(tag); err != nil {
			return nil, v1.Hash{}, err
		}
	}
	// Nothing at all (a failed command piped in) is no rootfs: refused
	// rather than stored as an empty image.
	br := bufio.NewReader(r)
	if _, err := br.Peek(1); err == io.EOF {
		return nil, v1.Hash{}, errors.New("import: the rootfs tarball is empty")
	}
	unlock, err := s.Lock(false)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer unlock()
	b, err := s.Ingest(br, store.IngestOptions{Size: -1, Compress: true, Compression: o.Compression, Label: "rootfs"})
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("import: %w", err)
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	src := o.Source
	if src == "" {
		src = "-"
	}
	comment := o.Message
	if comment == "" {
		comment = "Imported from " + src
	}
	l, err := s.Layer(b)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	cf := &v1.ConfigFile{
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		Created:      v1.Time{Time: created},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{b.DiffID}},
		History:      []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "berth import " + src, Comment: comment}},
	}
	img, err := mutate.AppendLayers(EmptyOCI(), l)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	d, err := s.Write(img, tags...)
	return img, d, err
}

// EmptyOCI is an image with no layers and OCI media types.
func EmptyOCI() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}
