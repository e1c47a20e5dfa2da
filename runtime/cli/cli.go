// Package cli is the runc-compatible command line of berth's OCI runtime
// (`berth runtime ...`), so that tools driving runc (containerd,
// conformance suites) can drive berth. Invoked through a link named
// berth-runtime, berth speaks it at top level: this package's init
// function takes over then, before cmd/berth builds its other commands
// (about a millisecond of every berth start) and before the packages
// initialised after this one (Go initialises packages in dependency
// order, the earliest import path first among those ready).
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthproject/berth/runtime"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// LinkName is the name under which berth is the runtime's CLI itself.
const LinkName = "berth-runtime"

// Version is berth's version, its runtime's included.
const Version = "0.1.0"

func init() {
	if filepath.Base(os.Args[0]) == LinkName {
		os.Exit(Execute(Command(LinkName), os.Args[1:]))
	}
}

// ExitError carries a process exit status (a container's, for run and
// exec) through cobra without printing.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Execute runs cmd with args and maps errors to exit codes: an ExitError
// passes its code through, any other error is one line on stderr and 125
// (docker's "the engine itself failed").
func Execute(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var ee ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "berth: %v\n", err)
	return 125
}

// rtFlags are runc's global flags.
type rtFlags struct {
	root, log, logFormat, rootless string
	debug, systemdCgroup           bool
}

func (g *rtFlags) runtime() *runtime.Runtime {
	r := runtime.New(g.root)
	r.SystemdCgroup = g.systemdCgroup
	r.Debug = g.debug
	return r
}

// logged writes a failing command's error to --log the way runc does
// (containerd's shim reads the last error from it), then returns it.
func (g *rtFlags) logged(err error) error {
	if err == nil || g.log == "" {
		return err
	}
	var ee ExitError
	if errors.As(err, &ee) {
		return err
	}
	f, ferr := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if ferr != nil {
		return err
	}
	defer f.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if g.logFormat == "json" {
		line, _ := json.Marshal(map[string]string{"level": "error", "msg": err.Error(), "time": now})
		fmt.Fprintf(f, "%s\n", line)
	} else {
		fmt.Fprintf(f, "time=%q level=error msg=%q\n", now, err.Error())
	}
	return err
}

// Command returns the runtime's command tree under the name use.
func Command(use string) *cobra.Command {
	g := &rtFlags{}
	cmd := &cobra.Command{
		Use:           use,
		Short:         "berth's OCI runtime (runc-compatible command line)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	// As runc prints it; some tools read the spec line.
	cmd.SetVersionTemplate("{{.Name}} version {{.Version}}\nspec: " + specs.Version + "\n")
	pf := cmd.PersistentFlags()
	pf.StringVar(&g.root, "root", runtime.DefaultRoot, "directory for container state")
	pf.StringVar(&g.log, "log", "", "write errors to this file")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&g.debug, "debug", false, "debug output")
	pf.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "accepted for runc compatibility (cgroupfs is used)")
	pf.StringVar(&g.rootless, "rootless", "auto", "accepted for runc compatibility")
	// Every subcommand's error goes through --log too.
	add := func(c *cobra.Command) {
		run := c.RunE
		c.RunE = func(c *cobra.Command, args []string) error { return g.logged(run(c, args)) }
		cmd.AddCommand(c)
	}
	add(specCmd())
	add(createCmd(g))
	add(startCmd(g))
	add(stateCmd(g))
	add(killCmd(g))
	add(deleteCmd(g))
	add(runCmd(g))
	add(execCmd(g))
	add(listCmd(g))
	add(psCmd(g))
	add(pauseCmd(g, true))
	add(pauseCmd(g, false))
	add(updateCmd(g))
	add(featuresCmd())
	return cmd
}

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	c := &cobra.Command{
		Use:   "spec",
		Short: "write a default config.json into the bundle",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			p := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists: remove it first", p)
			}
			spec := runtime.DefaultSpec(rootless)
			// Unlike runc's, berth's default spec carries Docker's seccomp
			// profile: keyrings are not namespaced and a user namespace
			// needs no capability, so only a filter stops keyctl or unshare -U.
			prof, err := mobyseccomp.GetDefaultProfile(spec)
			if err != nil {
				return fmt.Errorf("default seccomp profile: %w", err)
			}
			spec.Linux.Seccomp = prof
			data, err := json.MarshalIndent(spec, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(p, append(data, '\n'), 0o644)
		},
	}
	c.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
	c.Flags().BoolVar(&rootless, "rootless", false, "a spec for running as an unprivileged user")
	return c
}

