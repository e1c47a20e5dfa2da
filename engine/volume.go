package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Volume is a named volume: a directory under volumes/<name>/_data.
type Volume struct {
	Name       string
	Driver     string
	Mountpoint string
	CreatedAt  time.Time
	Labels     map[string]string `json:",omitempty"`
	Anonymous  bool              `json:",omitempty"`
	// Seeded is set once the volume got the image's content at its first
	// mount (docker copies it only into a new, empty volume).
	Seeded bool `json:",omitempty"`
}

// MountPoint is one volume, bind or tmpfs of a container, as inspect shows.
type MountPoint struct {
	Type        string // bind, volume, tmpfs
	Name        string `json:",omitempty"`
	Source      string `json:",omitempty"`
	Destination string
	RW          bool
	Options     []string `json:",omitempty"` // tmpfs options
	NoCopy      bool     `json:",omitempty"`
}

var volNameRe = nameRe

func (e *Engine) volumeDir(name string) string { return filepath.Join(e.volumesDir(), name) }

func (e *Engine) lockVolumes() (func(), error) {
	return lockFile(filepath.Join(e.volumesDir(), ".lock"))
}

// VolumeCreate makes a named volume (an existing one is returned as is).
func (e *Engine) VolumeCreate(name string, labels map[string]string) (*Volume, error) {
	unlock, err := e.lockVolumes()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return e.volumeCreateLocked(name, labels, false)
}

