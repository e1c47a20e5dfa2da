package engine

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// execUser is a resolved -u USER[:GROUP]: ids, supplementary groups and the
// home directory (for $HOME).
type execUser struct {
	UID, GID uint32
	Groups   []uint32
	Home     string
}

// openInRootfs opens path inside rootfs, resolving every symlink as if
// rootfs were / (openat2 RESOLVE_IN_ROOT), so an image can never point
// berth at a host file.
func openInRootfs(rootfs, path string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(rootfs, path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// Only regular files are reopened for reading: a FIFO or device in an
	// image must not make berth block or touch hardware.
	st, err := h.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
}

// parseID parses a uid or gid. 4294967295 is (uid_t)-1, which setresuid
// and setgroups take as "leave it unchanged": a container "running as" it
// (-u 4294967295, or an image's user with that id) stayed root.
func parseID(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err == nil && n == 1<<32-1 {
		return 0, fmt.Errorf("id %s is out of range", s)
	}
	return n, err
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// readColon reads a colon-separated database (passwd, group) from the
// rootfs; a missing file is an empty database, as for scratch images.
func readColon(rootfs, path string, minFields int) ([][]string, error) {
	f, err := openInRootfs(rootfs, path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < minFields {
			continue
		}
		rows = append(rows, fields)
	}
	return rows, sc.Err()
}

func readPasswd(rootfs string) []passwdEntry {
	rows, _ := readColon(rootfs, "/etc/passwd", 7)
	var out []passwdEntry
	for _, f := range rows {
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	}
	return out
}

func readGroup(rootfs string) []groupEntry {
	rows, _ := readColon(rootfs, "/etc/group", 4)
	var out []groupEntry
	for _, f := range rows {
		gid, err := parseID(f[2])
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: uint32(gid), members: members})
	}
	return out
}

// resolveUser turns USER[:GROUP] (names or numbers) into ids using the
// image's /etc/passwd and /etc/group, as docker does: a numeric user not
// in passwd is fine (gid 0 unless given), a name that is not there is an
// error; supplementary groups are the groups listing the user, plus extra.
func resolveUser(rootfs, spec string, extra []string) (*execUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	u := &execUser{Home: "/"}
	passwd := readPasswd(rootfs)
	var found *passwdEntry
	if n, err := parseID(userPart); err == nil {
		u.UID = uint32(n)
		for i := range passwd {
			if passwd[i].uid == u.UID {
				found = &passwd[i]
				break
			}
		}
	} else {
		for i := range passwd {
			if passwd[i].name == userPart {
				found = &passwd[i]
				break
			}
		}
		if found == nil {
			return nil, fmt.Errorf("unable to find user %s: no matching entries in the image's /etc/passwd", userPart)
		}
		u.UID = found.uid
	}
	if found != nil {
		u.GID = found.gid
		if found.home != "" {
			u.Home = found.home
		}
	} else if u.UID == 0 {
		u.Home = "/root"
	}
	groups := readGroup(rootfs)
	lookupGroup := func(g string) (uint32, error) {
		if n, err := parseID(g); err == nil {
			return uint32(n), nil
		}
		for _, e := range groups {
			if e.name == g {
				return e.gid, nil
			}
		}
		return 0, fmt.Errorf("unable to find group %s: no matching entries in the image's /etc/group", g)
	}
	if hasGroup && groupPart != "" {
		gid, err := lookupGroup(groupPart)
		if err != nil {
			return nil, err
		}
		u.GID = gid
	}
	seen := map[uint32]bool{u.GID: true}
	// Supplementary groups from /etc/group apply only when the group was not
	// forced, as with initgroups in docker.
	if found != nil && !hasGroup {
		for _, e := range groups {
			for _, m := range e.members {
				if m == found.name && !seen[e.gid] {
					seen[e.gid] = true
					u.Groups = append(u.Groups, e.gid)
				}
			}
		}
	}
	for _, g := range extra {
		gid, err := lookupGroup(g)
		if err != nil {
			return nil, err
		}
		if !seen[gid] {
			seen[gid] = true
			u.Groups = append(u.Groups, gid)
		}
	}
	return u, nil
}
