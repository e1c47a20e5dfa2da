package engine

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/layer"
	"github.com/berthproject/berth/store"
)

// withRootfs runs fn with the container's merged rootfs mounted (mounting
// it for the duration if the container is not running), under its lock
// so that a start cannot race the temporary mount.
func (e *Engine) withRootfs(ref string, fn func(c *Container, rootfs string) error) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	rootfs := filepath.Join(e.dir(c.ID), "rootfs")
	if !isMountpoint(rootfs) {
		d := e.dir(c.ID)
		if err := mountOverlay(e.lowers(c), filepath.Join(d, "upper"), filepath.Join(d, "work"), rootfs, c.Opts.AutoRemove); err != nil {
			return err
		}
		cur, _ := e.loadID(c.ID)
		defer func() {
			if cur == nil || !cur.State.Running {
				unmountAll(rootfs)
			}
		}()
	}
	return fn(c, rootfs)
}

// WriteTar writes the tree at src (a file or directory on the host, or
// under root if root is set) as a tar whose top entry is named name
// (empty: the directory's contents at top level). Symlinks are stored,
// never followed. Every lookup goes through an os.Root, not a host path:
// a running container swapping a directory for a symlink to a host path
// mid-walk cannot make berth list or read what that path holds.
func WriteTar(root, src, name string, w io.Writer) error {
	if root == "" {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		root, src = filepath.Dir(abs), filepath.Base(abs)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	rel := strings.TrimPrefix(filepath.Clean("/"+src), "/")
	if rel == "" {
		rel = "."
	}
	tw := tar.NewWriter(w)
	if err := writeTree(tw, r, rel, name, true); err != nil {
		return err
	}
	return tw.Close()
}

// writeTree writes rel of r (and, for a directory, what it holds, in name
// order) as entry.
func writeTree(tw *tar.Writer, r *os.Root, rel, entry string, top bool) error {
	fi, err := r.Lstat(rel)
	if err != nil {
		return err
	}
	if !(top && entry == "") {
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = r.Readlink(rel); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil // sockets and the like are skipped, as tar does
		}
		hdr.Name = entry
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := r.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, hdr.Size)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	if !fi.IsDir() {
		return nil
	}
	d, err := r.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeTree(tw, r, path.Join(rel, n), path.Join(entry, n), false); err != nil {
			return err
		}
	}
	return nil
}

// pathRoot maps a path in the container to the tree that holds it: the
// source of a volume or bind mounted over it (those are mounted only in
// the container's namespace), else the rootfs; rel is the rest.
func pathRoot(c *Container, rootfs, p string) (root, rel string) {
	p = path.Clean("/" + p)
	best := ""
	root, rel = rootfs, p
	for _, m := range c.MountPoints {
		if m.Type == "tmpfs" || m.Source == "" {
			continue
		}
		if (p == m.Destination || strings.HasPrefix(p, m.Destination+"/")) && len(m.Destination) > len(best) {
			best = m.Destination
			root, rel = m.Source, "/"+strings.TrimPrefix(strings.TrimPrefix(p, m.Destination), "/")
		}
	}
	// A file bound in (-v /host/file:/etc/x) is looked up in its
	// directory: lookups are made in a root, which must be a directory.
	if root != rootfs {
		if st, err := os.Stat(root); err == nil && !st.IsDir() {
			root, rel = filepath.Dir(root), "/"+filepath.Base(root)+strings.TrimSuffix(rel, "/")
		}
	}
	return root, rel
}

// CopyFrom writes path src of the container as a tar whose top entry is
// named name (docker cp CONTAINER:SRC archive semantics: "src/." means its
// contents). A symlink as the last path element is written as the link
// unless follow (docker cp -L, or a src ending in "/"), when its target is
// written under src's name. Targets are resolved in the tree holding src
// (the rootfs or a volume), never out of it.
func (e *Engine) CopyFrom(ref, src, name string, follow bool, w io.Writer) error {
	return e.withRootfs(ref, func(c *Container, rootfs string) error {
		root, rel := pathRoot(c, rootfs, src)
		dir, file := path.Split(rel)
		if follow {
			dir, file = rel, ""
		}
		resolvedDir, err := securejoin.SecureJoin(root, dir)
		if err != nil {
			return err
		}
		inRoot, err := filepath.Rel(root, filepath.Join(resolvedDir, file))
		if err != nil || strings.HasPrefix(inRoot, "..") {
			return fmt.Errorf("cp: %s: path escapes the container", src)
		}
		if _, err := os.Lstat(filepath.Join(root, inRoot)); err != nil {
			return fmt.Errorf("cp: no such file or directory in container %s: %s", c.Name, src)
		}
		return WriteTar(root, inRoot, name, w)
	})
}

// CopyOut extracts path src of the container into host directory dir as
// name (docker cp CONTAINER:SRC DEST; follow as for CopyFrom). What lands
// on the host is a copy the caller owns: no device nodes, no set-id bits
// or security xattrs, and .wh. names are files (a container's
// .wh..wh..opq must not empty dir).
func (e *Engine) CopyOut(ref, src, dir, name string, follow bool) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.CopyFrom(ref, src, name, follow, pw)) }()
	_, err := layer.Apply(dir, pr, layer.Options{HostCopy: true, PlainWhiteouts: true})
	pr.CloseWithError(err)
	return err
}

