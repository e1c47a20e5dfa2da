package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DockerManifest is one entry of a docker archive's manifest.json.
type DockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// ParseDockerManifest parses a docker archive's manifest.json, refusing
// what cannot be loaded (no config, paths escaping the archive).
func ParseDockerManifest(data []byte) ([]DockerManifest, error) {
	var ms []DockerManifest
	if err := json.Unmarshal(data, &ms); err != nil {
		return nil, fmt.Errorf("manifest.json: %v", err)
	}
	if len(ms) == 0 {
		return nil, errors.New("manifest.json: no images")
	}
	for _, m := range ms {
		if m.Config == "" {
			return nil, errors.New("manifest.json: image without Config")
		}
		for _, p := range append([]string{m.Config}, m.Layers...) {
			if c := path.Clean("/" + p); c == "/" || strings.Contains(p, "..") {
				return nil, fmt.Errorf("manifest.json: bad path %q", p)
			}
		}
		for _, t := range m.RepoTags {
			if _, err := store.Normalize(t); err != nil {
				return nil, fmt.Errorf("manifest.json: %v", err)
			}
		}
	}
	return ms, nil
}

// ParseOCIIndex parses an OCI layout's index.json as load needs it: only
// image and index entries, sha256 digests.
func ParseOCIIndex(data []byte) (*v1.IndexManifest, error) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("index.json: %v", err)
	}
	if len(im.Manifests) == 0 {
		return nil, errors.New("index.json: no images")
	}
	for _, d := range im.Manifests {
		if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 {
			return nil, fmt.Errorf("index.json: bad digest %q", d.Digest)
		}
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			return nil, fmt.Errorf("index.json: unsupported media type %q", d.MediaType)
		}
	}
	return im, nil
}

// Loaded is one image Load stored.
type Loaded struct {
	Names  []string // full names; none for an untagged image
	Digest v1.Hash  // manifest (or index) digest
	ID     v1.Hash  // config digest (index digest for an index)
}

// Load reads a docker or OCI archive (plain, gzip or zstd; detected) in
// one pass: every file goes into the store as a verified blob (layers
// checked for hostile entries), then the images are validated and named.
// On any error nothing it added stays in the store.
func Load(s *store.Store, r io.Reader) ([]Loaded, error) {
	unlock, err := s.Lock(false)
	if err != nil {
		return nil, err
	}
	var added []v1.Hash
	out, err := load(s, r, &added)
	unlock()
	// Blobs no image references (docker's legacy json/VERSION files, or
	// everything on failure) are dropped again.
	s.DropUnreferenced(added)
	return out, err
}

type loader struct {
	s       *store.Store
	files   map[string]store.Blob // archive path -> blob
	pending []pendingBlob         // layers still being checked
	small   map[string][]byte     // manifest.json, index.json, ...
	links   map[string]string     // archive path -> target path
	added   *[]v1.Hash
}

type pendingBlob struct {
	name string
	wait func() (store.Blob, error)
}

// settle waits for the layer checks still running and files their
// blobs; the first error in archive order wins.
func (l *loader) settle() error {
	var first error
	for _, p := range l.pending {
		b, err := p.wait()
		if err != nil {
			if first == nil {
				first = fmt.Errorf("archive %s: %w", p.name, err)
			}
			continue
		}
		if b.New {
			*l.added = append(*l.added, b.Digest)
		}
		l.files[p.name] = b
	}
	l.pending = nil
	return first
}

func load(s *store.Store, r io.Reader, added *[]v1.Hash) ([]Loaded, error) {
	l := &loader{s: s, files: map[string]store.Blob{}, small: map[string][]byte{}, links: map[string]string{}, added: added}
	out, err := l.read(r)
	// Every check finished, and its blob accounted for, before returning.
	if err2 := l.settle(); err == nil && err2 != nil {
		return nil, err2
	}
	return out, err
}

func (l *loader) read(r io.Reader) ([]Loaded, error) {
	rc, _, err := store.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if entries == 0 {
				return nil, errors.New("not a docker or OCI archive (not a tar file)")
			}
			if err2 := l.settle(); err2 != nil {
				return nil, err2 // an earlier entry's
			}
			return nil, fmt.Errorf("archive: %v", err)
		}
		entries++
		if err := l.entry(hdr, tr); err != nil {
			if err2 := l.settle(); err2 != nil {
				return nil, err2 // an earlier entry's
			}
			return nil, err
		}
	}
	if err := l.settle(); err != nil {
		return nil, err
	}
	switch {
	case l.small["manifest.json"] != nil:
		return l.docker()
	case l.small["index.json"] != nil:
		return l.oci()
	}
	return nil, errors.New("not a docker or OCI archive (no manifest.json or index.json)")
}

