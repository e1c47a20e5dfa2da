// Command runtime-start times start-to-exit of /bin/true in a busybox
// bundle under berth's runtime, runc and crun, interleaved round-robin in
// one run so that machine noise hits every runtime alike, and prints a
// markdown table of medians, p90s, berth's ratios and peak RSS.
//
//	go run ./bench/runtime-start [-n 50] [-berth bin/berth-runtime]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// contender is one way of running the bundle's /bin/true.
type contender struct {
	name string
	note string
	// argv returns the command for run i; state is a fresh directory.
	argv func(bundle, state, id string) []string
	ms   []float64
	rss  int64 // max over runs of ru_maxrss, KiB
	err  error
}

func main() {
	if os.Getenv(rssEnv) != "" {
		os.Exit(rssMode(os.Args[1:]))
	}
	n := flag.Int("n", 50, "runs per runtime and mode")
	berth := flag.String("berth", "bin/berth-runtime", "berth's runtime: a link named berth-runtime, or berth itself (then `berth runtime` is used); empty: skip")
	runc := flag.String("runc", "runc", "runc binary (empty: skip)")
	crun := flag.String("crun", "crun", "crun binary (empty: skip)")
	other := flag.String("berth-before", "", "a second berth (link or binary), e.g. a build of an older commit, timed in the same run as \"berth (before)\"")
	work := flag.String("work", "", "scratch directory (default: a new one under /var/tmp)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	stateTmpfs := flag.Bool("state-tmpfs", true, "keep every runtime's state (--root) on a tmpfs, as /run is on a usual host; false: in the scratch directory")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("run as root: containers need namespaces and cgroups")
	}
	// Setup here; measure in a re-executed child with its own mount
	// namespace (see fixHybridCgroups).
	dir := os.Getenv(dirEnv)
	if dir == "" {
		dir = *work
		if dir == "" {
			d, err := os.MkdirTemp("/var/tmp", "berth-bench-start-")
			if err != nil {
				fatal(err.Error())
			}
			dir = d
		}
		if err := setup(dir); err != nil {
			fatal(err.Error())
		}
		code := measureInChild(dir)
		if !*keep {
			os.RemoveAll(dir)
		}
		os.Exit(code)
	}
	undo, hybridNote := fixHybridCgroups()
	defer undo()
	stateRoot := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateRoot, 0o755); err != nil {
		fatal(err.Error())
	}
	stateNote := "state directories in the scratch directory (" + dir + ")"
	if *stateTmpfs {
		// In this process's own mount namespace: gone when it exits.
		if err := syscall.Mount("tmpfs", stateRoot, "tmpfs", 0, "mode=755"); err != nil {
			fatal(fmt.Sprintf("mounting a tmpfs for the state directories: %v", err))
		}
		defer syscall.Unmount(stateRoot, syscall.MNT_DETACH)
		stateNote = "state directories (--root) on a tmpfs"
	}
	rootfs := filepath.Join(dir, "rootfs")
	plain := filepath.Join(dir, "bundle-nolimits")
	limited := filepath.Join(dir, "bundle-limits")

	var berthArgv []string
	if *berth != "" {
		var err error
		if berthArgv, err = berthCommand(*berth); err != nil {
			fatal(err.Error())
		}
	}
	var otherArgv []string
	if *other != "" {
		var err error
		if otherArgv, err = berthCommand(*other); err != nil {
			fatal(err.Error())
		}
	}
	runcPath, _ := exec.LookPath(*runc)
	crunPath, _ := exec.LookPath(*crun)

	ociRun := func(argv0 []string) func(bundle, state, id string) []string {
		return func(bundle, state, id string) []string {
			return append(slices.Clone(argv0), "--root", state, "run", "--bundle", bundle, id)
		}
	}
	mk := func(limits bool) []*contender {
		var cs []*contender
		if berthArgv != nil {
			cs = append(cs, &contender{name: "berth", argv: ociRun(berthArgv)})
		}
		if otherArgv != nil {
			cs = append(cs, &contender{name: "berth", note: "before", argv: ociRun(otherArgv)})
		}
		if runcPath != "" && *runc != "" {
			cs = append(cs, &contender{name: "runc", argv: ociRun([]string{runcPath})})
		}
		if crunPath != "" && *crun != "" {
			if !limits {
				cs = append(cs, &contender{name: "crun", note: "--cgroup-manager=disabled",
					argv: ociRun([]string{crunPath, "--cgroup-manager=disabled"})})
			}
			cs = append(cs, &contender{name: "crun", note: "cgroupfs",
				argv: ociRun([]string{crunPath, "--cgroup-manager=cgroupfs"})})
		}
		if !limits {
			// The floor: the namespaces and chroot alone, no runtime.
			cs = append(cs, &contender{name: "unshare+chroot", note: "baseline, no runtime",
				argv: func(bundle, state, id string) []string {
					return []string{"unshare", "-mpfun", "--mount-proc", "chroot", rootfs, "/bin/true"}
				}})
		}
		return cs
	}

	if hybridNote != "" {
		fmt.Println(hybridNote)
	}
	host, _ := os.Hostname()
	fmt.Printf("runtime-start: /bin/true in a busybox bundle, %d runs per runtime, interleaved; %s; %s, %s\n",
		*n, stateNote, host, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	for _, mode := range []struct {
		name, bundle string
		limits       bool
	}{
		{"no limits", plain, false},
		{"memory 64 MiB + pids 64", limited, true},
	} {
		cs := mk(mode.limits)
		bench(cs, mode.bundle, filepath.Join(stateRoot, strings.Fields(mode.name)[0]), *n)
		fmt.Printf("\n### %s\n\n", mode.name)
		table(cs)
		if !mode.limits && crunPath != "" {
			fmt.Println("\ncrun --cgroup-manager=disabled creates no cgroup at all (the issue's comparison for the no-limit case);" +
				" runc and crun (cgroupfs) create one per container even without limits.")
		}
	}
}

