package engine

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts lowers (lowest first, as Store.Snapshots gives them)
// with upper and work at target. Short layer lists use mount(2); long ones
// would exceed mount(2)'s one-page option limit, so they go through the
// new mount API, which takes one lowerdir+ per layer. A volatile overlay
// never syncs its upper dir (unmounting it is then cheap): for --rm
// containers, whose upper dir is thrown away anyway.
func mountOverlay(lowers []string, upper, work, target string, volatile bool) error {
	if len(lowers) == 0 {
		return errors.New("overlay: image has no layers")
	}
	top := make([]string, len(lowers))
	for i, l := range lowers {
		if strings.ContainsAny(l, ":,") {
			return fmt.Errorf("overlay: layer path %q contains ':' or ','", l)
		}
		top[len(lowers)-1-i] = l
	}
	data := "lowerdir=" + strings.Join(top, ":") + ",upperdir=" + upper + ",workdir=" + work
	if volatile {
		data += ",volatile"
	}
	if len(data) < os.Getpagesize()-1 {
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount overlay at %s: %w", target, err)
		}
		return nil
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("overlay: fsopen: %w (kernel too old for %d layers?)", err, len(lowers))
	}
	defer unix.Close(fd)
	set := func(k, v string) error {
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("overlay: %s=%s: %w", k, v, err)
		}
		return nil
	}
	for _, l := range top {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if err := set("upperdir", upper); err != nil {
		return err
	}
	if err := set("workdir", work); err != nil {
		return err
	}
	if volatile {
		if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil {
			return fmt.Errorf("overlay: volatile: %w", err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("overlay: create: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("overlay: fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("overlay: move mount to %s: %w", target, err)
	}
	return nil
}

// isMountpoint reports whether dir is the root of a mount, by comparing
// its device with its parent's (overlay mounts get their own device).
func isMountpoint(dir string) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(dir+"/..", &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}

// unmountAll unmounts everything stacked at dir, detaching when busy.
func unmountAll(dir string) error {
	for i := 0; i < 16 && isMountpoint(dir); i++ {
		if err := unix.Unmount(dir, 0); err != nil {
			if err == unix.EBUSY {
				err = unix.Unmount(dir, unix.MNT_DETACH)
			}
			if err != nil && err != unix.EINVAL && err != unix.ENOENT {
				return fmt.Errorf("unmount %s: %w", dir, err)
			}
		}
	}
	return nil
}

// initLayerDir is the container's init layer: empty files and directories
// where berth mounts things (/etc/hosts, volumes, ...) that the image
// lacks. It sits on top of the image's layers, as docker's -init layer, so
// the runtime never has to create mount points in the upper dir: diff and
// commit show only what the container itself changed.
func (e *Engine) initLayerDir(id string) string { return filepath.Join(e.dir(id), "init") }

// lowerEntry finds p (relative, no leading /) in the topmost lower that
// has it, without following symlinks.
func lowerEntry(lowers []string, p string) (os.FileInfo, bool) {
	for i := len(lowers) - 1; i >= 0; i-- {
		if st, err := os.Lstat(filepath.Join(lowers[i], p)); err == nil {
			return st, true
		}
	}
	return nil, false
}

// makeInitLayer creates the mount point stubs (path -> is a directory)
// that the image does not have. A stub whose path crosses a symlink in the
// image is left out: the runtime resolves that inside the rootfs.
func makeInitLayer(dir string, lowers []string, stubs map[string]bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for p, isDir := range stubs {
		rel := strings.TrimPrefix(path.Clean("/"+p), "/")
		if rel == "" {
			continue
		}
		parts := strings.Split(rel, "/")
		ok := true
		for i := range parts {
			st, found := lowerEntry(lowers, strings.Join(parts[:i+1], "/"))
			if !found {
				break // from here on nothing exists in the image
			}
			last := i == len(parts)-1
			if st.Mode()&os.ModeSymlink != 0 || (!last && !st.IsDir()) || last {
				ok = false // crosses a symlink, or the image has the path
				break
			}
		}
		if !ok {
			continue
		}
		full := filepath.Join(dir, rel)
		if isDir {
			if err := os.MkdirAll(full, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(full, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// mountStubs lists the mount points of a container: the default mounts,
// the /etc files and every volume, bind and tmpfs.
func mountStubs(mps []MountPoint) map[string]bool {
	stubs := map[string]bool{"/proc": true, "/sys": true, "/dev": true,
		"/etc/hosts": false, "/etc/hostname": false, "/etc/resolv.conf": false}
	for _, m := range mps {
		isDir := true
		if m.Type == "bind" {
			if st, err := os.Stat(m.Source); err == nil && !st.IsDir() {
				isDir = false
			}
		}
		stubs[m.Destination] = isDir
	}
	return stubs
}