func createFlags(c *cobra.Command, o *runtime.CreateOpts) {
	f := c.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", ".", "bundle directory (config.json + rootfs)")
	f.StringVar(&o.PidFile, "pid-file", "", "write the init's pid here")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "use MS_MOVE+chroot instead of pivot_root")
	f.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass this many fds beyond stdio")
	f.Bool("no-new-keyring", false, "accepted for runc compatibility")
}

func createCmd(g *rtFlags) *cobra.Command {
	var o runtime.CreateOpts
	c := &cobra.Command{
		Use:   "create [flags] <id>",
		Short: "create a container from a bundle; its process waits for start",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.runtime().Create(args[0], o)
		},
	}
	createFlags(c, &o)
	return c
}

func runCmd(g *rtFlags) *cobra.Command {
	var o runtime.CreateOpts
	c := &cobra.Command{
		Use:   "run [flags] <id>",
		Short: "create and start a container, wait for it, delete it",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			code, err := g.runtime().Run(args[0], o)
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitError{code}
			}
			return nil
		},
	}
	createFlags(c, &o)
	c.Flags().BoolVarP(&o.Detach, "detach", "d", false, "return once started")
	o.ForwardSignals = true
	c.Flags().Bool("keep", false, "accepted for runc compatibility")
	return c
}

func startCmd(g *rtFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "start <id>",
		Short: "start the process of a created container",
		Args:  cobra.ExactArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return g.runtime().Start(args[0]) },
	}
}

// stateJSON is what runc's state and list --format json print.
type stateJSON struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func toStateJSON(r *runtime.Runtime, s *specs.State) stateJSON {
	info, _ := r.Info(s.ID)
	return stateJSON{Version: s.Version, ID: s.ID, Pid: s.Pid, Status: string(s.Status), Bundle: s.Bundle,
		Rootfs: info.Rootfs, Created: info.Created, Owner: "root", Annotations: s.Annotations}
}

func stateCmd(g *rtFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "state <id>",
		Short: "print a container's state as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r := g.runtime()
			s, err := r.State(args[0])
			if err != nil {
				return err
			}
			data, _ := json.MarshalIndent(toStateJSON(r, s), "", "  ")
			fmt.Println(string(data))
			return nil
		},
	}
}

// parseSignal accepts KILL, SIGKILL, kill or 9.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func killCmd(g *rtFlags) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "kill [flags] <id> [signal]",
		Short: "send a signal (default SIGTERM) to the container's init",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = parseSignal(args[1]); err != nil {
					return err
				}
			}
			return g.runtime().Kill(args[0], sig, all)
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container")
	return c
}

func deleteCmd(g *rtFlags) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "delete [flags] <id>...",
		Short: "delete containers and everything they hold",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r := g.runtime()
			var errs []error
			for _, id := range args {
				if err := r.Delete(id, force); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return c
}

