// Package cgroup puts a container's processes into a cgroup and applies the
// OCI resource limits to it, on cgroup v1 (one directory per hierarchy) and
// v2 (one unified directory), through github.com/opencontainers/cgroups.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // registers the v1 and v2 device rule writers
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// unifiedRoot is where the cgroup v2 hierarchy is mounted in unified mode.
const unifiedRoot = "/sys/fs/cgroup"

// Cgroup is one container's cgroup: a directory in every v1 hierarchy, or
// one directory of the v2 hierarchy.
type Cgroup struct {
	path string // cgroup path as given after mapping (e.g. /berth/<id>)
	v2   bool
	// plainMkdir: a v2 directory outside /sys/fs/cgroup (tests on a hybrid
	// host), which fs2's creation code cannot handle: it reads controllers
	// from /sys/fs/cgroup and enables them all on every ancestor.
	plainMkdir bool
	mgr        cgroups.Manager
	cfg        *cgroups.Cgroup
	existed    bool // before New or Prepare
}

// New creates (or reuses) the cgroup at path and applies r to it. path is
// an OCI cgroupsPath: absolute paths are relative to the hierarchy roots,
// relative ones to berth's own cgroup, and systemd's "slice:prefix:name"
// form is mapped to the equivalent cgroupfs path.
func New(path string, r *specs.LinuxResources) (*Cgroup, error) {
	c, err := open(path)
	if err != nil {
		return nil, err
	}
	c.existed = c.exists()
	if err := c.Make(r); err != nil {
		c.Discard()
		return nil, err
	}
	return c, nil
}

// Prepare is New in two steps, so that a process can be forked while the
// cgroup is made: Prepare (fast) computes the directories and makes only
// the v2 one of a hybrid host, which the fork needs for CLONE_INTO_CGROUP
// (OpenDir); Make creates the rest and applies the limits. The process then
// moves its own thread into the v1 hierarchies (TaskFiles) before it runs
// anything that the limits are for.
func Prepare(path string) (*Cgroup, error) {
	c, err := open(path)
	if err != nil {
		return nil, err
	}
	c.existed = c.exists()
	if dir := c.mgr.Path(""); dir != "" && !c.v2 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", c.path, err)
		}
	}
	return c, nil
}

// Make creates the cgroup's directories and applies r (see Prepare). On
// failure the caller Discards the cgroup, once no process it forked into
// the v2 directory can still be on its way there.
func (c *Cgroup) Make(r *specs.LinuxResources) error {
	if err := c.create(); err != nil {
		return err
	}
	return c.Set(r)
}

// Discard removes a cgroup that did not exist before New or Prepare; a
// reused one (a pod's, say) is not ours to remove.
func (c *Cgroup) Discard() {
	if !c.existed {
		_ = c.mgr.Destroy()
	}
}

// Load opens the existing cgroup at path (as given to New) without
// changing it.
func Load(path string) (*Cgroup, error) {
	c, err := open(path)
	if err != nil {
		return nil, err
	}
	if !c.exists() {
		return nil, fmt.Errorf("cgroup %s: does not exist", c.path)
	}
	return c, nil
}

