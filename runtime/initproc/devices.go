package initproc

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func devMode(perm uint32) *os.FileMode { m := os.FileMode(perm); return &m }

// defaultDevices every container gets, as runc gives them.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: devMode(0o666)},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5, FileMode: devMode(0o666)},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7, FileMode: devMode(0o666)},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8, FileMode: devMode(0o666)},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: devMode(0o666)},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: devMode(0o666)},
}

// devLinks are the /dev symlinks of a container.
var devLinks = [][2]string{
	{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

// devices makes the default devices and linux.devices, each node created
// in a directory resolved inside the rootfs (mknod, or a bind of the
// host's node inside a user namespace, where mknod is not allowed).
func (r *rootfs) devices(extra []specs.LinuxDevice) error {
	want := map[string]bool{}
	for _, d := range extra {
		want[filepath.Clean(d.Path)] = true
	}
	all := make([]specs.LinuxDevice, 0, len(defaultDevices)+len(extra))
	for _, d := range defaultDevices {
		if !want[d.Path] {
			all = append(all, d)
		}
	}
	all = append(all, extra...)
	// Each directory is resolved in the rootfs once, not once per node
	// (pathrs checks every resolution through procfs: ~8 syscalls).
	dirs := map[string]*os.File{}
	defer func() {
		for _, f := range dirs {
			f.Close()
		}
	}()
	for i := range all {
		if err := r.device(&all[i], dirs); err != nil {
			return fmt.Errorf("device %s: %w", all[i].Path, err)
		}
	}
	dev := dirs["/dev"]
	if dev == nil {
		var err error
		if dev, err = pathrs.MkdirAllHandle(r.root, "/dev", 0o755); err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
		dirs["/dev"] = dev
	}
	links := devLinks
	var st unix.Stat_t
	if unix.Fstatat(int(dev.Fd()), "pts/ptmx", &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		links = append(links, [2]string{"ptmx", "pts/ptmx"})
		// A ptmx node from the image would bypass the container's devpts.
		if unix.Fstatat(int(dev.Fd()), "ptmx", &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			_ = unix.Unlinkat(int(dev.Fd()), "ptmx", 0)
		}
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[1], int(dev.Fd()), l[0]); err != nil && err != unix.EEXIST {
			return fmt.Errorf("/dev/%s: %w", l[0], err)
		}
	}
	return nil
}

// device makes one node; dirs caches the directories resolved so far.
func (r *rootfs) device(d *specs.LinuxDevice, dirs map[string]*os.File) error {
	if !filepath.IsAbs(d.Path) {
		return fmt.Errorf("path is not absolute")
	}
	parent := filepath.Clean(filepath.Dir(d.Path))
	dir := dirs[parent]
	if dir == nil {
		var err error
		if dir, err = r.target(parent, true); err != nil {
			return err
		}
		dirs[parent] = dir
	}
	dfd, name := int(dir.Fd()), filepath.Base(d.Path)
	if r.userns {
		fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		unix.Close(fd)
		t, err := pathrs.OpenatInRoot(r.root, d.Path)
		if err != nil {
			return err
		}
		defer t.Close()
		mfd, err := unix.OpenTree(unix.AT_FDCWD, d.Path, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("host node: %w", err)
		}
		defer unix.Close(mfd)
		return unix.MoveMount(mfd, "", int(t.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	}
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	// Replace whatever the image has there (never following a symlink).
	_ = unix.Unlinkat(dfd, name, 0)
	if err := unix.Mknodat(dfd, name, typ|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(dfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	return nil
}
