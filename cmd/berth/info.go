package main

import (
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime/cli"
	"github.com/berthproject/berth/store"
)

func init() {
	root.Version = cli.Version
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.AddCommand(versionCommand(), infoCommand())
}

// gitCommit is set by make build (-X): GOFLAGS may turn Go's own VCS
// stamping off.
var gitCommit string

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show berth's version, its build and its runtime's",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			commit := gitCommit
			if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						commit = s.Value
					}
				}
			}
			if commit == "" {
				commit = "unknown"
			}
			fmt.Printf("Version:      %s\nGit commit:   %s\nGo version:   %s\nOS/Arch:      %s/%s\nRuntime:      berth (its own OCI runtime, runtime-spec %s)\n",
				cli.Version, commit, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, specs.Version)
			return nil
		},
	}
}

// infoCommand is docker info's summary: what the store holds, and the
// host it runs on, whose kernel every container shares.
func infoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show what the store holds and the host containers run on",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, err := store.Open(storeRoot)
			if err != nil {
				return err
			}
			images, err := s.List()
			if err != nil {
				return err
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			cs, err := e.List()
			if err != nil {
				return err
			}
			running, paused := 0, 0
			for _, c := range cs {
				switch {
				case c.State.Paused:
					paused++
				case c.State.Running:
					running++
				}
			}
			var uts unix.Utsname
			unix.Uname(&uts)
			fmt.Printf("Containers: %d\n Running: %d\n Paused: %d\n Stopped: %d\n", len(cs), running, paused, len(cs)-running-paused)
			fmt.Printf("Images: %d\n", len(images))
			fmt.Printf("Root: %s\nStorage Driver: overlay (snapshots of unpacked layers as lower dirs)\n", storeRoot)
			fmt.Printf("Cgroup Version: %s\n", cgroupVersion())
			fmt.Printf("Runtime: berth (runtime-spec %s)\n", specs.Version)
			if sec := securityOptions(); len(sec) > 0 {
				fmt.Printf("Security Options: %s\n", strings.Join(sec, " "))
			}
			fmt.Printf("Kernel Version: %s\n", unix.ByteSliceToString(uts.Release[:]))
			fmt.Printf("Operating System: %s\n", hostOS())
			fmt.Printf("Architecture: %s\nCPUs: %d\n", unix.ByteSliceToString(uts.Machine[:]), goruntime.NumCPU())
			var si unix.Sysinfo_t
			if unix.Sysinfo(&si) == nil {
				fmt.Printf("Total Memory: %s\n", binarySize(uint64(si.Totalram)*uint64(si.Unit)))
			}
			fmt.Printf("berth Version: %s\n", cli.Version)
			return nil
		},
	}
}

// cgroupVersion says how /sys/fs/cgroup is mounted.
func cgroupVersion() string {
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &fs) != nil {
		return "none"
	}
	if fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	if unix.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return "1 (hybrid: an empty v2 hierarchy at /sys/fs/cgroup/unified)"
	}
	return "1"
}

// securityOptions are the confinements berth applies here by default or
// on request.
func securityOptions() []string {
	var out []string
	if b, err := os.ReadFile("/proc/self/status"); err == nil && strings.Contains(string(b), "\nSeccomp:") {
		out = append(out, "seccomp (profile: default)")
	}
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.TrimSpace(string(b)) == "Y" {
		out = append(out, "apparmor")
	}
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/selinux", &fs) == nil && fs.Type == unix.SELINUX_MAGIC {
		out = append(out, "selinux")
	}
	return out
}

// hostOS is the host's PRETTY_NAME: the host's userspace, which no
// container sees (each sees its image's /etc/os-release).
func hostOS() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return "unknown"
}