// exists reports whether any of the cgroup's directories is there: a
// half-destroyed cgroup must stay loadable so that Destroy can finish.
func (c *Cgroup) exists() bool {
	for _, d := range c.mgr.GetPaths() {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

func open(path string) (*Cgroup, error) {
	p, err := mapPath(path)
	if err != nil {
		return nil, err
	}
	cfg := &cgroups.Cgroup{Path: p, Resources: &cgroups.Resources{}}
	c := &Cgroup{path: p, cfg: cfg, v2: cgroups.IsCgroup2UnifiedMode()}
	if c.v2 {
		dir := filepath.Join(unifiedRoot, p)
		if !filepath.IsAbs(p) {
			own, err := ownV2Dir()
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", p, err)
			}
			dir = filepath.Join(own, p)
		}
		c.mgr, err = fs2.NewManager(cfg, dir)
	} else {
		c.mgr, err = fs.NewManager(cfg, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return c, nil
}

// openV2At makes a v2 Cgroup at an explicit directory, so that tests can
// exercise the v2 code on a host whose v2 hierarchy is mounted elsewhere.
func openV2At(dir string) (*Cgroup, error) {
	cfg := &cgroups.Cgroup{Path: dir, Resources: &cgroups.Resources{}}
	m, err := fs2.NewManager(cfg, dir)
	if err != nil {
		return nil, err
	}
	return &Cgroup{path: dir, cfg: cfg, v2: true, mgr: m, plainMkdir: true}, nil
}

// create makes the directories (pid -1 means: join nobody). The v1 manager
// also copies cpuset.cpus/mems down from the parent here, which a cpuset
// cgroup needs before any task can join it.
func (c *Cgroup) create() error {
	if c.plainMkdir {
		return os.MkdirAll(c.path, 0o755)
	}
	if err := c.mgr.Apply(-1); err != nil {
		return fmt.Errorf("cgroup %s: create: %w", c.path, err)
	}
	c.cloneCpusetsBelowParent()
	return nil
}

// cloneCpusetsBelowParent sets cgroup.clone_children on the container's
// parent cpuset cgroup (berth's own, e.g. /berth), so that the kernel
// copies cpuset.cpus and .mems into the next containers' cgroups when it
// makes them. Otherwise they start empty and the v1 manager must write
// them, and a cpuset.cpus write costs more than all the other setup
// writes together (0.6 ms measured). The hierarchy root is left alone.
func (c *Cgroup) cloneCpusetsBelowParent() {
	dir := c.mgr.Path("cpuset")
	if c.v2 || dir == "" {
		return
	}
	parent := filepath.Dir(dir)
	if root, err := cgroups.FindCgroupMountpoint("", "cpuset"); err != nil || filepath.Clean(root) == parent {
		return
	}
	f := filepath.Join(parent, "cgroup.clone_children")
	if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) == "0" {
		_ = os.WriteFile(f, []byte("1"), 0) // only an optimisation
	}
}

// Path is the cgroup path (after mapping a systemd-style one), relative to
// the hierarchy roots when absolute.
func (c *Cgroup) Path() string { return c.path }

// Dirs maps each hierarchy's controller name to the cgroup's directory in
// it ("" is the v2 directory).
func (c *Cgroup) Dirs() map[string]string {
	out := map[string]string{}
	for k, v := range c.mgr.GetPaths() {
		out[k] = v
	}
	return out
}

// V2 reports whether the cgroup lives in a v2 unified hierarchy.
func (c *Cgroup) V2() bool { return c.v2 }

// Apply moves pid (a process, all its threads) into the cgroup, in every
// hierarchy. Every write to cgroup.procs takes the kernel's
// cgroup_threadgroup_rwsem for writing, which on this kernel waits for an
// RCU grace period (4-10 ms): a container's init is better born in its
// cgroup (JoinThread, OpenDir).
func (c *Cgroup) Apply(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: join: bad pid %d", c.path, pid)
	}
	for _, d := range c.joinDirs() {
		if err := c.join(d, pid); err != nil {
			return err
		}
	}
	return nil
}

// JoinThread moves the calling thread, alone, into the cgroup's v1
// hierarchies, so that a process it forks is born there. The caller must
// have locked the goroutine to its thread, and must let the thread end
// (never unlock it). The kernel moves the writing thread itself ("0" in
// tasks) without the threadgroup lock that makes Apply slow: well under a
// millisecond instead of a grace period. The thread must not be the main
// thread, which Go parks instead of ending. The v2 part cannot take a
// single thread: the fork puts the child there with CLONE_INTO_CGROUP
// (OpenDir).
func (c *Cgroup) JoinThread() error {
	for _, f := range c.TaskFiles() {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fmt.Errorf("cgroup %s: join thread: %w", c.path, err)
		}
	}
	return nil
}

// TaskFiles lists the v1 "tasks" files that JoinThread writes, for a
// process that joins by itself (see Prepare).
func (c *Cgroup) TaskFiles() []string {
	if c.v2 {
		return nil
	}
	var files []string
	for k, d := range c.mgr.GetPaths() {
		if k == "" {
			continue // hybrid host: the v2 hierarchy, see OpenDir
		}
		files = append(files, filepath.Join(d, "tasks"))
	}
	sort.Strings(files)
	return files
}

func (c *Cgroup) join(dir string, pid int) error {
	if err := cgroups.WriteCgroupProc(dir, pid); err != nil {
		return fmt.Errorf("cgroup %s: join pid %d: %w", c.path, pid, err)
	}
	return nil
}

// joinDirs lists the directories a member must be in, in a stable order.
func (c *Cgroup) joinDirs() []string {
	paths := c.mgr.GetPaths()
	names := make([]string, 0, len(paths))
	for k := range paths {
		names = append(names, k)
	}
	sort.Strings(names)
	dirs := make([]string, 0, len(names))
	for _, n := range names {
		dirs = append(dirs, paths[n])
	}
	return dirs
}

// Set applies r (nil: nothing) to the cgroup.
func (c *Cgroup) Set(r *specs.LinuxResources) error {
	res, err := convert(r, c.v2)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	if err := c.mgr.Set(res); err != nil {
		return fmt.Errorf("cgroup %s: set resources: %w", c.path, err)
	}
	return nil
}

