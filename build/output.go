package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/layer"
)

// output is a parsed --output.
type output struct {
	typ  string // "" (the store), oci, docker, local
	dest string
}

func parseOutput(s string) (output, error) {
	var o output
	if s == "" {
		return o, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if o.typ == "" && o.dest == "" && !strings.Contains(s, "=") {
				// `--output DIR` is docker's shorthand for type=local.
				return output{typ: "local", dest: s}, nil
			}
			return o, fmt.Errorf("--output %q: want type=oci|docker|local,dest=PATH", s)
		}
		switch k {
		case "type":
			o.typ = v
		case "dest":
			o.dest = v
		default:
			return o, fmt.Errorf("--output: unknown key %q", k)
		}
	}
	switch o.typ {
	case "oci", "docker", "local", "image":
	default:
		return o, fmt.Errorf("--output type=%s: want oci, docker or local", o.typ)
	}
	if o.typ == "image" {
		o.typ = ""
	}
	if o.typ != "" && o.dest == "" {
		return o, fmt.Errorf("--output type=%s needs dest=PATH", o.typ)
	}
	return o, nil
}

func makeIndex(plats []v1.Platform, imgs []v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		p := plats[i]
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// writeOutput exports the result instead of storing it.
func writeOutput(o output, opts Options, plats []v1.Platform, imgs []v1.Image) (v1.Hash, error) {
	switch o.typ {
	case "local":
		if len(imgs) > 1 {
			for i, img := range imgs {
				d := filepath.Join(o.dest, strings.ReplaceAll(platformString(plats[i]), "/", "_"))
				if err := exportRootfs(img, d, true); err != nil {
					return v1.Hash{}, err
				}
			}
			return imgs[0].Digest()
		}
		if err := exportRootfs(imgs[0], o.dest, true); err != nil {
			return v1.Hash{}, err
		}
		return imgs[0].Digest()
	case "docker":
		if len(imgs) > 1 {
			return v1.Hash{}, errors.New("--output type=docker holds one platform: use type=oci for several")
		}
		tag := "berth-build:latest"
		if len(opts.Tags) > 0 {
			tag = opts.Tags[0]
		}
		ref, err := name.ParseReference(tag)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("tag %q: %w", tag, err)
		}
		refs := map[name.Reference]v1.Image{ref: imgs[0]}
		for _, t := range opts.Tags[min(1, len(opts.Tags)):] {
			r, err := name.ParseReference(t)
			if err != nil {
				return v1.Hash{}, fmt.Errorf("tag %q: %w", t, err)
			}
			refs[r] = imgs[0]
		}
		if err := writeAtomically(o.dest, func(f *os.File) error { return tarball.MultiRefWrite(refs, f) }); err != nil {
			return v1.Hash{}, err
		}
		return imgs[0].ConfigName()
	case "oci":
		dir, err := os.MkdirTemp(filepath.Dir(o.dest), ".oci-")
		if err != nil {
			return v1.Hash{}, err
		}
		defer os.RemoveAll(dir)
		lp, err := layout.Write(dir, empty.Index)
		if err != nil {
			return v1.Hash{}, err
		}
		var id v1.Hash
		var annots map[string]string
		if len(opts.Tags) > 0 {
			annots = map[string]string{"org.opencontainers.image.ref.name": opts.Tags[0]}
		}
		if len(imgs) == 1 {
			if err := lp.AppendImage(imgs[0], layout.WithAnnotations(annots)); err != nil {
				return v1.Hash{}, err
			}
			id, err = imgs[0].Digest()
		} else {
			idx, _ := makeIndex(plats, imgs)
			if err := lp.AppendIndex(idx, layout.WithAnnotations(annots)); err != nil {
				return v1.Hash{}, err
			}
			id, err = idx.Digest()
		}
		if err != nil {
			return v1.Hash{}, err
		}
		return id, writeAtomically(o.dest, func(f *os.File) error { return tarDir(dir, f) })
	}
	return v1.Hash{}, fmt.Errorf("--output type=%s: not supported", o.typ)
}

func writeAtomically(dest string, fn func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(dest), ".out-")
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), dest)
}

// tarDir writes dir's tree (an OCI layout) as a tar, sorted for stable bytes.
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// exportRootfs writes the image's final filesystem as plain files. The
// layers are merged in a fresh directory first: applied onto dest itself,
// their whiteouts (".wh.x", an opaque root) would remove the user's own
// files there as if a lower layer had made them. host is for files left
// on the host (--output): no devices, owners, set-id bits or capabilities
// from the image, which could hand a host user a setuid-root shell.
func exportRootfs(img v1.Image, dest string, host bool) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dest, ".berth-output-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		_, err = layer.Apply(tmp, rc, layer.Options{NoDevices: os.Geteuid() != 0, HostCopy: host})
		rc.Close()
		if err != nil {
			return fmt.Errorf("--output type=local: %w", err)
		}
	}
	if err := unix.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := mergeInto(tmp, dest, filepath.Base(tmp)); err != nil {
		return fmt.Errorf("--output type=local: %w", err)
	}
	return nil
}

// mergeInto moves the entries of src into dst (but not skip): a directory
// both have is merged, anything else of src's replaces dst's non-directory
// of that name; a directory of dst's in the way of a file is an error, not
// deleted. Entries are looked at with lstat, so no symlink (of the image's,
// or of the user's in dst) is followed.
func mergeInto(src, dst, skip string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if n == skip {
			continue
		}
		s, d := filepath.Join(src, n), filepath.Join(dst, n)
		var dstat unix.Stat_t
		derr := unix.Lstat(d, &dstat)
		dIsDir := derr == nil && dstat.Mode&unix.S_IFMT == unix.S_IFDIR
		if !e.IsDir() {
			if dIsDir {
				return fmt.Errorf("%s is a directory, the image has a file there", d)
			}
			if err := os.Rename(s, d); err != nil {
				return err
			}
			continue
		}
		// Reading, emptying and moving a directory need u+rwx even when
		// the image made it read-only (without root); its mode is put back.
		var st unix.Stat_t
		if err := unix.Lstat(s, &st); err != nil {
			return err
		}
		if err := unix.Chmod(s, st.Mode&0o7777|0o700); err != nil {
			return err
		}
		if dIsDir {
			if err := mergeInto(s, d, ""); err != nil {
				return err
			}
			continue
		}
		if derr == nil {
			if err := os.Remove(d); err != nil {
				return err
			}
		}
		if err := os.Rename(s, d); err != nil {
			return err
		}
		if err := unix.Chmod(d, st.Mode&0o7777); err != nil {
			return err
		}
	}
	return nil
}
