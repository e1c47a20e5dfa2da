package initproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mounts are made with the fd-based mount API (open_tree, fsopen,
// fsmount, move_mount): every target is an fd resolved inside the rootfs
// by pathrs-lite, so a symlink in the image cannot send a mount outside
// it, and nothing depends on /proc being reachable.

var propagationFlags = map[string]uintptr{
	"": unix.MS_SLAVE | unix.MS_REC, "private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC, "shared": unix.MS_SHARED,
	"rshared": unix.MS_SHARED | unix.MS_REC, "unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

func (in *initProc) setupRootfs() error {
	cfg, s := in.cfg, in.cfg.Spec
	unix.Umask(0) // device nodes and mountpoints get exactly the modes asked for
	prop, ok := propagationFlags[s.Linux.RootfsPropagation]
	if !ok {
		return fmt.Errorf("unknown rootfsPropagation %q", s.Linux.RootfsPropagation)
	}
	// Host mounts must not receive ours: start from slave (or private),
	// never shared, because pivot_root refuses shared mounts.
	first := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if prop&unix.MS_PRIVATE != 0 {
		first = unix.MS_PRIVATE | unix.MS_REC
	}
	if err := unix.Mount("", "/", "", first, ""); err != nil {
		return fmt.Errorf("make / %s: %w", s.Linux.RootfsPropagation, err)
	}
	// The rootfs must be a mount point for pivot_root.
	if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", cfg.Rootfs, err)
	}
	if cfg.NoDev {
		if err := unix.MountSetattr(unix.AT_FDCWD, cfg.Rootfs, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}); err != nil {
			return fmt.Errorf("make rootfs nodev: %w", err)
		}
	}
	root, err := os.OpenFile(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	r := &rootfs{in: in, root: root, userns: s.hasNS(specs.UserNamespace)} // new or joined: no mknod
	for i := range s.Mounts {
		if err := r.mount(&s.Mounts[i]); err != nil {
			return fmt.Errorf("mount %s on %s: %w", s.Mounts[i].Source, s.Mounts[i].Destination, err)
		}
	}
	if err := r.devices(s.Linux.Devices); err != nil {
		return err
	}
	if cfg.Hooks {
		if err := in.waitGo(); err != nil {
			return err
		}
		if err := in.sc.Send(Msg{T: MsgHooks}); err != nil {
			return err
		}
		if _, err := in.sc.Expect(MsgHooked); err != nil {
			return err
		}
		if len(s.Hooks.CreateContainer) > 0 {
			if err := RunHooks(s.Hooks.CreateContainer, in.state(specs.StateCreating)); err != nil {
				return fmt.Errorf("createContainer hook: %w", err)
			}
		}
	}
	if err := in.waitGo(); err != nil {
		return err
	}
	if cfg.NoPivot {
		err = moveRoot(cfg.Rootfs)
	} else {
		err = pivotRoot(cfg.Rootfs)
	}
	if err != nil {
		return err
	}
	if s.Linux.RootfsPropagation != "" && prop != first {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("set rootfsPropagation %s: %w", s.Linux.RootfsPropagation, err)
		}
	}
	return nil
}

// chrootOnly is the root of a container without a mount namespace.
func (in *initProc) chrootOnly() error {
	if err := in.waitGo(); err != nil {
		return err
	}
	if err := unix.Chroot(in.cfg.Rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", in.cfg.Rootfs, err)
	}
	return unix.Chdir("/")
}

// afterRootfs runs inside the new root: sysctls, read-only and masked
// paths, hostname.
func (in *initProc) afterRootfs() error {
	s := in.cfg.Spec
	for k, v := range s.Linux.Sysctl {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, errors.Unwrap(err))
		}
	}
	if s.hasNS(specs.MountNamespace) {
		for _, p := range s.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return fmt.Errorf("readonly path %s: %w", p, err)
			}
		}
		for _, p := range s.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return fmt.Errorf("masked path %s: %w", p, err)
			}
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	return nil
}

type rootfs struct {
	in     *initProc
	root   *os.File
	userns bool
}

// procMountpoints are the places in a procfs a mount may cover: lxcfs's
// files, as runc allows. Anything else there (a symlink in the image can
// send a volume to /proc/sys/kernel, say) would put files of the
// bundle's choosing where the init writes sysctls as host root, or hide
// what the container must see.
var procMountpoints = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/sys/kernel/ns_last_pid": true, "/proc/net/dev": true,
}