// Freeze stops every process of the cgroup; it returns once they are.
func (c *Cgroup) Freeze() error {
	if err := c.mgr.Freeze(cgroups.Frozen); err != nil {
		return fmt.Errorf("cgroup %s: freeze: %w", c.path, err)
	}
	return nil
}

// Thaw lets the processes of a frozen cgroup run again.
func (c *Cgroup) Thaw() error {
	if err := c.mgr.Freeze(cgroups.Thawed); err != nil {
		return fmt.Errorf("cgroup %s: thaw: %w", c.path, err)
	}
	return nil
}

// Frozen reports whether the cgroup itself is frozen.
func (c *Cgroup) Frozen() (bool, error) {
	st, err := c.mgr.GetFreezerState()
	return st == cgroups.Frozen, err
}

// Pids lists the processes in the cgroup and its descendants.
func (c *Cgroup) Pids() ([]int, error) {
	pids, err := c.mgr.GetAllPids()
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: pids: %w", c.path, err)
	}
	return pids, nil
}

// OOMKilled reports whether the kernel's OOM killer has killed a process
// of this cgroup because of its memory limit.
func (c *Cgroup) OOMKilled() (bool, error) {
	n, err := c.mgr.OOMKillCount()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // no memory controller here: nothing was limited
		}
		return false, fmt.Errorf("cgroup %s: oom count: %w", c.path, err)
	}
	return n > 0, nil
}

// Stats reads the cgroup's usage counters: CPU time, memory, pids, block
// I/O.
func (c *Cgroup) Stats() (*cgroups.Stats, error) {
	st, err := c.mgr.GetStats()
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: stats: %w", c.path, err)
	}
	return st, nil
}

// Destroy removes the cgroup's directories (and any sub-cgroups) in every
// hierarchy. It kills nothing: the caller must have ended the processes.
func (c *Cgroup) Destroy() error {
	if err := c.mgr.Destroy(); err != nil {
		return fmt.Errorf("cgroup %s: destroy: %w", c.path, err)
	}
	return nil
}

// ownV2Dir is berth's own cgroup directory in unified mode.
func ownV2Dir() (string, error) {
	m, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	p, ok := m[""]
	if !ok {
		return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
	}
	return filepath.Join(unifiedRoot, p), nil
}

// mapPath turns an OCI cgroupsPath into a cgroupfs path. systemd's
// "slice:prefix:name" names the unit prefix-name.scope under the slice,
// whose path repeats each dash-separated parent ("a-b.slice" lives in
// "a.slice/a-b.slice").
func mapPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("cgroup: empty cgroups path")
	}
	if strings.Count(p, ":") == 2 && !strings.Contains(p, "/") {
		parts := strings.SplitN(p, ":", 3)
		slice, prefix, name := parts[0], parts[1], parts[2]
		if slice == "" {
			slice = "system.slice"
		}
		dir, err := expandSlice(slice)
		if err != nil {
			return "", err
		}
		if name == "" {
			return "", fmt.Errorf("cgroup: bad systemd cgroups path %q: empty name", p)
		}
		unit := name
		if !strings.HasSuffix(name, ".slice") {
			if prefix != "" {
				unit = prefix + "-" + name
			}
			unit += ".scope"
		} else {
			sub, err := expandSlice(name)
			if err != nil {
				return "", err
			}
			return sub, nil
		}
		return filepath.Join(dir, unit), nil
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return "", fmt.Errorf("cgroup: cgroups path %q must not contain ..", p)
		}
	}
	return filepath.Clean(p), nil
}

func expandSlice(slice string) (string, error) {
	name, ok := strings.CutSuffix(slice, ".slice")
	if name == "-" {
		return "/", nil // systemd's root slice
	}
	if !ok || name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, "-") ||
		strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
		return "", fmt.Errorf("cgroup: bad systemd slice %q", slice)
	}
	dir := "/"
	prefix := ""
	for _, comp := range strings.Split(name, "-") {
		prefix += comp
		dir = filepath.Join(dir, prefix+".slice")
		prefix += "-"
	}
	return dir, nil
}

// OpenDir opens the cgroup's directory in the v2 hierarchy (unified mode,
// or the v2 part of a hybrid host) for clone3's CLONE_INTO_CGROUP
// (syscall.SysProcAttr UseCgroupFD/CgroupFD): a process started that way is
// born in the cgroup and needs no Apply, so it skips the migration's RCU
// wait. A cgroup without a v2 directory (v1 only) gives nil, nil.
func (c *Cgroup) OpenDir() (*os.File, error) {
	dir := c.mgr.Path("")
	if dir == "" {
		return nil, nil
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	return f, nil
}
