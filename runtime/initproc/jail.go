package initproc

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// JailExe is the berth binary's name inside a Jail.
const JailExe = "init"

// Jail returns a directory that holds nothing but the berth binary exe,
// as JailExe, read-only: a detached tmpfs, whose ".." is itself. An init
// exec'd into a running container starts there (its root, or its cwd
// under nsenter) instead of in the host's root: from birth it is in the
// container's pid namespace, where a container process allowed to
// ptrace it could follow /proc/<pid>/root or cwd until the init has
// entered the container's mount namespace. Nor is it exec'd through a
// /proc the container could cover.
func Jail(exe *os.File) (*os.File, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "mode", "0711"); err != nil {
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	mfd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	jail := os.NewFile(uintptr(mfd), "exec-jail")
	fd, err := unix.Openat(mfd, JailExe, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o755)
	if err != nil {
		jail.Close()
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	// The sealed binary (a read-only bind) mounted over the file; kernels
	// that do not mount into a detached tree get a copy.
	if err := unix.MoveMount(int(exe.Fd()), "", mfd, JailExe, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		err = copyExe(fd, exe)
		if err != nil {
			unix.Close(fd)
			jail.Close()
			return nil, fmt.Errorf("exec jail: %w", err)
		}
	}
	unix.Close(fd)
	if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		jail.Close()
		return nil, fmt.Errorf("exec jail: %w", err)
	}
	return jail, nil
}

func copyExe(dst int, exe *os.File) error {
	src, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(exe.Fd())))
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(fdWriter(dst), src)
	return err
}

type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) { return unix.Write(int(w), p) }

// EnterJail makes jail the root and cwd of the calling thread, which must
// be locked and end without running other goroutines' code (a fork
// thread): its fs_struct is unshared first, the rest of the process keeps
// its root.
func EnterJail(jail *os.File) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare fs: %w", err)
	}
	if err := unix.Fchdir(int(jail.Fd())); err != nil {
		return err
	}
	return unix.Chroot(".")
}
