package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefAnnotation names an index.json entry, as skopeo, podman and umoci do.
const RefAnnotation = "org.opencontainers.image.ref.name"

// ErrNotFound is returned when a reference names no stored image.
var ErrNotFound = errors.New("image not known")

// Entry is one index.json entry: a named (or dangling, Name "") image or
// multi-platform index.
type Entry struct {
	Name       string // full name, e.g. docker.io/library/busybox:latest
	Descriptor v1.Descriptor
}

// Normalize turns a user's reference into the full name the store keeps:
// "busybox" -> "docker.io/library/busybox:latest". A digest reference
// keeps its digest ("repo@sha256:...").
func Normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("invalid reference %q: %v", ref, err)
	}
	repo := r.Context()
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	full := reg + "/" + repo.RepositoryStr()
	switch t := r.(type) {
	case name.Tag:
		return full + ":" + t.TagStr(), nil
	case name.Digest:
		return full + "@" + t.DigestStr(), nil
	}
	return full, nil
}

// Familiar shortens a full name as docker prints it:
// docker.io/library/busybox:latest -> busybox:latest.
func Familiar(full string) string {
	if rest, ok := strings.CutPrefix(full, "docker.io/"); ok {
		if r, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(strings.SplitN(r, ":", 2)[0], "/") {
			return r
		}
		return rest
	}
	return full
}

// SplitName splits a full name into repository and tag.
func SplitName(full string) (repo, tag string) {
	i := strings.LastIndex(full, ":")
	if i < 0 || strings.Contains(full[i:], "/") {
		return full, ""
	}
	return full[:i], full[i+1:]
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(s.indexPath())
	if err != nil {
		return nil, fmt.Errorf("store index: %w", err)
	}
	defer f.Close()
	im, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, fmt.Errorf("store index %s: %w", s.indexPath(), err)
	}
	return im, nil
}

func (s *Store) writeIndexFile(im *v1.IndexManifest) error {
	data, err := json.Marshal(im)
	if err != nil {
		return err
	}
	return s.writeFileAtomic(s.indexPath(), data)
}

// updateIndex rewrites index.json with f's changes, under the store lock,
// atomically: readers see the old or the new file, never a mix.
func (s *Store) updateIndex(f func(im *v1.IndexManifest) error) error {
	unlock, err := s.flock("lock", true)
	if err != nil {
		return err
	}
	defer unlock()
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := f(im); err != nil {
		return err
	}
	return s.writeIndexFile(im)
}