// dirEnv passes the scratch directory to the measuring child.
const dirEnv = "RUNTIME_START_DIR"

// setup writes the busybox rootfs and the two bundles into dir.
func setup(dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := fixture.Busybox(rootfs); err != nil {
		return err
	}
	if err := writeBundle(filepath.Join(dir, "bundle-nolimits"), rootfs, nil); err != nil {
		return err
	}
	mem, pids := int64(64<<20), int64(64)
	return writeBundle(filepath.Join(dir, "bundle-limits"), rootfs, &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		Pids:   &specs.LinuxPids{Limit: &pids},
	})
}

// measureInChild re-executes the bench in a private mount namespace (see
// fixHybridCgroups) to run the measurements, and returns its exit code.
func measureInChild(dir string) int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), dirEnv+"="+dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fatal(fmt.Sprintf("re-exec in a mount namespace: %v", err))
	}
	return cmd.ProcessState.ExitCode()
}

// fixHybridCgroups deals with this kind of host: cgroup v1 with an empty
// v2 mount, some v1-capable controllers (hugetlb here) bound to no v1
// hierarchy and so listed in the v2 root. Debian's crun 1.8 then refuses
// every container, even with --cgroup-manager=disabled ("cgroups in hybrid
// mode not supported"). In the bench's private mount namespace those
// controllers are mounted as v1 hierarchies, for all runtimes alike; they
// are gone when the bench exits.
func fixHybridCgroups() (undo func(), note string) {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fatal(fmt.Sprintf("making mounts private: %v", err))
	}
	data, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	ctrls := strings.Fields(string(data))
	if err != nil || len(ctrls) == 0 {
		return func() {}, ""
	}
	base, err := os.MkdirTemp("", "runtime-start-cgroup-")
	if err != nil {
		fatal(err.Error())
	}
	for _, c := range ctrls {
		dir := filepath.Join(base, c)
		if err := os.Mkdir(dir, 0o755); err != nil {
			fatal(err.Error())
		}
		if err := syscall.Mount("cgroup", dir, "cgroup", 0, c); err != nil {
			fatal(fmt.Sprintf("mounting cgroup v1 %s: %v", c, err))
		}
	}
	undo = func() {
		for _, c := range ctrls {
			syscall.Unmount(filepath.Join(base, c), syscall.MNT_DETACH)
		}
		os.RemoveAll(base)
	}
	return undo, fmt.Sprintf("(hybrid cgroups: %s is bound to no v1 hierarchy; the bench mounts it as v1 in its own mount namespace, for every runtime, because crun 1.8 refuses to run at all otherwise)",
		strings.Join(ctrls, ","))
}

