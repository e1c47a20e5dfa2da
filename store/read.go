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

// ParsePlatform parses "os/arch[/variant]"; "" is the host's. The usual
// other names of an architecture are taken (x86_64, aarch64, i386), and one
// that Go and the OCI spec do not know is an error, not a new platform.
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return HostPlatform(), nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	if err := CheckPlatform(p); err != nil {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	return *p, nil
}

// knownOS and knownArch are Go's GOOS and GOARCH values, which the image
// spec's platform fields take.
var (
	knownOS = map[string]bool{"aix": true, "android": true, "darwin": true, "dragonfly": true, "freebsd": true,
		"illumos": true, "ios": true, "js": true, "linux": true, "netbsd": true, "openbsd": true, "plan9": true,
		"solaris": true, "wasip1": true, "windows": true}
	knownArch = map[string]bool{"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true,
		"mips": true, "mipsle": true, "mips64": true, "mips64le": true, "ppc64": true, "ppc64le": true,
		"riscv64": true, "s390x": true, "sparc64": true, "wasm": true}
	archAliases = map[string]string{"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386"}
)

// CheckPlatform normalises p's architecture name and refuses an operating
// system or architecture that does not exist.
func CheckPlatform(p *v1.Platform) error {
	if a, ok := archAliases[p.Architecture]; ok {
		p.Architecture = a
	}
	if !knownOS[p.OS] {
		return fmt.Errorf("unknown operating system %q", p.OS)
	}
	if !knownArch[p.Architecture] {
		return fmt.Errorf("unknown architecture %q", p.Architecture)
	}
	return nil
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