// List returns the index.json entries, named ones sorted by name first.
func (s *Store) List() ([]Entry, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range im.Manifests {
		out = append(out, Entry{Name: d.Annotations[RefAnnotation], Descriptor: d})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Name == "") != (out[j].Name == "") {
			return out[j].Name == ""
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// ID returns an entry's image ID: the config digest of an image (as
// docker), the index digest of a multi-platform index.
func (s *Store) ID(d v1.Descriptor) (v1.Hash, error) {
	if d.MediaType.IsIndex() {
		return d.Digest, nil
	}
	m, err := s.Manifest(d.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	return m.Config.Digest, nil
}

// Manifest reads and parses a stored image manifest.
func (s *Store) Manifest(h v1.Hash) (*v1.Manifest, error) {
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	defer f.Close()
	return v1.ParseManifest(f)
}

// Resolve finds the entry a reference names: a full or short name, a
// name@digest, a manifest digest, an image ID ("sha256:<hex>" or a hex
// prefix of at least 4 characters).
func (s *Store) Resolve(ref string) (Entry, error) {
	entries, err := s.List()
	if err != nil {
		return Entry{}, err
	}
	if e, ok := s.resolveIn(entries, ref); ok {
		return e, nil
	}
	// A full digest of a manifest kept only as a child of an index (the
	// image a container of a multi-platform image runs).
	if h, err := v1.NewHash(ref); err == nil && s.HasBlob(h, -1) {
		if m, err := s.Manifest(h); err == nil && m.Config.Digest.Hex != "" {
			mt := m.MediaType
			if mt == "" {
				mt = types.OCIManifestSchema1
			}
			fi, _ := os.Stat(s.blobPath(h))
			return Entry{Descriptor: v1.Descriptor{MediaType: mt, Digest: h, Size: fi.Size()}}, nil
		}
	}
	return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

func (s *Store) resolveIn(entries []Entry, ref string) (Entry, bool) {
	if full, err := Normalize(ref); err == nil {
		if repo, dg, ok := strings.Cut(full, "@"); ok {
			var any *Entry
			for i, e := range entries {
				if e.Descriptor.Digest.String() != dg {
					continue
				}
				if r, _ := SplitName(e.Name); r == repo {
					return e, true
				}
				if any == nil {
					any = &entries[i]
				}
			}
			if any != nil {
				return *any, true
			}
			return Entry{}, false
		}
		for _, e := range entries {
			if e.Name == full {
				return e, true
			}
		}
	}
	// An ID or manifest digest, or a prefix of either, unless ambiguous.
	hexPart := strings.TrimPrefix(ref, "sha256:")
	if len(hexPart) < 4 || len(hexPart) > 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return Entry{}, false
	}
	var found []Entry
	seen := map[v1.Hash]bool{}
	for _, e := range entries {
		id, err := s.ID(e.Descriptor)
		if err != nil {
			continue
		}
		if (strings.HasPrefix(id.Hex, hexPart) || strings.HasPrefix(e.Descriptor.Digest.Hex, hexPart)) && !seen[e.Descriptor.Digest] {
			seen[e.Descriptor.Digest] = true
			found = append(found, e)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return Entry{}, false
}

// Tag points name at the image ref resolves to.
func (s *Store) Tag(ref, newName string) error {
	full, err := Normalize(newName)
	if err != nil {
		return err
	}
	if strings.Contains(full, "@") {
		return fmt.Errorf("cannot tag with a digest reference: %s", newName)
	}
	// Resolve under the index lock: resolved before it, the image could be
	// removed and its blobs collected before the new name points at it.
	return s.updateIndex(func(im *v1.IndexManifest) error {
		e, err := s.Resolve(ref)
		if err != nil {
			return err
		}
		setTag(im, e.Descriptor, full)
		return nil
	})
}

// setTag points full at d in im: a previous holder of the name that has
// no other entry stays as a dangling entry (docker's <none> image), and a
// dangling entry of d is replaced.
func setTag(im *v1.IndexManifest, d v1.Descriptor, full string) {
	var out []v1.Descriptor
	var orphaned []v1.Descriptor
	for _, m := range im.Manifests {
		n := m.Annotations[RefAnnotation]
		if n == full {
			if m.Digest != d.Digest {
				orphaned = append(orphaned, m)
			}
			continue
		}
		if n == "" && m.Digest == d.Digest {
			continue
		}
		out = append(out, m)
	}
	nd := d
	nd.Annotations = map[string]string{RefAnnotation: full}

	out = append(out, nd)
	for _, o := range orphaned {
		if !hasDigest(out, o.Digest) {
			o.Annotations = nil
			out = append(out, o)
		}
	}
	im.Manifests = out
}

func hasDigest(ds []v1.Descriptor, h v1.Hash) bool {
	for _, d := range ds {
		if d.Digest == h {
			return true
		}
	}
	return false
}

// addDangling keeps d in im without a name unless some entry has it.
func addDangling(im *v1.IndexManifest, d v1.Descriptor) {
	if hasDigest(im.Manifests, d.Digest) {
		return
	}
	d.Annotations = nil
	d.Platform = nil
	im.Manifests = append(im.Manifests, d)
}

func isImageType(mt types.MediaType) bool { return mt.IsImage() || mt.IsIndex() }