// berthCommand returns how to call berth's runc-compatible CLI: the
// berth-runtime link as is, or `berth runtime` for the berth binary.
func berthCommand(p string) ([]string, error) {
	abs, err := exec.LookPath(p)
	if err != nil {
		return nil, fmt.Errorf("berth: %v (run `make build`, or pass -berth)", err)
	}
	abs, _ = filepath.Abs(abs)
	if filepath.Base(abs) == "berth-runtime" {
		return []string{abs}, nil
	}
	return []string{abs, "runtime"}, nil
}

// writeBundle writes a bundle with a runc-like default config running
// /bin/true on the shared read-only rootfs.
func writeBundle(dir, rootfs string, res *specs.LinuxResources) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	spec := defaultSpec(rootfs)
	if res != nil {
		spec.Linux.Resources.Memory = res.Memory
		spec.Linux.Resources.Pids = res.Pids
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
}

func defaultSpec(rootfs string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	deny := false
	return &specs.Spec{
		// The oldest version all three know: Debian's crun 1.8 rejects newer.
		Version: "1.0.2",
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args: []string{"/bin/true"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: deny, Access: "rwm"}}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// bench runs every contender n times round-robin (after one warm-up run
// each), each run with a fresh container id and a fresh state directory.
func bench(cs []*contender, bundle, stateDir string, n int) {
	seq := 0
	for i := -1; i < n; i++ {
		for _, c := range cs {
			if c.err != nil {
				continue
			}
			seq++
			id := fmt.Sprintf("bench-%s-%d", c.name, seq)
			state := filepath.Join(stateDir, fmt.Sprint(seq))
			ms, err := runOnce(c.argv(bundle, state, id))
			if err != nil {
				c.err = err
				continue
			}
			if i < 0 {
				continue // warm-up: page cache, binaries, first cgroup
			}
			c.ms = append(c.ms, ms)
		}
	}
	// Peak RSS, in separate runs: a child's ru_maxrss starts from the
	// high-water RSS of the process it was forked from (Go forks with
	// CLONE_VM and exec keeps the old address space's mark), so each is
	// forked by a freshly started copy of this program, whose own small
	// RSS is the floor (the baseline row shows it).
	for _, c := range cs {
		for i := 0; i < 3 && c.err == nil; i++ {
			seq++
			id := fmt.Sprintf("bench-%s-%d", c.name, seq)
			rss, err := rssOf(c.argv(bundle, filepath.Join(stateDir, fmt.Sprint(seq)), id))
			if err != nil {
				c.err = err
				break
			}
			c.rss = max(c.rss, rss)
		}
	}
}

// rssEnv makes this program a tiny launcher: run the command in its
// arguments and print its ru_maxrss in KiB.
const rssEnv = "RUNTIME_START_RSS"

func rssMode(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	return 0
}

func rssOf(argv []string) (int64, error) {
	cmd := exec.Command("/proc/self/exe", argv...)
	cmd.Env = append(os.Environ(), rssEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

func runOnce(argv []string) (ms float64, err error) {
	var stderr strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return float64(elapsed.Microseconds()) / 1000, nil
}

func table(cs []*contender) {
	var berth *contender
	for _, c := range cs {
		if c.name == "berth" && c.note == "" && c.err == nil {
			berth = c
		}
	}
	fmt.Println("| runtime | median ms | p90 ms | berth / this (median) | peak RSS of `run` |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, c := range cs {
		name := c.name
		if c.note != "" {
			name += " (" + c.note + ")"
		}
		if c.err != nil {
			fmt.Printf("| %s | failed: %s | | | |\n", name, oneLine(c.err.Error()))
			continue
		}
		med, p90 := quantile(c.ms, 0.5), quantile(c.ms, 0.9)
		ratio := "-"
		if berth != nil && c != berth {
			ratio = fmt.Sprintf("%.2f", quantile(berth.ms, 0.5)/med)
		}
		fmt.Printf("| %s | %.1f | %.1f | %s | %.1f MiB |\n", name, med, p90, ratio, float64(c.rss)/1024)
	}
}

func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	// nearest rank
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "runtime-start:", msg)
	os.Exit(1)
}
