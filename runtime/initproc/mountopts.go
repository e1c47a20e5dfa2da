package initproc

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOpts is a config.json mount's options split the way the new mount
// API wants them: per-mount attributes, superblock options, propagation.
type mountOpts struct {
	bind, rbind bool
	attrSet     uint64 // MOUNT_ATTR_* for the mount itself
	attrClr     uint64
	recSet      uint64 // r-prefixed attributes (rro, rnosuid...): whole subtree
	recClr      uint64
	propagation uint64 // MS_PRIVATE, MS_SHARED, MS_SLAVE, MS_UNBINDABLE
	recProp     bool
	sbFlags     []string // superblock flags: sync, dirsync, mand, lazytime
	data        []string // filesystem options (key or key=value)
}

var attrOpts = map[string]struct {
	set, clr uint64
}{
	"ro":            {unix.MOUNT_ATTR_RDONLY, 0},
	"rw":            {0, unix.MOUNT_ATTR_RDONLY},
	"nosuid":        {unix.MOUNT_ATTR_NOSUID, 0},
	"suid":          {0, unix.MOUNT_ATTR_NOSUID},
	"nodev":         {unix.MOUNT_ATTR_NODEV, 0},
	"dev":           {0, unix.MOUNT_ATTR_NODEV},
	"noexec":        {unix.MOUNT_ATTR_NOEXEC, 0},
	"exec":          {0, unix.MOUNT_ATTR_NOEXEC},
	"noatime":       {unix.MOUNT_ATTR_NOATIME, unix.MOUNT_ATTR__ATIME},
	"relatime":      {unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
	"strictatime":   {unix.MOUNT_ATTR_STRICTATIME, unix.MOUNT_ATTR__ATIME},
	"atime":         {0, 0},
	"norelatime":    {0, 0},
	"nostrictatime": {0, 0},
	"nodiratime":    {unix.MOUNT_ATTR_NODIRATIME, 0},
	"diratime":      {0, unix.MOUNT_ATTR_NODIRATIME},
	"nosymfollow":   {unix.MOUNT_ATTR_NOSYMFOLLOW, 0},
	"symfollow":     {0, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

var propOpts = map[string]uint64{
	"private": unix.MS_PRIVATE, "shared": unix.MS_SHARED, "slave": unix.MS_SLAVE, "unbindable": unix.MS_UNBINDABLE,
}

func parseMountOpts(opts []string) (*mountOpts, error) {
	o := &mountOpts{}
	for _, opt := range opts {
		switch opt {
		case "bind":
			o.bind = true
			continue
		case "rbind":
			o.bind, o.rbind = true, true
			continue
		case "sync", "dirsync", "mand", "lazytime":
			o.sbFlags = append(o.sbFlags, opt)
			continue
		case "async", "nomand", "nolazytime", "defaults", "remount", "tmpcopyup", "nofail", "auto", "noauto", "user", "nouser", "_netdev":
			continue
		case "idmap", "ridmap":
			return nil, fmt.Errorf("mount option %q is not supported", opt)
		}
		if a, ok := attrOpts[opt]; ok {
			o.attrSet = o.attrSet&^a.clr | a.set
			o.attrClr = o.attrClr&^a.set | a.clr
			continue
		}
		if p, ok := propOpts[opt]; ok {
			o.propagation, o.recProp = p, false
			continue
		}
		if strings.HasPrefix(opt, "r") {
			if p, ok := propOpts[opt[1:]]; ok {
				o.propagation, o.recProp = p, true
				continue
			}
			if a, ok := attrOpts[opt[1:]]; ok {
				o.recSet = o.recSet&^a.clr | a.set
				o.recClr = o.recClr&^a.set | a.clr
				continue
			}
		}
		o.data = append(o.data, opt)
	}
	return o, nil
}
