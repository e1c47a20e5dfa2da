package store

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostPlatform is the platform images run on natively here.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]"; "" is the host's.
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return HostPlatform(), nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return *p, nil
}

func (s *Store) imageFor(d v1.Descriptor, ref, platform string) (v1.Image, error) {
	if !d.MediaType.IsIndex() {
		img, err := s.ImageByDigest(d.Digest)
		if err != nil || platform == "" {
			return img, err
		}
		want, err := ParsePlatform(platform)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		if have := cf.Platform(); have == nil || !have.Satisfies(want) {
			return nil, fmt.Errorf("image %s is for %s, not %s", ref, PlatformString(cf.Platform()), PlatformString(&want))
		}
		return img, nil
	}
	idx, err := s.Index(d.Digest)
	if err != nil {
		return nil, err
	}
	want, err := ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	return PickPlatform(idx, want, ref)
}

// PickPlatform chooses want's image from an index; when none matches the
// error lists the platforms the index has.
func PickPlatform(idx v1.ImageIndex, want v1.Platform, ref string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		if m.Platform.Satisfies(want) || (m.Platform.OS == want.OS && m.Platform.Architecture == want.Architecture && want.Variant == "v8" && m.Platform.Variant == "") {
			return idx.Image(m.Digest)
		}
		if m.Platform.OS != "unknown" {
			have = append(have, PlatformString(m.Platform))
		}
	}
	sort.Strings(have)
	return nil, fmt.Errorf("%s has no image for platform %s (it has: %s)", ref, PlatformString(&want), strings.Join(have, ", "))
}

// PlatformString formats a platform as os/arch[/variant].
func PlatformString(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// EntryImage returns the image of an entry (for platform, see Image).
func (s *Store) EntryImage(e Entry, platform string) (v1.Image, error) {
	ref := e.Name
	if ref == "" {
		ref = e.Descriptor.Digest.String()
	}
	return s.imageFor(e.Descriptor, ref, platform)
}