func (l *loader) entry(hdr *tar.Header, tr io.Reader) error {
	n := cleanName(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		l.links[n] = path.Join(path.Dir(n), hdr.Linkname)
		return nil
	case tar.TypeLink:
		l.links[n] = cleanName(hdr.Linkname)
		return nil
	case tar.TypeReg:
	default:
		return nil
	}
	switch n {
	case "manifest.json", "index.json", "oci-layout", "repositories":
		if hdr.Size > 16<<20 {
			return fmt.Errorf("archive: %s too large", n)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		l.small[n] = data
		return nil
	}
	o := store.IngestOptions{Size: hdr.Size, Label: labelOf(n)}
	br := bufio.NewReaderSize(tr, 1<<16)
	head, _ := br.Peek(1)
	// Anything not JSON is a layer to check: a tar in a format without
	// magic must not slip past the hostile-entry check.
	o.Layer = len(head) > 0 && head[0] != '{' && path.Base(n) != "VERSION"
	if hex, ok := strings.CutPrefix(n, "blobs/sha256/"); ok {
		h, err := v1.NewHash("sha256:" + hex)
		if err != nil {
			return fmt.Errorf("archive: bad blob name %q", n)
		}
		o.Digest = &h
		if l.s.HasBlob(h, hdr.Size) {
			o.Layer = false // verified when it came in
		}
	}
	if hdr.Size == 0 {
		o.Layer = false
	}
	if !o.Layer {
		o.Label = "-" // configs and such are not worth a progress line
	}
	// Layers are checked in the background while the archive is read on.
	l.pending = append(l.pending, pendingBlob{n, l.s.IngestAsync(br, o)})
	return nil
}

// blobError says a manifest or index is missing, or why it cannot be read.
func blobError(h v1.Hash, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive has no blob %s", h)
	}
	return err
}

func labelOf(n string) string {
	b := path.Base(n)
	if b == "layer.tar" {
		b = path.Base(path.Dir(n))
	}
	b = strings.TrimSuffix(strings.TrimSuffix(b, ".gz"), ".tar")
	if len(b) > 12 {
		b = b[:12]
	}
	return b
}

func (l *loader) file(p string) (store.Blob, error) {
	p = cleanName(p)
	for i := 0; i < 8; i++ {
		if b, ok := l.files[p]; ok {
			return b, nil
		}
		t, ok := l.links[p]
		if !ok {
			break
		}
		p = t
	}
	return store.Blob{}, fmt.Errorf("archive has no file %q", p)
}

func (l *loader) docker() ([]Loaded, error) {
	ms, err := ParseDockerManifest(l.small["manifest.json"])
	if err != nil {
		return nil, err
	}
	type plan struct {
		img  v1.Image
		tags []string
	}
	var plans []plan
	for _, m := range ms {
		cb, err := l.file(m.Config)
		if err != nil {
			return nil, err
		}
		cfgData, err := l.s.ReadJSONBlob(cb.Digest)
		if err != nil {
			return nil, err
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(cfgData))
		if err != nil {
			return nil, fmt.Errorf("image config %s: %v", m.Config, err)
		}
		if len(cf.RootFS.DiffIDs) != len(m.Layers) {
			return nil, fmt.Errorf("image config %s lists %d layers, manifest.json %d", m.Config, len(cf.RootFS.DiffIDs), len(m.Layers))
		}
		man := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cb.Digest, Size: cb.Size}}
		for i, lp := range m.Layers {
			lb, err := l.file(lp)
			if err != nil {
				return nil, err
			}
			diff := lb.DiffID
			if !lb.Layer {
				diff = lb.Digest // an empty file: not a tar at all
			}
			if diff != cf.RootFS.DiffIDs[i] {
				return nil, fmt.Errorf("layer %s: content digest %s, config says %s: refused", lp, diff, cf.RootFS.DiffIDs[i])
			}
			mt := types.OCILayer
			switch lb.Compression {
			case "":
				mt = types.OCIUncompressedLayer
			case "zstd":
				mt = types.OCILayerZStd
			}
			man.Layers = append(man.Layers, v1.Descriptor{MediaType: mt, Digest: lb.Digest, Size: lb.Size})
		}
		raw, err := json.Marshal(man)
		if err != nil {
			return nil, err
		}
		img, err := l.s.ImageFromManifest(raw)
		if err != nil {
			return nil, err
		}
		plans = append(plans, plan{img, m.RepoTags})
	}
	var out []Loaded
	for _, p := range plans {
		d, err := l.s.Write(p.img, p.tags...)
		if err != nil {
			return out, err
		}
		id, _ := p.img.ConfigName()
		ld := Loaded{Digest: d, ID: id}
		for _, t := range p.tags {
			full, _ := store.Normalize(t)
			ld.Names = append(ld.Names, full)
		}
		out = append(out, ld)
	}
	return out, nil
}