// StatPath reports whether p exists in the container and is a directory;
// a symlink as p's last element is followed only with follow.
func (e *Engine) StatPath(ref, p string, follow bool) (exists, isDir bool, err error) {
	err = e.withRootfs(ref, func(c *Container, rootfs string) error {
		root, rel := pathRoot(c, rootfs, p)
		dir, file := path.Split(rel)
		flags := unix.AT_SYMLINK_NOFOLLOW
		if follow || file == "" {
			dir, file, flags = rel, "", unix.AT_EMPTY_PATH
		}
		// Through a handle, as CopyTo: a path stat'ed again by name could
		// be a host path by then.
		h, err := pathrs.OpenInRoot(root, dir)
		if err != nil {
			return nil
		}
		defer h.Close()
		var st unix.Stat_t
		if unix.Fstatat(int(h.Fd()), file, &st, flags) != nil {
			return nil
		}
		exists, isDir = true, st.Mode&unix.S_IFMT == unix.S_IFDIR
		return nil
	})
	return
}

// CopyTo extracts tar r into directory dir of the container; entries are
// applied inside the rootfs (or the volume holding dir), never through a
// symlink out of it.
func (e *Engine) CopyTo(ref, dir string, r io.Reader) error {
	return e.withRootfs(ref, func(c *Container, rootfs string) error {
		root, rel := pathRoot(c, rootfs, dir)
		// Resolved and opened in one go, and applied through the fd: a
		// running container can swap a directory on the way for a
		// symlink to a host path between a lookup and a later open by
		// name (a write anywhere on the host as root).
		h, err := pathrs.OpenInRoot(root, rel)
		if err != nil {
			return fmt.Errorf("cp: destination directory %s does not exist in container %s", dir, c.Name)
		}
		defer h.Close()
		target, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("cp: destination directory %s does not exist in container %s", dir, c.Name)
		}
		defer target.Close()
		// A cp tar is not a layer: its .wh. names are files, not
		// whiteouts of what the container has.
		_, err = layer.ApplyAt(target, r, layer.Options{PlainWhiteouts: true})
		return err
	})
}

// Export writes the container's merged filesystem as a tar.
func (e *Engine) Export(ref string, w io.Writer) error {
	return e.withRootfs(ref, func(c *Container, rootfs string) error {
		return layer.Tar(rootfs, w, layer.DiffOptions{})
	})
}

// Diff lists the container's changes against its image.
func (e *Engine) Diff(ref string) ([]layer.Change, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return nil, err
	}
	return layer.Changes(filepath.Join(e.dir(c.ID), "upper"), e.lowers(c)...)
}

// CommitOptions are commit's flags.
type CommitOptions struct {
	Author  string
	Message string
	Pause   bool
	// Config, if set, edits the new image's config (the --change lines,
	// applied by the caller's parser).
	Config func(*v1.Config) error
}

// Commit makes a new image from the container: its image plus one layer
// holding the container's changes, tagged with tags.
func (e *Engine) Commit(ref string, o CommitOptions, tags ...string) (v1.Hash, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	h, err := v1.NewHash(c.ImageDigest)
	if err != nil {
		return v1.Hash{}, err
	}
	base, err := e.Store.ImageByDigest(h)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("commit: the container's image %s is gone: %w", c.Image, err)
	}
	if o.Pause && c.State.Running {
		if e.Runtime.Pause(c.ID) == nil {
			defer e.Runtime.Resume(c.ID)
		}
	}
	tmp, err := os.CreateTemp(e.dir(c.ID), "commit-*.tar")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := layer.Diff(filepath.Join(e.dir(c.ID), "upper"), tmp); err != nil {
		return v1.Hash{}, fmt.Errorf("commit: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return v1.Hash{}, err
	}
	// Ingested as import does: blocked gzip (inflated on all cores at
	// unpack), diffID recorded, entries checked.
	b, err := e.Store.Ingest(tmp, store.IngestOptions{Size: -1, Compress: true, Label: "-"})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("commit: %w", err)
	}
	l, err := e.Store.Layer(b)
	if err != nil {
		return v1.Hash{}, err
	}
	now := time.Now().UTC()
	createdBy := strings.Join(c.Command(), " ")
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, History: v1.History{
		Created: v1.Time{Time: now}, CreatedBy: createdBy, Author: o.Author, Comment: o.Message}})
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: now}
	cf.Author = o.Author
	cf.Container = c.ID
	// docker commit keeps the container's own settings as the new defaults.
	if len(c.Opts.Args) > 0 || c.Opts.Entrypoint != nil {
		if c.Opts.Entrypoint != nil {
			cf.Config.Entrypoint = nil
			if *c.Opts.Entrypoint != "" {
				cf.Config.Entrypoint = []string{*c.Opts.Entrypoint}
			}
			cf.Config.Cmd = nil
		}
		if len(c.Opts.Args) > 0 {
			cf.Config.Cmd = c.Opts.Args
		}
	}
	cf.Config.Env = mergeEnv(cf.Config.Env, c.Opts.Env...)
	if c.Opts.User != "" {
		cf.Config.User = c.Opts.User
	}
	if c.Opts.Workdir != "" {
		cf.Config.WorkingDir = c.Opts.Workdir
	}
	if o.Config != nil {
		if err := o.Config(&cf.Config); err != nil {
			return v1.Hash{}, err
		}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, err
	}
	d, err := e.Store.Write(img, tags...)
	if err != nil {
		return v1.Hash{}, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return d, nil
	}
	return id, nil
}
