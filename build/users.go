package build

import (
	"fmt"
	"strconv"
	"strings"
)

// parseID parses a numeric uid or gid. Out of uid_t's range (or -1,
// "unchanged" to chown) it is no id: it would be truncated, 1<<32 to root,
// so a USER or --chown that reads as unprivileged would act as root.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a uid/gid", s)
	}
	return int(n), nil
}

// lookupID finds name in an /etc/passwd- or /etc/group-style file of the
// view and returns its id (field 3) and, for passwd, the primary gid.
func lookupID(v *fsView, file, name string) (int, int, bool) {
	if v == nil {
		return 0, 0, false
	}
	data, err := v.ReadFile(file)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := parseID(f[2])
		if err != nil {
			continue
		}
		g := -1
		if len(f) > 3 {
			if n, err := parseID(f[3]); err == nil {
				g = n
			}
		}
		return id, g, true
	}
	return 0, 0, false
}

// resolveChown turns --chown=user[:group] into ids, names looked up in
// the stage's /etc/passwd and /etc/group. A lone user gives the group of
// the same id (numeric) or name, as Docker documents.
func resolveChown(spec string, v *fsView) (int, int, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, err := parseID(u)
	if err != nil {
		id, _, ok := lookupID(v, "etc/passwd", u)
		if !ok {
			return 0, 0, fmt.Errorf("--chown=%s: no user %q in the image's /etc/passwd", spec, u)
		}
		uid = id
	}
	if !hasGroup {
		if _, err := parseID(u); err == nil {
			return uid, uid, nil
		}
		if gid, _, ok := lookupID(v, "etc/group", u); ok {
			return uid, gid, nil
		}
		if _, pg, ok := lookupID(v, "etc/passwd", u); ok && pg >= 0 {
			return uid, pg, nil
		}
		return uid, uid, nil
	}
	gid, err := parseID(g)
	if err != nil {
		id, _, ok := lookupID(v, "etc/group", g)
		if !ok {
			return 0, 0, fmt.Errorf("--chown=%s: no group %q in the image's /etc/group", spec, g)
		}
		gid = id
	}
	return uid, gid, nil
}

// resolveUser turns USER user[:group] into the ids a RUN step runs as,
// with the user's supplementary groups from /etc/group.
func resolveUser(spec string, v *fsView) (uid, gid uint32, extra []uint32, err error) {
	if spec == "" {
		return 0, 0, nil, nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	id, err := parseID(u)
	pg := 0
	if err != nil {
		var ok bool
		id, pg, ok = lookupID(v, "etc/passwd", u)
		if !ok {
			return 0, 0, nil, fmt.Errorf("USER %s: no user %q in the image's /etc/passwd", spec, u)
		}
	} else if _, p, ok := lookupUID(v, id); ok {
		pg = p
	}
	if pg < 0 {
		pg = 0
	}
	uid, gid = uint32(id), uint32(pg)
	if hasGroup {
		n, err := parseID(g)
		if err != nil {
			var ok bool
			n, _, ok = lookupID(v, "etc/group", g)
			if !ok {
				return 0, 0, nil, fmt.Errorf("USER %s: no group %q in the image's /etc/group", spec, g)
			}
		}
		gid = uint32(n)
	}
	if data, err := v.ReadFile("etc/group"); err == nil && !hasGroup {
		name := u
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 4 {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name && m != "" {
					if n, err := parseID(f[2]); err == nil && uint32(n) != gid {
						extra = append(extra, uint32(n))
					}
				}
			}
		}
	}
	return uid, gid, extra, nil
}

// lookupUID finds the passwd entry of a numeric uid.
func lookupUID(v *fsView, uid int) (string, int, bool) {
	if v == nil {
		return "", 0, false
	}
	data, err := v.ReadFile("etc/passwd")
	if err != nil {
		return "", 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		if id, err := parseID(f[2]); err == nil && id == uid {
			g, _ := parseID(f[3])
			return f[0], g, true
		}
	}
	return "", 0, false
}