func (l *loader) oci() ([]Loaded, error) {
	im, err := ParseOCIIndex(l.small["index.json"])
	if err != nil {
		return nil, err
	}
	diffs := map[v1.Hash]store.Blob{}
	for _, b := range l.files {
		diffs[b.Digest] = b
	}
	type plan struct {
		img  v1.Image
		idx  v1.ImageIndex
		name string
	}
	var plans []plan
	var checkImage func(d v1.Descriptor) (v1.Image, error)
	checkImage = func(d v1.Descriptor) (v1.Image, error) {
		raw, err := l.s.ReadJSONBlob(d.Digest)
		if err != nil {
			return nil, blobError(d.Digest, err)
		}
		img, err := l.s.ImageFromManifest(raw)
		if err != nil {
			return nil, err
		}
		m, _ := img.Manifest()
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image %s: config %s: %v", d.Digest, m.Config.Digest, err)
		}
		if len(cf.RootFS.DiffIDs) != len(m.Layers) {
			return nil, fmt.Errorf("image %s: config lists %d layers, manifest %d", d.Digest, len(cf.RootFS.DiffIDs), len(m.Layers))
		}
		for i, ld := range m.Layers {
			if !l.s.HasBlob(ld.Digest, ld.Size) {
				return nil, fmt.Errorf("archive has no layer %s", ld.Digest)
			}
			if b, ok := diffs[ld.Digest]; ok && b.Layer && b.DiffID != cf.RootFS.DiffIDs[i] {
				return nil, fmt.Errorf("layer %s: content digest %s, config says %s: refused", ld.Digest, b.DiffID, cf.RootFS.DiffIDs[i])
			}
		}
		return img, nil
	}
	for _, d := range im.Manifests {
		n := d.Annotations[store.RefAnnotation]
		// A bare tag ("latest") names nothing we can store; keep untagged.
		if !strings.ContainsAny(n, "/:") {
			n = ""
		}
		if n != "" {
			if _, err := store.Normalize(n); err != nil {
				return nil, fmt.Errorf("index.json: %v", err)
			}
		}
		if d.MediaType.IsIndex() {
			raw, err := l.s.ReadJSONBlob(d.Digest)
			if err != nil {
				return nil, blobError(d.Digest, err)
			}
			idx, err := l.s.IndexFromManifest(raw)
			if err != nil {
				return nil, err
			}
			cm, _ := idx.IndexManifest()
			for _, c := range cm.Manifests {
				if c.MediaType.IsImage() {
					if _, err := checkImage(c); err != nil {
						return nil, err
					}
				}
			}
			plans = append(plans, plan{idx: idx, name: n})
			continue
		}
		img, err := checkImage(d)
		if err != nil {
			return nil, err
		}
		plans = append(plans, plan{img: img, name: n})
	}
	var out []Loaded
	for _, p := range plans {
		var tags []string
		if p.name != "" {
			tags = []string{p.name}
		}
		var ld Loaded
		if p.idx != nil {
			d, err := l.s.WriteIndex(p.idx, tags...)
			if err != nil {
				return out, err
			}
			ld = Loaded{Digest: d, ID: d}
		} else {
			d, err := l.s.Write(p.img, tags...)
			if err != nil {
				return out, err
			}
			id, _ := p.img.ConfigName()
			ld = Loaded{Digest: d, ID: id}
		}
		if p.name != "" {
			full, _ := store.Normalize(p.name)
			ld.Names = []string{full}
		}
		out = append(out, ld)
	}
	return out, nil
}