func execCmd(g *rtFlags) *cobra.Command {
	var (
		o            runtime.ExecOpts
		processFile  string
		tty, nnp     bool
		env, caps    []string
		cwd, user    string
		addGids      []int64
		preserveFDs  int
		ignoredStr   string
		ignoredSlice []string
	)
	c := &cobra.Command{
		Use:   "exec [flags] <id> [command [args...]]",
		Short: "run a process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r := g.runtime()
			id := args[0]
			var p *specs.Process
			if processFile != "" {
				data, err := os.ReadFile(processFile)
				if err != nil {
					return err
				}
				p = &specs.Process{}
				if err := json.Unmarshal(data, p); err != nil {
					return fmt.Errorf("process %s: %v", processFile, err)
				}
			} else {
				if len(args) < 2 {
					return errors.New("exec: give a command or --process")
				}
				base, err := r.Process(id)
				if err != nil {
					return err
				}
				p = base
				p.Args = args[1:]
				p.Terminal = tty
				p.Env = append(p.Env, env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if user != "" {
					uid, gid, err := parseUser(user)
					if err != nil {
						return err
					}
					p.User.UID, p.User.GID = uid, gid
				}
				for _, gid := range addGids {
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
				}
				if nnp {
					p.NoNewPrivileges = true
				}
				if len(caps) > 0 && p.Capabilities != nil {
					pc := p.Capabilities
					pc.Bounding = append(pc.Bounding, caps...)
					pc.Effective = append(pc.Effective, caps...)
					pc.Permitted = append(pc.Permitted, caps...)
				}
			}
			o.PreserveFDs = preserveFDs
			o.ForwardSignals = true
			code, err := r.Exec(id, p, o)
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitError{code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processFile, "process", "p", "", "process.json to run")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pty (needs --console-socket)")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable")
	f.StringVar(&cwd, "cwd", "", "working directory in the container")
	f.StringVarP(&user, "user", "u", "", "uid[:gid]")
	f.Int64SliceVarP(&addGids, "additional-gids", "g", nil, "additional gids")
	f.StringArrayVarP(&caps, "cap", "c", nil, "add a capability")
	f.BoolVar(&nnp, "no-new-privs", false, "set no_new_privs")
	f.BoolVarP(&o.Detach, "detach", "d", false, "do not wait for the process")
	f.StringVar(&o.PidFile, "pid-file", "", "write the process's pid here")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass this many fds beyond stdio")
	f.StringVar(&ignoredStr, "apparmor", "", "accepted for runc compatibility")
	f.StringVar(&ignoredStr, "process-label", "", "accepted for runc compatibility")
	f.StringVar(&ignoredStr, "cgroup", "", "accepted for runc compatibility")
	f.StringArrayVar(&ignoredSlice, "ignore-paused", nil, "accepted for runc compatibility")
	return c
}

func parseUser(s string) (uint32, uint32, error) {
	us, gs, _ := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: want uid[:gid]", s)
	}
	gid := uint64(0)
	if gs != "" {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("user %q: want uid[:gid]", s)
		}
	}
	return uint32(uid), uint32(gid), nil
}

func listCmd(g *rtFlags) *cobra.Command {
	var format string
	var quiet bool
	c := &cobra.Command{
		Use:   "list",
		Short: "list containers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			r := g.runtime()
			states, err := r.List()
			if err != nil {
				return err
			}
			if quiet {
				for _, s := range states {
					fmt.Println(s.ID)
				}
				return nil
			}
			out := make([]stateJSON, 0, len(states))
			for _, s := range states {
				out = append(out, toStateJSON(r, s))
			}
			switch format {
			case "json":
				data, _ := json.Marshal(out)
				fmt.Println(string(data))
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
				for _, s := range out {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				w.Flush()
			default:
				return fmt.Errorf("unknown format %q: use table or json", format)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print ids only")
	return c
}

func psCmd(g *rtFlags) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "ps [flags] <id> [ps options]",
		Short: "list a container's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			pids, err := g.runtime().Ps(args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				data, _ := json.Marshal(pids)
				fmt.Println(string(data))
				return nil
			}
			if format != "table" {
				return fmt.Errorf("unknown format %q: use table or json", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps: %w", err)
			}
			return printPs(string(out), pids)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	c.Flags().SetInterspersed(false)
	return c
}

// printPs keeps the header and the rows of ps output whose PID column
// is one of pids.
func printPs(out string, pids []int) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return errors.New("ps output has no PID column")
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > col && want[f[col]] {
			fmt.Println(l)
		}
	}
	return nil
}