// target resolves dest inside the rootfs, creating it (a directory, or an
// empty file when dir is false) if missing, and returns an O_PATH handle.
// A mountpoint inside a procfs is refused (see procMountpoints).
func (r *rootfs) target(dest string, dir bool) (*os.File, error) {
	f, err := r.resolve(dest, dir)
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		f.Close()
		return nil, err
	}
	if clean := filepath.Clean("/" + dest); fs.Type == unix.PROC_SUPER_MAGIC && clean != "/proc" && !procMountpoints[clean] {
		f.Close()
		return nil, fmt.Errorf("%s resolves to inside /proc", dest)
	}
	return f, nil
}

func (r *rootfs) resolve(dest string, dir bool) (*os.File, error) {
	if f, err := pathrs.OpenatInRoot(r.root, dest); err == nil {
		return f, nil
	}
	// pathrs will not create through a dangling symlink (/abs -> /host/dir):
	// resolve the symlinks inside the rootfs first, as runc does, then
	// create what is missing, still resolved in the root by fd.
	if j, err := securejoin.SecureJoin(r.in.cfg.Rootfs, dest); err == nil {
		if rel, err := filepath.Rel(r.in.cfg.Rootfs, j); err == nil && !strings.HasPrefix(rel, "..") {
			dest = "/" + rel
		}
	}
	if dir {
		return pathrs.MkdirAllHandle(r.root, dest, 0o755)
	}
	parent, err := pathrs.MkdirAllHandle(r.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o644)
	if err != nil && err != unix.EEXIST {
		return nil, err
	}
	if err == nil {
		unix.Close(fd)
	}
	return pathrs.OpenatInRoot(r.root, dest)
}

func (r *rootfs) mount(m *specs.Mount) error {
	o, err := parseMountOpts(m.Options)
	if err != nil {
		return err
	}
	if m.Type == "bind" {
		o.bind = true
	}
	if !o.bind && (m.Type == "cgroup" || m.Type == "cgroup2") {
		if err := r.in.waitGo(); err != nil {
			return err
		}
		return r.mountCgroup(m, o)
	}
	var mfd int
	isDir := true
	if o.bind {
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(r.in.cfg.Bundle, src)
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		isDir = st.IsDir()
		flags := uint(unix.OPEN_TREE_CLONE | unix.O_CLOEXEC)
		if o.rbind {
			flags |= unix.AT_RECURSIVE
		}
		if mfd, err = unix.OpenTree(unix.AT_FDCWD, src, flags); err != nil {
			return fmt.Errorf("open_tree: %w", err)
		}
		if r.in.cfg.NoDev {
			o.recSet |= unix.MOUNT_ATTR_NODEV
			o.recClr &^= unix.MOUNT_ATTR_NODEV
		}
	} else {
		if l := r.in.cfg.Spec.Linux.MountLabel; l != "" {
			o.data = withMountLabel(o.data, m.Type, l, selinuxEnabled())
		}
		if mfd, err = newFS(m.Type, m.Source, o, o.attrSet); err != nil {
			return err
		}
		o.attrSet, o.attrClr = 0, 0 // fsmount applied them
	}
	defer unix.Close(mfd)
	if err := setAttrs(mfd, o); err != nil {
		return err
	}
	t, err := r.target(m.Destination, isDir)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	defer t.Close()
	if err := unix.MoveMount(mfd, "", int(t.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// labelledFS are the filesystems whose files get linux.mountLabel: those
// made for the container, as under runc (proc, sysfs and cgroup keep the
// kernel's labels).
var labelledFS = map[string]bool{"tmpfs": true, "mqueue": true, "devpts": true, "shm": true}

// withMountLabel adds SELinux's context= option for the spec's mountLabel
// to the options of a new filesystem of type fstype. Without SELinux on the
// host the label means nothing and is ignored, as runc does; an explicit
// context option in the spec's own wins.
func withMountLabel(data []string, fstype, label string, selinux bool) []string {
	if label == "" || !selinux || !labelledFS[fstype] {
		return data
	}
	for _, d := range data {
		if strings.HasPrefix(d, "context=") {
			return data
		}
	}
	return append(slices.Clip(data), "context="+label)
}

// selinuxEnabled reports whether SELinux is on: its filesystem is mounted.
func selinuxEnabled() bool {
	var fs unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &fs) == nil && fs.Type == unix.SELINUX_MAGIC
}

// newFS makes a detached mount of a new filesystem instance.
func newFS(fstype, source string, o *mountOpts, attrs uint64) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fs)
	if source != "" {
		if err := unix.FsconfigSetString(fs, "source", source); err != nil {
			return -1, fmt.Errorf("source: %w", err)
		}
	}
	for _, f := range o.sbFlags {
		if err := unix.FsconfigSetFlag(fs, f); err != nil {
			return -1, fmt.Errorf("option %s: %w", f, err)
		}
	}
	for _, d := range o.data {
		k, v, hasV := strings.Cut(d, "=")
		if hasV {
			err = unix.FsconfigSetString(fs, k, v)
		} else {
			err = unix.FsconfigSetFlag(fs, k)
		}
		if err != nil {
			return -1, fmt.Errorf("option %s: %w", d, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("create %s: %w", fstype, err)
	}
	mfd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", fstype, err)
	}
	return mfd, nil
}

// setAttrs applies attributes and propagation to a detached mount.
func setAttrs(mfd int, o *mountOpts) error {
	if o.attrSet != 0 || o.attrClr != 0 || (o.propagation != 0 && !o.recProp) {
		a := unix.MountAttr{Attr_set: o.attrSet, Attr_clr: o.attrClr}
		if !o.recProp {
			a.Propagation = o.propagation
		}
		if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &a); err != nil {
			return fmt.Errorf("mount_setattr: %w", err)
		}
	}
	if o.recSet != 0 || o.recClr != 0 || (o.propagation != 0 && o.recProp) {
		a := unix.MountAttr{Attr_set: o.recSet, Attr_clr: o.recClr}
		if o.recProp {
			a.Propagation = o.propagation
		}
		if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &a); err != nil {
			return fmt.Errorf("mount_setattr (recursive): %w", err)
		}
	}
	return nil
}