func (e *Engine) volumeCreateLocked(name string, labels map[string]string, anon bool) (*Volume, error) {
	if name == "" {
		name = newID()
		anon = true
	}
	if !volNameRe.MatchString(name) {
		return nil, fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	if v, err := e.VolumeInspect(name); err == nil {
		return v, nil
	}
	d := e.volumeDir(name)
	if err := os.MkdirAll(filepath.Join(d, "_data"), 0o755); err != nil {
		return nil, err
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(d, "_data"),
		CreatedAt: time.Now().UTC(), Labels: labels, Anonymous: anon}
	return v, e.saveVolume(v)
}

func (e *Engine) saveVolume(v *Volume) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	p := filepath.Join(e.volumeDir(v.Name), "volume.json")
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// VolumeInspect returns the named volume.
func (e *Engine) VolumeInspect(name string) (*Volume, error) {
	if !volNameRe.MatchString(name) {
		return nil, fmt.Errorf("invalid volume name %q", name)
	}
	b, err := os.ReadFile(filepath.Join(e.volumeDir(name), "volume.json"))
	if err != nil {
		return nil, fmt.Errorf("no such volume: %s", name)
	}
	v := &Volume{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("volume %s: corrupt record: %w", name, err)
	}
	return v, nil
}

// Volumes lists every volume by name.
func (e *Engine) Volumes() ([]*Volume, error) {
	ents, err := os.ReadDir(e.volumesDir())
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, ent := range ents {
		if v, err := e.VolumeInspect(ent.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// volumeUsers returns the containers whose mounts use volume name.
func (e *Engine) volumeUsers(name string) []string {
	// Records as on disk: the volumes lock is held, and container locks
	// are taken before it elsewhere.
	all, _ := e.listRecords()
	var users []string
	for _, c := range all {
		for _, m := range c.Mounts() {
			if m.Type == "volume" && m.Name == name {
				users = append(users, c.Name)
			}
		}
	}
	return users
}

// VolumeRemove deletes a volume no container uses (any with force).
func (e *Engine) VolumeRemove(name string, force bool) error {
	unlock, err := e.lockVolumes()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := e.VolumeInspect(name); err != nil {
		return err
	}
	if users := e.volumeUsers(name); len(users) > 0 && !force {
		return fmt.Errorf("volume %s is in use by container %s", name, strings.Join(users, ", "))
	}
	return os.RemoveAll(e.volumeDir(name))
}

// VolumePrune removes every volume no container uses; returns their names.
func (e *Engine) VolumePrune() ([]string, error) {
	vols, err := e.Volumes()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vols {
		if err := e.VolumeRemove(v.Name, false); err == nil {
			removed = append(removed, v.Name)
		}
	}
	return removed, nil
}

// parseMounts turns -v, --mount, --tmpfs and the image's VOLUMEs into
// mount points, creating named (and anonymous) volumes as docker does at
// create time.
func (e *Engine) parseMounts(o *Options, imageVolumes map[string]struct{}) ([]MountPoint, error) {
	var mps []MountPoint
	dests := map[string]bool{}
	add := func(m MountPoint) error {
		if !path.IsAbs(m.Destination) || path.Clean(m.Destination) == "/" {
			return fmt.Errorf("invalid mount destination %q: must be an absolute path other than /", m.Destination)
		}
		m.Destination = path.Clean(m.Destination)
		if dests[m.Destination] {
			return fmt.Errorf("duplicate mount point: %s", m.Destination)
		}
		dests[m.Destination] = true
		mps = append(mps, m)
		return nil
	}
	for _, v := range o.Volumes {
		parts := strings.Split(v, ":")
		var m MountPoint
		m.RW = true
		switch len(parts) {
		case 1:
			m = MountPoint{Type: "volume", Destination: parts[0], RW: true}
		case 2, 3:
			src := parts[0]
			m.Destination = parts[1]
			if len(parts) == 3 {
				for _, opt := range strings.Split(parts[2], ",") {
					switch opt {
					case "ro":
						m.RW = false
					case "rw", "z", "Z", "rprivate", "private", "nocopy":
						m.NoCopy = m.NoCopy || opt == "nocopy"
					default:
						return nil, fmt.Errorf("invalid volume option %q in -v %s: want ro or rw", opt, v)
					}
				}
			}
			if filepath.IsAbs(src) {
				m.Type, m.Source = "bind", filepath.Clean(src)
			} else if strings.HasPrefix(src, ".") {
				return nil, fmt.Errorf("-v %s: a bind mount source must be an absolute path", v)
			} else {
				m.Type, m.Name = "volume", src
			}
		default:
			return nil, fmt.Errorf("invalid volume specification %q: want SRC:DST[:ro]", v)
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, spec := range o.Mounts {
		m, err := parseMountFlag(spec)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, t := range o.Tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		m := MountPoint{Type: "tmpfs", Destination: dst, RW: true, Options: []string{"noexec", "nosuid", "nodev"}}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	// --volumes-from NAME[:ro|rw]: NAME's volumes and binds, where this
	// container has nothing of its own.
	for _, vf := range o.VolumesFrom {
		name, mode, _ := strings.Cut(vf, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return nil, fmt.Errorf("invalid --volumes-from %q: want NAME[:ro|rw]", vf)
		}
		other, err := e.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("--volumes-from %s: %w", vf, err)
		}
		for _, m := range other.MountPoints {
			if m.Type == "tmpfs" || dests[m.Destination] {
				continue
			}
			switch mode {
			case "ro":
				m.RW = false
			case "rw":
				m.RW = true
			}
			if m.Type == "volume" {
				m.NoCopy = true // filled already, by its first user
			}
			if err := add(m); err != nil {
				return nil, err
			}
		}
	}
	var imgVols []string
	for d := range imageVolumes {
		imgVols = append(imgVols, d)
	}
	sort.Strings(imgVols)
	for _, d := range imgVols {
		if dests[path.Clean(d)] {
			continue
		}
		if err := add(MountPoint{Type: "volume", Destination: d, RW: true}); err != nil {
			return nil, err
		}
	}
	// Bind sources must exist; -v creates a missing host directory, as
	// docker does, --mount does not.
	for i := range mps {
		m := &mps[i]
		if m.Type == "bind" {
			if _, err := os.Stat(m.Source); err != nil {
				if !os.IsNotExist(err) {
					return nil, err
				}
				if m.NoCopy { // --mount marks its binds with NoCopy (see parseMountFlag)
					return nil, fmt.Errorf("bind source path does not exist: %s", m.Source)
				}
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, err
				}
			}
		}
	}
	unlock, err := e.lockVolumes()
	if err != nil {
		return nil, err
	}
	defer unlock()
	for i := range mps {
		m := &mps[i]
		if m.Type != "volume" {
			continue
		}
		v, err := e.volumeCreateLocked(m.Name, nil, m.Name == "")
		if err != nil {
			return nil, err
		}
		m.Name, m.Source = v.Name, v.Mountpoint
	}
	return mps, nil
}

// parseMountFlag reads --mount type=bind|volume|tmpfs,source=,target=,readonly,...
func parseMountFlag(spec string) (MountPoint, error) {
	m := MountPoint{Type: "volume", RW: true}
	var tmpfsOpts []string
	for _, kv := range strings.Split(spec, ",") {
		k, v, hasV := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Destination = v
		case "readonly", "ro":
			m.RW = hasV && (v == "false" || v == "0")
		case "volume-nocopy":
			m.NoCopy = !hasV || v == "true"
		case "tmpfs-size":
			tmpfsOpts = append(tmpfsOpts, "size="+v)
		case "tmpfs-mode":
			tmpfsOpts = append(tmpfsOpts, "mode="+v)
		case "bind-propagation", "consistency":
		default:
			return m, fmt.Errorf("invalid --mount field %q in %q", k, spec)
		}
	}
	if m.Destination == "" {
		return m, fmt.Errorf("--mount %s: target is required", spec)
	}
	switch m.Type {
	case "bind":
		if !filepath.IsAbs(m.Source) {
			return m, fmt.Errorf("--mount %s: bind source must be an absolute path", spec)
		}
		m.Source = filepath.Clean(m.Source)
		m.NoCopy = true
	case "volume":
		m.Name, m.Source = m.Source, ""
	case "tmpfs":
		if m.Source != "" {
			return m, fmt.Errorf("--mount %s: tmpfs takes no source", spec)
		}
		m.Options = append([]string{"nosuid", "nodev"}, tmpfsOpts...)
	default:
		return m, fmt.Errorf("--mount %s: type must be bind, volume or tmpfs", spec)
	}
	return m, nil
}

// Mounts returns the container's mount points.
func (c *Container) Mounts() []MountPoint { return c.MountPoints }

// specMounts turns mount points into OCI mounts, seeding each new named
// volume with the image's content at its destination first.
func (e *Engine) specMounts(c *Container, rootfs string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range c.MountPoints {
		switch m.Type {
		case "tmpfs":
			out = append(out, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: m.Options})
			continue
		case "volume":
			if err := e.seedVolume(m, rootfs); err != nil {
				return nil, err
			}
		}
		opts := []string{"rbind", "rprivate"}
		if !m.RW {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return out, nil
}

// seedVolume copies the image's files at m.Destination into a volume the
// first time it is mounted, if it is still empty.
func (e *Engine) seedVolume(m MountPoint, rootfs string) error {
	unlock, err := e.lockVolumes()
	if err != nil {
		return err
	}
	defer unlock()
	v, err := e.VolumeInspect(m.Name)
	if err != nil {
		return err
	}
	if v.Seeded {
		return nil
	}
	if !m.NoCopy {
		ents, err := os.ReadDir(v.Mountpoint)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			src, err := securejoin.SecureJoin(rootfs, m.Destination)
			if err != nil {
				return err
			}
			if st, err := os.Lstat(src); err == nil && st.IsDir() {
				if err := copyTree(src, v.Mountpoint); err != nil {
					return fmt.Errorf("seeding volume %s from the image's %s: %w", v.Name, m.Destination, err)
				}
			}
		}
	}
	v.Seeded = true
	return e.saveVolume(v)
}

// copyTree copies the contents of directory src into existing directory
// dst, keeping types, modes, owners and times; it never follows symlinks.
func copyTree(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := copyMeta(dst, st); err != nil {
		return err
	}
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		t := filepath.Join(dst, rel)
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(t, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		case mode&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, t); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(p, t); err != nil {
				return err
			}
		default:
			sys := fi.Sys().(*syscall.Stat_t)
			if err := unix.Mknod(t, sys.Mode, int(sys.Rdev)); err != nil {
				return err
			}
		}
		return copyMeta(t, fi)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyMeta gives t the owner, mode and times of fi (symlinks: owner only).
func copyMeta(t string, fi os.FileInfo) error {
	sys := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(t, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	if err := unix.Chmod(t, sys.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: sys.Atim.Sec, Nsec: sys.Atim.Nsec}, {Sec: sys.Mtim.Sec, Nsec: sys.Mtim.Nsec}}
	return unix.UtimesNanoAt(unix.AT_FDCWD, t, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// VolumeInUse reports whether a container's record names the volume.
func (e *Engine) VolumeInUse(name string) bool { return len(e.volumeUsers(name)) > 0 }