func pauseCmd(g *rtFlags, pause bool) *cobra.Command {
	use, short := "pause <id>", "freeze every process of a container"
	if !pause {
		use, short = "resume <id>", "thaw a paused container"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if pause {
				return g.runtime().Pause(args[0])
			}
			return g.runtime().Resume(args[0])
		},
	}
}

func updateCmd(g *rtFlags) *cobra.Command {
	var (
		file                string
		memory, memSwap     int64
		cpuShares, cpuQuota int64
		cpuPeriod           uint64
		pids                int64
		cpusetCpus, mems    string
	)
	c := &cobra.Command{
		Use:   "update [flags] <id>",
		Short: "change a running container's resource limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			res := &specs.LinuxResources{}
			if file != "" {
				var data []byte
				var err error
				if file == "-" {
					data, err = io.ReadAll(os.Stdin)
				} else {
					data, err = os.ReadFile(file)
				}
				if err != nil {
					return err
				}
				if err := json.Unmarshal(data, res); err != nil {
					return fmt.Errorf("resources %s: %v", file, err)
				}
			}
			f := c.Flags()
			if f.Changed("memory") || f.Changed("memory-swap") {
				if res.Memory == nil {
					res.Memory = &specs.LinuxMemory{}
				}
				if f.Changed("memory") {
					res.Memory.Limit = &memory
				}
				if f.Changed("memory-swap") {
					res.Memory.Swap = &memSwap
				}
			}
			if f.Changed("cpu-shares") || f.Changed("cpu-quota") || f.Changed("cpu-period") || f.Changed("cpuset-cpus") || f.Changed("cpuset-mems") {
				if res.CPU == nil {
					res.CPU = &specs.LinuxCPU{}
				}
				if f.Changed("cpu-shares") {
					v := uint64(cpuShares)
					res.CPU.Shares = &v
				}
				if f.Changed("cpu-quota") {
					res.CPU.Quota = &cpuQuota
				}
				if f.Changed("cpu-period") {
					res.CPU.Period = &cpuPeriod
				}
				if f.Changed("cpuset-cpus") {
					res.CPU.Cpus = cpusetCpus
				}
				if f.Changed("cpuset-mems") {
					res.CPU.Mems = mems
				}
			}
			if f.Changed("pids-limit") {
				res.Pids = &specs.LinuxPids{Limit: &pids}
			}
			return g.runtime().Update(args[0], res)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "resources", "r", "", "LinuxResources JSON file (- for stdin)")
	f.Int64Var(&memory, "memory", 0, "memory limit in bytes")
	f.Int64Var(&memSwap, "memory-swap", 0, "memory+swap limit in bytes")
	f.Int64Var(&cpuShares, "cpu-shares", 0, "CPU shares")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CFS quota in µs")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CFS period in µs")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs to run on")
	f.StringVar(&mems, "cpuset-mems", "", "memory nodes")
	f.Int64Var(&pids, "pids-limit", 0, "maximum number of processes")
	return c
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this runtime supports, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			f := map[string]any{
				"ociVersionMin": "1.0.0",
				"ociVersionMax": specs.Version,
				"hooks":         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
				"mountOptions": []string{"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "bind", "rbind",
					"private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
					"noatime", "relatime", "strictatime", "nodiratime", "nosymfollow", "rro", "rnosuid", "rnodev", "rnoexec"},
				"linux": map[string]any{
					"namespaces": []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
					"cgroup":     map[string]any{"v1": true, "v2": true, "systemd": false},
				},
			}
			data, _ := json.MarshalIndent(f, "", "  ")
			fmt.Println(string(data))
			return nil
		},
	}
}
