package layer

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Every file system operation of this package is done relative to a
// directory fd with a single plain name (no "/" or ".."), and every
// directory is opened with O_NOFOLLOW: a symlink met on the way is an
// error, so nothing is ever read or written through one, whatever the
// layer (or a container's upper dir) holds.

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// errSymlinkParent and errNotDirParent say why a parent could not be used.
var (
	errSymlinkParent = errors.New("a parent directory is a symlink")
	errNotDirParent  = errors.New("a parent is not a directory")
)

// openDir opens name in dirfd as a directory without following a symlink.
func openDir(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, dirFlags, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			var st unix.Stat_t
			if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return -1, errSymlinkParent
			}
			return -1, errNotDirParent
		}
		return fd, err
	}
}

// dirCache resolves directories under a root fd component by component,
// keeping the fds of the last path walked: tar streams list a directory's
// entries together, so most lookups reuse the chain without a syscall.
type dirCache struct {
	root int
	// inRoot follows symlinks met on the way as if dir were "/" (openat2
	// RESOLVE_IN_ROOT): the container's view, never leaving the root.
	inRoot bool
	names  []string // names[i] is the i-th component of the cached path
	fds    []int    // fds[i] is the directory names[:i+1]
}

// dir returns an fd (owned by the cache) of the directory comps under the
// root, making missing directories (mode 0755) when mkdir is set; made
// reports each one made.
func (c *dirCache) dir(comps []string, mkdir bool, made func(rel string)) (int, error) {
	k := 0
	for k < len(comps) && k < len(c.names) && comps[k] == c.names[k] {
		k++
	}
	c.truncate(k)
	for i := k; i < len(comps); i++ {
		parent := c.root
		if i > 0 {
			parent = c.fds[i-1]
		}
		fd, err := openDir(parent, comps[i])
		if err == errSymlinkParent && c.inRoot {
			fd, err = openInRoot(c.root, strings.Join(comps[:i+1], "/"))
		}
		if err == unix.ENOENT && mkdir {
			if err = unix.Mkdirat(parent, comps[i], 0o755); err == nil || err == unix.EEXIST {
				if err == nil && made != nil {
					made(strings.Join(comps[:i+1], "/"))
				}
				fd, err = openDir(parent, comps[i])
			}
		}
		if err != nil {
			return -1, fmt.Errorf("%s: %w", strings.Join(comps[:i+1], "/"), err)
		}
		c.names = append(c.names, comps[i])
		c.fds = append(c.fds, fd)
	}
	if len(comps) == 0 {
		return c.root, nil
	}
	return c.fds[len(comps)-1], nil
}

// openInRoot opens the directory rel below root following symlinks with
// root as "/" (absolute targets and ".." stay inside it).
func openInRoot(root int, rel string) (int, error) {
	how := unix.OpenHow{Flags: dirFlags &^ unix.O_NOFOLLOW, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(root, rel, &how)
		// EAGAIN: a rename elsewhere raced the ".." check; retry a little.
		if err == unix.EINTR || (err == unix.EAGAIN && try < 16) {
			continue
		}
		if err == unix.ENOENT {
			// A dangling symlink: nothing is made through it.
			return -1, fmt.Errorf("symlink leads nowhere: %w", errSymlinkParent)
		}
		if err == unix.ENOTDIR {
			return -1, errNotDirParent
		}
		return fd, err
	}
}

// truncate keeps the first n cached levels.
func (c *dirCache) truncate(n int) {
	for i := n; i < len(c.fds); i++ {
		unix.Close(c.fds[i])
	}
	c.names, c.fds = c.names[:n], c.fds[:n]
}

// forget drops the cached fds of comps and everything below it, because
// that path was removed or replaced.
func (c *dirCache) forget(comps []string) {
	if len(comps) > len(c.names) {
		return
	}
	for i, n := range comps {
		if c.names[i] != n {
			return
		}
	}
	c.truncate(len(comps) - 1)
}

func (c *dirCache) close() { c.truncate(0) }

// removeAllAt removes name in dirfd and, for a directory, all it holds,
// without following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := openDir(dirfd, name)
	if err != nil {
		return err
	}
	err = emptyDirAt(fd, "", nil)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

// emptyDirAt removes what dirfd holds except the paths keep reports (rel
// is the path of dirfd in keep's terms); a kept directory is descended and
// emptied the same way.
func emptyDirAt(dirfd int, rel string, keep func(string) bool) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := n
		if rel != "" {
			p = rel + "/" + n
		}
		if keep != nil && keep(p) {
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			fd, err := openDir(dirfd, n)
			if err != nil {
				return err
			}
			err = emptyDirAt(fd, p, keep)
			unix.Close(fd)
			if err != nil {
				return err
			}
			continue
		}
		if err := removeAllAt(dirfd, n); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists a directory fd (without "." and ".."), leaving the fd
// open for the caller.
func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// procPath names an entry of a directory fd for the calls that have no *at
// form (l*xattr): the kernel resolves the fd's magic link to the directory
// already opened safely, and the l* calls do not follow the last name.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// listXattrs returns the extended attributes of an fd (fd >= 0) or of a
// path, not following a final symlink.
func listXattrs(fd int, path string) (map[string][]byte, error) {
	list := func(b []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(path, b)
	}
	get := func(name string, b []byte) (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, name, b)
		}
		return unix.Lgetxattr(path, name, b)
	}
	sz, err := list(nil)
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
		return nil, nil
	}
	if err != nil || sz == 0 {
		return nil, err
	}
	buf := make([]byte, sz)
	for {
		sz, err = list(buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*2)
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 256)
		for {
			n, err := get(name, val)
			if err == unix.ERANGE {
				n, err = get(name, nil)
				if err != nil {
					return nil, err
				}
				val = make([]byte, n+1)
				continue
			}
			if err == unix.ENODATA {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %w", name, err)
			}
			out[name] = val[:n]
			break
		}
	}
	return out, nil
}
