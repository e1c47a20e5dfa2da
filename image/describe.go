package image

import (
	"time"

	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Summary is one row of `berth images`.
type Summary struct {
	Repository string
	Tag        string
	Digest     string // manifest (or index) digest
	ID         string // config digest, sha256:<hex>
	Created    time.Time
	Size       int64 // unpacked size: the image's layers uncompressed
	Name       string
	Dangling   bool
	Platform   string
}

// List summarizes every stored image entry, named ones first.
func List(s *store.Store) ([]Summary, error) {
	entries, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, e := range entries {
		sum := Summary{Digest: e.Descriptor.Digest.String(), Name: e.Name, Dangling: e.Name == ""}
		sum.Repository, sum.Tag = "<none>", "<none>"
		if e.Name != "" {
			sum.Repository, sum.Tag = store.SplitName(store.Familiar(e.Name))
		}
		if id, err := s.ID(e.Descriptor); err == nil {
			sum.ID = id.String()
		}
		var img v1.Image
		if !e.Descriptor.MediaType.IsIndex() {
			img, err = s.ImageByDigest(e.Descriptor.Digest)
		}
		if err == nil && img != nil {
			if cf, err := img.ConfigFile(); err == nil {
				sum.Created = cf.Created.Time
				sum.Platform = store.PlatformString(cf.Platform())
			}
			sum.Size = ImageSize(s, img)
		}
		if e.Descriptor.MediaType.IsIndex() {
			sum.Platform = "multi"
			sum.Size = indexSize(s, e.Descriptor.Digest)
		}
		out = append(out, sum)
	}
	return out, nil
}

// ImageSize is an image's unpacked size as docker and podman show it: the
// sum of its layers' uncompressed sizes (the compressed size for a layer
// stored before the store recorded them).
func ImageSize(s *store.Store, img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		return 0
	}
	var n int64
	for _, l := range m.Layers {
		n += layerSize(s, l)
	}
	return n
}

// layerSize is a layer's unpacked size when s (if any) knows it, else
// its compressed size.
func layerSize(s *store.Store, l v1.Descriptor) int64 {
	if s != nil {
		if u, ok := s.UnpackedSize(l.Digest); ok {
			return u
		}
	}
	return l.Size
}

func indexSize(s *store.Store, h v1.Hash) int64 {
	idx, err := s.Index(h)
	if err != nil {
		return 0
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return 0
	}
	var n int64
	for _, c := range im.Manifests {
		if img, err := idx.Image(c.Digest); err == nil {
			n += ImageSize(s, img)
		}
	}
	return n
}

// Inspect is `berth image inspect` output, shaped like docker's.
type Inspect struct {
	Id           string
	RepoTags     []string
	RepoDigests  []string
	Parent       string
	Comment      string
	Created      time.Time
	Author       string
	Config       v1.Config
	Architecture string
	Variant      string `json:",omitempty"`
	Os           string
	Size         int64
	RootFS       struct {
		Type   string
		Layers []string
	}
	Digest    string
	MediaType string
	Manifest  v1.Manifest
}

// InspectImage describes the image ref resolves to (for platform).
func InspectImage(s *store.Store, ref, platform string) (*Inspect, error) {
	e, err := s.Resolve(ref)
	if err != nil {
		return nil, err
	}
	img, err := s.EntryImage(e, platform)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	id, _ := img.ConfigName()
	in := &Inspect{
		Id: id.String(), Created: cf.Created.Time, Author: cf.Author, Config: cf.Config,
		Architecture: cf.Architecture, Variant: cf.Variant, Os: cf.OS, Size: ImageSize(s, img),
		Digest: e.Descriptor.Digest.String(), MediaType: string(m.MediaType), Manifest: *m,
		RepoTags: []string{}, RepoDigests: []string{},
	}
	if len(cf.History) > 0 {
		in.Comment = cf.History[len(cf.History)-1].Comment
	}
	in.RootFS.Type = cf.RootFS.Type
	for _, d := range cf.RootFS.DiffIDs {
		in.RootFS.Layers = append(in.RootFS.Layers, d.String())
	}
	entries, _ := s.List()
	seenRepo := map[string]bool{}
	for _, x := range entries {
		if x.Descriptor.Digest != e.Descriptor.Digest || x.Name == "" {
			continue
		}
		in.RepoTags = append(in.RepoTags, store.Familiar(x.Name))
		repo, _ := store.SplitName(store.Familiar(x.Name))
		if !seenRepo[repo] {
			seenRepo[repo] = true
			in.RepoDigests = append(in.RepoDigests, repo+"@"+e.Descriptor.Digest.String())
		}
	}
	return in, nil
}

// HistoryEntry is one row of `berth history`.
type HistoryEntry struct {
	ID        string // the image ID on the newest entry, <missing> below (as docker for pulled images)
	Created   time.Time
	CreatedBy string
	Size      int64
	Comment   string
}

// History lists the steps that made the image, newest first, with each
// layer's compressed size.
func History(img v1.Image) ([]HistoryEntry, error) { return history(nil, img) }

// HistoryIn is History for an image in s, with each layer's unpacked
// size as docker history shows it (when s recorded it).
func HistoryIn(s *store.Store, img v1.Image) ([]HistoryEntry, error) { return history(s, img) }

func history(s *store.Store, img v1.Image) ([]HistoryEntry, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	li := 0
	for _, h := range cf.History {
		e := HistoryEntry{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer && li < len(m.Layers) {
			e.Size = layerSize(s, m.Layers[li])
			li++
		}
		out = append(out, e)
	}
	if len(cf.History) == 0 {
		for _, l := range m.Layers {
			out = append(out, HistoryEntry{ID: "<missing>", Size: layerSize(s, l)})
		}
	}
	if len(out) > 0 {
		out[len(out)-1].ID = m.Config.Digest.String()
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
