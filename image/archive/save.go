// Package archive moves images between the store and tar archives:
// docker-archive (docker save/load, podman's default) and oci-archive
// (a tarred OCI image layout), either read back with its format detected.
package archive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berthproject/berth/image/progress"
	"github.com/berthproject/berth/store"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Formats Save writes.
const (
	DockerArchive = "docker-archive"
	OCIArchive    = "oci-archive"
)

// item is one thing to save: an entry and the names to give it.
type item struct {
	e     store.Entry
	names []string
}

func resolveAll(s *store.Store, refs []string) ([]item, error) {
	var items []item
	pos := map[v1.Hash]int{}
	for _, ref := range refs {
		e, err := s.Resolve(ref)
		if err != nil {
			return nil, err
		}
		i, ok := pos[e.Descriptor.Digest]
		if !ok {
			i = len(items)
			pos[e.Descriptor.Digest] = i
			items = append(items, item{e: e})
		}
		// A name saves that name; an ID saves the image without one, as docker.
		if full, err := store.Normalize(ref); err == nil && full == e.Name {
			items[i].names = append(items[i].names, full)
		}
	}
	return items, nil
}

// Save writes the images refs name to w in format, reporting each
// layer's copy to p (may be nil).
func Save(s *store.Store, w io.Writer, refs []string, format string, p store.Progress) error {
	items, err := resolveAll(s, refs)
	if err != nil {
		return err
	}
	switch format {
	case "", DockerArchive:
		return saveDocker(s, w, items, p)
	case OCIArchive:
		return saveOCI(s, w, items, p)
	}
	return fmt.Errorf("unknown format %q (want docker-archive or oci-archive)", format)
}

func saveDocker(s *store.Store, w io.Writer, items []item, p store.Progress) error {
	refs := map[name.Reference]v1.Image{}
	for _, it := range items {
		// A docker archive holds images, not indexes: take the host's.
		img, err := s.EntryImage(it.e, "")
		if err != nil {
			return err
		}
		if p != nil {
			img = progress.Image(img, p)
		}
		if len(it.names) == 0 {
			d, _ := img.Digest()
			ref, err := name.NewDigest("untagged@" + d.String())
			if err != nil {
				return err
			}
			refs[ref] = img
		}
		for _, n := range it.names {
			t, err := name.NewTag(n)
			if err != nil {
				return err
			}
			refs[t] = img
		}
	}
	// ggcr keys images by identity: give each digest one image value.
	byDigest := map[v1.Hash]v1.Image{}
	for r, img := range refs {
		d, _ := img.Digest()
		if first, ok := byDigest[d]; ok {
			refs[r] = first
		} else {
			byDigest[d] = img
		}
	}
	return tarball.MultiRefWrite(refs, w)
}

// saveOCI streams an OCI image layout as a tar straight from the store's
// blobs: oci-layout, blobs/sha256/..., index.json last.
func saveOCI(s *store.Store, w io.Writer, items []item, p store.Progress) error {
	tw := tar.NewWriter(w)
	written := map[v1.Hash]bool{}
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	var blob func(d v1.Descriptor) error
	blob = func(d v1.Descriptor) error {
		if written[d.Digest] {
			return nil
		}
		written[d.Digest] = true
		f, err := os.Open(s.BlobPath(d.Digest))
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Digest.Hex, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		var src io.Reader = f
		if p != nil && d.MediaType.IsLayer() {
			id := d.Digest.Hex[:12]
			p.Start(id, fi.Size())
			src = &countingReader{r: f, fn: func(n int64) { p.Update(id, n) }}
			defer func() { p.Done(id, nil) }()
		}
		if _, err := io.Copy(tw, src); err != nil {
			return err
		}
		switch {
		case d.MediaType.IsIndex():
			idx, err := s.Index(d.Digest)
			if err != nil {
				return err
			}
			im, err := idx.IndexManifest()
			if err != nil {
				return err
			}
			for _, c := range im.Manifests {
				if err := blob(c); err != nil {
					return err
				}
			}
		case d.MediaType.IsImage():
			m, err := s.Manifest(d.Digest)
			if err != nil {
				return err
			}
			if err := blob(m.Config); err != nil {
				return err
			}
			for _, l := range m.Layers {
				if err := blob(l); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}
	for _, it := range items {
		if err := blob(it.e.Descriptor); err != nil {
			return err
		}
		d := it.e.Descriptor
		if len(it.names) == 0 {
			d.Annotations = nil
			index.Manifests = append(index.Manifests, d)
		}
		for _, n := range it.names {
			d.Annotations = map[string]string{store.RefAnnotation: n}
			index.Manifests = append(index.Manifests, d)
		}
	}
	data, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := put("index.json", data); err != nil {
		return err
	}
	return tw.Close()
}

// cleanName strips "./" and leading "/" from an archive entry name.
func cleanName(n string) string {
	n = strings.TrimPrefix(n, "./")
	return strings.TrimLeft(n, "/")
}

type countingReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}
