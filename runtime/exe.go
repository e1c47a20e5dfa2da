package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime/initbin"
)

// sealedExe returns a handle on the init's binary (the one berth embeds,
// else berth itself) that nothing can write through, to execute the init
// from (CVE-2019-5736: a container process
// that reaches /proc/<init>/exe must not get a writable host binary).
//
// The cheap way is a detached read-only bind mount of the binary
// (open_tree + mount_setattr: two syscalls, no copy, nothing to clean up;
// it vanishes with its last user). Reopening /proc/<pid>/exe for writing
// then fails with EROFS. Without the privilege for that (no CAP_SYS_ADMIN)
// fall back to a sealed memfd copy, which costs a copy of the binary.
func sealedExe() (*os.File, error) {
	src := initExe()
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if err == unix.ENOENT && src != "/proc/self/exe" {
		// Another build's berth removed our cached init just now.
		src = "/proc/self/exe"
		fd, err = unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	}
	if err == nil {
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV})
		if err == nil {
			return os.NewFile(uintptr(fd), "berth-exe"), nil
		}
		unix.Close(fd)
	}
	return memfdExe(src)
}

// initCache is where the embedded init is written once, to be started
// from: a tmpfs on a usual host, root's alone.
var initCache = "/run/berth"

// initExe is the binary the init runs from: the init berth embeds
// (runtime/initbin), written once per build into initCache, or berth's own
// binary when it embeds none or the cache cannot be written.
func initExe() string { return initExeFrom(initbin.Binary()) }

func initExeFrom(data []byte, sum string) string {
	if data == nil || len(sum) < 16 {
		return "/proc/self/exe"
	}
	p := filepath.Join(initCache, "init-"+sum[:16])
	if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Size() == int64(len(data)) && st.Mode().Perm() == 0o555 &&
		rootOnly(st) && rootOnlyDir(initCache) {
		return p
	}
	if err := writeInit(p, data); err != nil {
		return "/proc/self/exe"
	}
	return p
}

// rootOnly reports whether st is root's; rootOnlyDir whether dir is root's
// and writable by nobody else. The cached init runs as root in every
// container: only root may have put it there.
func rootOnly(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Uid == 0
}

func rootOnlyDir(dir string) bool {
	st, err := os.Lstat(dir)
	return err == nil && st.IsDir() && rootOnly(st) && st.Mode().Perm()&0o022 == 0
}

// writeInit writes data at p (temp file + rename, so that nobody starts a
// half-written init) and removes the inits of other builds.
func writeInit(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o711); err != nil {
		return err
	}
	if !rootOnlyDir(filepath.Dir(p)) {
		return fmt.Errorf("%s is not root's alone", filepath.Dir(p))
	}
	tmp := p + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o555)
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(tmp, 0o555) // whatever the umask
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// Other builds' inits go once unused for an hour (a container still
	// running one holds it through its own mount of it); two builds in use
	// side by side (a benchmark of both) keep theirs.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "init-*"))
	for _, o := range old {
		if st, err := os.Stat(o); err == nil && o != p && time.Since(st.ModTime()) > time.Hour {
			os.Remove(o)
		}
	}
	return nil
}

func memfdExe(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-exe")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copying berth binary: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing berth binary: %w", err)
	}
	return f, nil
}
