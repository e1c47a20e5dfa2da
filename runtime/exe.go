package runtime

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedExe returns a handle on the berth binary that nothing can write
// through, to re-execute the init from (CVE-2019-5736: a container process
// that reaches /proc/<init>/exe must not get a writable host binary).
//
// The cheap way is a detached read-only bind mount of the binary
// (open_tree + mount_setattr: two syscalls, no copy, nothing to clean up;
// it vanishes with its last user). Reopening /proc/<pid>/exe for writing
// then fails with EROFS. Without the privilege for that (no CAP_SYS_ADMIN)
// fall back to a sealed memfd copy, which costs a copy of the binary.
func sealedExe() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if err == nil {
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV})
		if err == nil {
			return os.NewFile(uintptr(fd), "berth-exe"), nil
		}
		unix.Close(fd)
	}
	return memfdExe()
}

func memfdExe() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
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