// mountCgroup gives the container its cgroups: on a v1 host a tmpfs with
// one mount per hierarchy (a cgroup filesystem rooted at the container's
// cgroup with a cgroup namespace, else a bind of its directory), on a v2
// host the cgroup2 filesystem.
func (r *rootfs) mountCgroup(m *specs.Mount, o *mountOpts) error {
	ro := o.attrSet&unix.MOUNT_ATTR_RDONLY != 0
	cgns := r.in.cfg.Spec.newNS(specs.CgroupNamespace) || r.in.cfg.CgroupNS
	hier, err := hostCgroups()
	if err != nil {
		return err
	}
	if len(hier) == 1 && hier[0].Type == "cgroup2" && hier[0].Name == "" || m.Type == "cgroup2" {
		for _, h := range hier {
			if h.Type == "cgroup2" {
				return r.cgroupOne(m.Destination, h, cgns, o.attrSet)
			}
		}
		return errors.New("no cgroup2 hierarchy on the host")
	}
	tmp := &mountOpts{data: []string{"mode=755"}}
	mfd, err := newFS("tmpfs", "cgroup", tmp, o.attrSet&^unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return err
	}
	t, err := r.target(m.Destination, true)
	if err != nil {
		unix.Close(mfd)
		return err
	}
	err = unix.MoveMount(mfd, "", int(t.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	t.Close()
	unix.Close(mfd)
	if err != nil {
		return err
	}
	for _, h := range hier {
		if h.Name == "" {
			continue
		}
		d := filepath.Join(m.Destination, h.Name)
		if h.Link != "" {
			dir, err := pathrs.OpenatInRoot(r.root, m.Destination)
			if err != nil {
				return err
			}
			err = unix.Symlinkat(h.Link, int(dir.Fd()), h.Name)
			dir.Close()
			if err != nil && err != unix.EEXIST {
				return err
			}
			continue
		}
		if h.Type != "cgroup" {
			continue // the empty v2 "unified" of a hybrid host: nothing to show
		}
		if err := r.cgroupOne(d, h, cgns, o.attrSet); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	if ro {
		mt, err := pathrs.OpenatInRoot(r.root, m.Destination)
		if err != nil {
			return err
		}
		defer mt.Close()
		return unix.MountSetattr(int(mt.Fd()), "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	}
	return nil
}

func (r *rootfs) cgroupOne(dest string, h cgMount, cgns bool, attrs uint64) error {
	var mfd int
	var err error
	if cgns {
		o := &mountOpts{}
		if h.Options != "" {
			o.data = strings.Split(h.Options, ",")
		}
		mfd, err = newFS(h.Type, "cgroup", o, attrs)
	} else {
		mfd, err = unix.OpenTree(unix.AT_FDCWD, filepath.Join("/sys/fs/cgroup", h.Name, h.Path), unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
		if err == nil && attrs != 0 {
			err = unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attrs})
		}
	}
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	t, err := r.target(dest, true)
	if err != nil {
		return err
	}
	defer t.Close()
	return unix.MoveMount(mfd, "", int(t.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one;
	// detaching it then leaves the new root alone, with no put_old dir.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot is --no-pivot: for roots pivot_root refuses (ramfs/initramfs).
func moveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

func remountReadonlyRoot() error {
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	return nil
}

// readonlyPath stacks a read-only clone of p (and what is mounted below
// it) on top of p. A symlink is followed, as under runc: we are in the
// container's root, it cannot lead out, and skipping it would leave
// what it names writable.
func readonlyPath(p string) error {
	mfd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	defer unix.Close(mfd)
	if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE,
		&unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}); err != nil {
		return err
	}
	return unix.MoveMount(mfd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS)
}

// maskPath hides p: a directory under an empty read-only tmpfs, anything
// else under /dev/null.
func maskPath(p string) error {
	// A symlink is followed, as under runc: we are in the container's
	// root, and skipping it would leave what it names unmasked.
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	var mfd int
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mfd, err = newFS("tmpfs", "tmpfs", &mountOpts{data: []string{"size=0", "mode=755"}}, unix.MOUNT_ATTR_RDONLY)
	} else {
		mfd, err = unix.OpenTree(unix.AT_FDCWD, "/dev/null", unix.OPEN_TREE_CLONE|unix.O_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// /dev/null is in the container's /dev, which something sharing it
		// may have swapped for a link or another file since we made it
		// (CVE-2025-31133): bind only the null device itself, checked on
		// the very mount that is bound.
		var nst unix.Stat_t
		if err := unix.Fstat(mfd, &nst); err != nil {
			return err
		}
		if nst.Mode&unix.S_IFMT != unix.S_IFCHR || nst.Rdev != unix.Mkdev(1, 3) {
			return errors.New("/dev/null is not the null device")
		}
	}
	return unix.MoveMount(mfd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS)
}

// bindConsole makes /dev/console the container's pty slave.
func bindConsole(slave string) error {
	fd, err := unix.Open("/dev/console", unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("/dev/console: %w", err)
	}
	unix.Close(fd)
	mfd, err := unix.OpenTree(unix.AT_FDCWD, slave, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("/dev/console: %w", err)
	}
	defer unix.Close(mfd)
	return unix.MoveMount(mfd, "", unix.AT_FDCWD, "/dev/console", unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// hostCgroups lists the host's cgroup hierarchies under /sys/fs/cgroup
// (and the symlinks between them) with our cgroup in each, read before
// pivot_root while the host's /proc is still ours.
func hostCgroups() ([]cgMount, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{} // controllers (as in /proc/self/cgroup) -> path
	for _, l := range strings.Split(string(self), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			paths[f[1]] = f[2]
		}
	}
	var out []cgMount
	for _, l := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(sf) < 3 || (sf[0] != "cgroup" && sf[0] != "cgroup2") {
			continue
		}
		mp := pf[4]
		if filepath.Dir(mp) != "/sys/fs/cgroup" && mp != "/sys/fs/cgroup" {
			continue
		}
		h := cgMount{Name: filepath.Base(mp), Type: sf[0]}
		if mp == "/sys/fs/cgroup" {
			h.Name = ""
		}
		var ctrl []string
		for _, o := range strings.Split(sf[2], ",") {
			switch o {
			case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "nsdelegate", "memory_recursiveprot", "favordynmods":
				continue
			}
			if strings.HasPrefix(o, "release_agent=") {
				continue
			}
			ctrl = append(ctrl, o)
		}
		h.Options = strings.Join(ctrl, ",")
		key := h.Options
		if sf[0] == "cgroup2" {
			key, h.Options = "", ""
		}
		var keep []string
		for _, c := range strings.Split(key, ",") {
			if c != "xattr" && c != "noprefix" && !strings.HasPrefix(c, "clone_children") {
				keep = append(keep, c)
			}
		}
		h.Path = paths[strings.Join(keep, ",")]
		out = append(out, h)
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		if e.Type()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(filepath.Join("/sys/fs/cgroup", e.Name())); err == nil {
				out = append(out, cgMount{Name: e.Name(), Link: t})
			}
		}
	}
	return out, nil
}
