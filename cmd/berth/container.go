package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
)

// containerCmd is `berth container`, the noun for container subcommands;
// the common ones are also top-level, as in docker.
var containerCmd = &cobra.Command{Use: "container", Short: "Manage containers"}

func init() {
	reexecs["container-monitor"] = engine.MonitorMain
	reexecs["container-init"] = engine.InitMain
	root.AddCommand(containerCmd)
	makers := []func() *cobra.Command{
		runCommand, createCommand, startCommand, stopCommand, killCommand, restartCommand,
		rmCommand, psCommand, logsCommand, execCommand, waitCommand, topCommand, cpCommand,
		diffCommand, commitCommand, exportCommand, renameCommand, pauseCommand, unpauseCommand,
		statsCommand, updateCommand, attachCommand,
	}
	for _, mk := range makers {
		root.AddCommand(mk())
		containerCmd.AddCommand(mk())
	}
	ls := psCommand()
	ls.Use, ls.Aliases = "ls", []string{"list"}
	containerCmd.AddCommand(ls, containerInspectCommand(), containerPruneCommand())
	root.AddCommand(inspectCommand())
}

func openEngine() (*engine.Engine, error) { return engine.Open(storeRoot) }

// createFromArgs creates the container that create's and run's
// IMAGE [COMMAND] [ARG...] and flags describe.
func createFromArgs(rf *runFlags, args []string) (*engine.Engine, *engine.Container, error) {
	o, cidFile := rf.o, rf.cidFile
	o.Image, o.Args = args[0], args[1:]
	for _, lf := range rf.labelFiles {
		b, err := os.ReadFile(lf)
		if err != nil {
			return nil, nil, fmt.Errorf("--label-file: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				o.Labels = append(o.Labels, l)
			}
		}
	}
	if cidFile != "" {
		if _, err := os.Stat(cidFile); err == nil {
			return nil, nil, fmt.Errorf("--cidfile %s exists: is another container using it?", cidFile)
		}
	}
	if err := ensureImage(o.Image, o.Platform, rf.pull); err != nil {
		return nil, nil, err
	}
	e, err := openEngine()
	if err != nil {
		return nil, nil, err
	}
	ctr, err := e.Create(o)
	if err != nil {
		return nil, nil, err
	}
	if cidFile != "" {
		f, err := os.OpenFile(cidFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(ctr.ID)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			e.Remove(ctr.ID, engine.RemoveOpts{Force: true, Volumes: true})
			return nil, nil, fmt.Errorf("--cidfile: %w", err)
		}
	}
	return e, ctr, nil
}

// ensureImage pulls ref as docker run's --pull says: missing (the
// default) pulls an image the store does not have, always pulls it
// anyway, never refuses to. Progress goes to stderr, as docker's.
func ensureImage(ref, platform, pull string) error {
	switch pull {
	case "", "missing", "always", "never":
	default:
		return fmt.Errorf("invalid --pull %q: want missing, always or never", pull)
	}
	s, p, err := imgStore(false)
	if err != nil {
		return err
	}
	if pull == "never" {
		if _, err := s.Image(ref, platform); err != nil {
			return fmt.Errorf("%w (and --pull never)", err)
		}
		return nil
	}
	_, err = newPullingStore(s, pull == "always", func(ref string) {
		if p != nil {
			p.Line("Unable to find image '%s' locally", ref)
		}
	}).Image(ref, platform)
	return err
}

// startErr maps a start failure to its exit status (126/127/125), printing
// the reason as docker does.
func startErr(err error) error {
	var se *engine.StartError
	if errors.As(err, &se) {
		fmt.Fprintf(os.Stderr, "berth: %s\n", se.Msg)
		return exitError{se.Code}
	}
	return err
}

// swappinessFlag sets --memory-swappiness only when given.
type swappinessFlag struct{ p **int64 }

func (f swappinessFlag) String() string {
	if f.p == nil || *f.p == nil {
		return "-1"
	}
	return strconv.FormatInt(**f.p, 10)
}

func (f swappinessFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*f.p = &n
	return nil
}

func (swappinessFlag) Type() string { return "int" }

// runFlags are create's and run's flags: the engine's options, and those
// the command carries out itself.
type runFlags struct {
	o                engine.Options
	entrypoint, pull string
	labelFiles       []string
	cidFile          string
}

// addRunFlags declares create's and run's container options on c.
func addRunFlags(c *cobra.Command, rf *runFlags) {
	o, entrypoint := &rf.o, &rf.entrypoint
	f := c.Flags()
	f.SetInterspersed(false)
	f.StringVar(&o.Name, "name", "", "assign a name to the container")
	f.StringVar(&o.Platform, "platform", "", "image platform (os/arch) to pick")
	f.StringVar(entrypoint, "entrypoint", "", "override the image's ENTRYPOINT (\"\" clears it)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable (KEY=VAL, or KEY to pass berth's)")
	f.StringArrayVar(&o.EnvFiles, "env-file", nil, "read environment variables from a file")
	f.StringVarP(&o.Workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.User, "user", "u", "", "user as NAME|UID[:GROUP|GID], resolved in the image")
	f.StringVarP(&o.Hostname, "hostname", "h", "", "container hostname")
	f.StringArrayVar(&o.AddHosts, "add-host", nil, "add HOST:IP to /etc/hosts")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CTR[:ro] or named volume NAME:CTR")
	f.StringArrayVar(&o.Mounts, "mount", nil, "mount type=bind|volume|tmpfs,source=...,target=...[,readonly]")
	f.StringArrayVar(&o.Tmpfs, "tmpfs", nil, "mount a tmpfs at DST[:OPTIONS]")
	f.BoolVar(&o.ReadOnly, "read-only", false, "mount the container's root filesystem read-only")
	f.BoolVar(&o.Privileged, "privileged", false, "give every capability and the host's devices, no seccomp")
	f.StringArrayVar(&o.CapAdd, "cap-add", nil, "add a capability (or ALL)")
	f.StringArrayVar(&o.CapDrop, "cap-drop", nil, "drop a capability (or ALL)")
	f.StringArrayVar(&o.SecurityOpt, "security-opt", nil, "seccomp=PROFILE.json|unconfined, no-new-privileges")
	f.StringVarP(&o.Memory, "memory", "m", "", "memory limit (e.g. 64m)")
	f.StringVar(&o.MemorySwap, "memory-swap", "", "memory plus swap limit (-1: unlimited swap)")
	f.StringVar(&o.CPUs, "cpus", "", "number of CPUs (e.g. 0.5)")
	f.Int64VarP(&o.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.PidsLimit, "pids-limit", 0, "maximum number of processes (-1: unlimited)")
	f.StringArrayVar(&o.Ulimits, "ulimit", nil, "set a ulimit NAME=SOFT[:HARD]")
	f.BoolVar(&o.Init, "init", false, "run an init as PID 1 that forwards signals and reaps zombies")
	f.StringVar(&o.StopSignal, "stop-signal", "", "signal to stop the container (default SIGTERM or the image's)")
	f.IntVar(&o.StopTimeout, "stop-timeout", 0, "seconds to wait for stop before SIGKILL (default 10)")
	f.StringVar(&o.PidMode, "pid", "", "pid namespace: host, or container:NAME to share another's")
	f.StringVar(&o.IpcMode, "ipc", "", "ipc namespace: private, shareable, host or container:NAME")
	f.StringVar(&o.UtsMode, "uts", "", "uts namespace: host to share the host's hostname")
	f.StringVar(&o.CgroupnsMode, "cgroupns", "", "cgroup namespace: private (default) or host")
	f.StringArrayVar(&o.Sysctls, "sysctl", nil, "namespaced kernel parameter NAME=VALUE")
	f.StringVar(&o.ShmSize, "shm-size", "", "size of /dev/shm (default 64m)")
	f.StringVar(&o.IP, "ip", "", "IPv4 address on its user-defined network")
	f.StringVar(&o.MACAddress, "mac-address", "", "MAC address on its user-defined network")
	f.StringArrayVar(&o.DNS, "dns", nil, "DNS server for /etc/resolv.conf")
	f.StringArrayVar(&o.DNSSearch, "dns-search", nil, "DNS search domain")
	f.StringArrayVar(&o.DNSOptions, "dns-option", nil, "resolv.conf option")
	f.StringArrayVar(&o.GroupAdd, "group-add", nil, "supplementary group (name or number)")
	f.StringArrayVar(&o.Devices, "device", nil, "host device HOST[:CONTAINER[:PERMS]]")
	f.StringVar(&o.CPUsetCPUs, "cpuset-cpus", "", "CPUs the container may use (0-2,4)")
	f.StringVar(&o.CPUsetMems, "cpuset-mems", "", "memory nodes the container may use")
	f.StringVar(&o.MemoryReservation, "memory-reservation", "", "memory soft limit")
	f.Int64Var(&o.CPUPeriod, "cpu-period", 0, "CFS period in microseconds")
	f.Int64Var(&o.CPUQuota, "cpu-quota", 0, "CFS quota in microseconds per period (-1: none)")
	f.Uint16Var(&o.BlkioWeight, "blkio-weight", 0, "relative block I/O weight, 10-1000")
	f.Var(swappinessFlag{&o.MemorySwappiness}, "memory-swappiness", "0-100 (-1: the kernel's)")
	f.BoolVar(&o.OOMKillDisable, "oom-kill-disable", false, "do not OOM-kill the container's processes at its memory limit")
	f.IntVar(&o.OOMScoreAdj, "oom-score-adj", 0, "the processes' oom_score_adj, -1000 to 1000")
	f.StringArrayVar(&o.VolumesFrom, "volumes-from", nil, "mount another container's volumes and binds (NAME[:ro|rw])")
	f.StringArrayVar(&o.Expose, "expose", nil, "a port (PORT[/PROTO]) that -P publishes, beside the image's EXPOSE")
	f.StringVar(&o.LogDriver, "log-driver", "json-file", "json-file, or none for no logs")
	f.StringArrayVar(&rf.labelFiles, "label-file", nil, "read labels (KEY=VAL lines) from a file")
	f.StringVar(&rf.cidFile, "cidfile", "", "write the container ID to this file (which must not exist)")
	f.StringVar(&rf.pull, "pull", "missing", "pull the image: missing (when not stored), always, never")
	f.StringVar(&o.HealthCmd, "health-cmd", "", "command (run by /bin/sh -c) whose success means healthy")
	f.StringVar(&o.HealthInterval, "health-interval", "", "time between checks (default 30s)")
	f.StringVar(&o.HealthTimeout, "health-timeout", "", "longest a check may take (default 30s)")
	f.StringVar(&o.HealthStartPeriod, "health-start-period", "", "time to start, when failures do not count")
	f.IntVar(&o.HealthRetries, "health-retries", 0, "failures in a row that make it unhealthy (default 3)")
	f.BoolVar(&o.NoHealthcheck, "no-healthcheck", false, "run no HEALTHCHECK, the image's neither")
	f.StringVar(&o.Restart, "restart", "no", "restart when it exits: no, always, unless-stopped, on-failure[:MAX] (while its berth supervises it)")
	// bridge is the default, as docker's (the network issue); the engine's
	// own default for API callers that leave it empty stays none.
	f.StringVar(&o.Network, "network", "bridge", "network: bridge, none, host, a network's name, or container:NAME")
	f.StringVar(&o.Network, "net", "bridge", "alias of --network")
	f.MarkHidden("net")
	f.StringArrayVarP(&o.Publish, "publish", "p", nil, "publish a port [[IP:]HOST:]CTR[/tcp|udp] (bridge networks)")
	f.BoolVarP(&o.PublishAll, "publish-all", "P", false, "publish every EXPOSEd port on a random host port")
	f.StringArrayVar(&o.NetAliases, "network-alias", nil, "another name for the container on its network")
	f.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.BoolVarP(&o.Interactive, "interactive", "i", false, "keep stdin open")
	f.StringArrayVarP(&o.Labels, "label", "l", nil, "set a label KEY=VAL")
	var logOpts []string
	f.StringArrayVar(&logOpts, "log-opt", nil, "json-file log options: max-size=10m, max-file=3")
	c.PreRunE = func(c *cobra.Command, args []string) error {
		for _, lo := range logOpts {
			k, v, _ := strings.Cut(lo, "=")
			switch k {
			case "max-size":
				o.LogMaxSize = v
			case "max-file":
				if _, err := fmt.Sscan(v, &o.LogMaxFile); err != nil || o.LogMaxFile < 1 {
					return fmt.Errorf("--log-opt max-file=%s: want a positive number", v)
				}
			default:
				return fmt.Errorf("unknown --log-opt %q: want max-size or max-file", k)
			}
		}
		if c.Flags().Changed("entrypoint") {
			ep := *entrypoint
			o.Entrypoint = &ep
		}
		return nil
	}
	// -h is --hostname as in docker; help stays on --help.
	c.Flags().BoolP("help", "", false, "help for "+c.Name())
}

func createCommand() *cobra.Command {
	var rf runFlags
	c := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container from an image",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			_, ctr, err := createFromArgs(&rf, args)
			if err != nil {
				return err
			}
			fmt.Println(ctr.ID)
			return nil
		},
	}
	addRunFlags(c, &rf)
	return c
}

func runCommand() *cobra.Command {
	var rf runFlags
	var detach bool
	c := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container from an image",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, ctr, err := createFromArgs(&rf, args)
			if err != nil {
				return err
			}
			if detach {
				if err := e.StartDetached(ctr); err != nil {
					return startErr(err)
				}
				fmt.Println(ctr.ID)
				return nil
			}
			code, err := e.StartAttached(ctr, engine.Attach{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
			if err != nil {
				return startErr(err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	addRunFlags(c, &rf)
	c.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container ID")
	c.Flags().BoolVar(&rf.o.AutoRemove, "rm", false, "remove the container when it exits")
	return c
}

func startCommand() *cobra.Command {
	var attach bool
	c := &cobra.Command{
		Use:   "start [-a] CONTAINER...",
		Short: "Start created or stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			if attach {
				if len(args) != 1 {
					return errors.New("start -a takes one container")
				}
				ctr, err := e.Lookup(args[0])
				if err != nil {
					return err
				}
				code, err := e.StartAttached(ctr, engine.Attach{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
				if err != nil {
					return startErr(err)
				}
				if code != 0 {
					return exitError{code}
				}
				return nil
			}
			var errs []error
			for _, ref := range args {
				ctr, err := e.Lookup(ref)
				if err == nil && !ctr.State.Running {
					err = e.StartDetached(ctr)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ref, err))
					continue
				}
				fmt.Println(ref)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout/stderr and wait for the container")
	return c
}

// eachContainer runs fn on every ref, printing each ref that succeeded
// (docker's style for stop, kill, rm ...) and joining the errors.
func eachContainer(args []string, fn func(e *engine.Engine, ref string) error) error {
	e, err := openEngine()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range args {
		if err := fn(e, ref); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(ref)
	}
	return errors.Join(errs...)
}

func stopCommand() *cobra.Command {
	var timeout int
	c := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop containers: the stop signal, then SIGKILL after a timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return eachContainer(args, func(e *engine.Engine, ref string) error { return e.Stop(ref, timeout) })
		},
	}
	c.Flags().IntVarP(&timeout, "time", "t", -1, "seconds to wait before killing (default 10)")
	c.Flags().IntVar(&timeout, "timeout", -1, "alias of --time")
	return c
}

func restartCommand() *cobra.Command {
	var timeout int
	c := &cobra.Command{
		Use:   "restart [-t SECONDS] CONTAINER...",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return eachContainer(args, func(e *engine.Engine, ref string) error { return startErr(e.Restart(ref, timeout)) })
		},
	}
	c.Flags().IntVarP(&timeout, "time", "t", -1, "seconds to wait before killing (default 10)")
	return c
}

func killCommand() *cobra.Command {
	var sig string
	c := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER...",
		Short: "Send a signal (default SIGKILL) to containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := engine.ParseSignal(sig)
			if err != nil {
				return err
			}
			return eachContainer(args, func(e *engine.Engine, ref string) error { return e.Kill(ref, s) })
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return c
}

func rmCommand() *cobra.Command {
	var o engine.RemoveOpts
	c := &cobra.Command{
		Use:   "rm [-f] [-v] CONTAINER...",
		Short: "Remove containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return eachContainer(args, func(e *engine.Engine, ref string) error { return e.Remove(ref, o) })
		},
	}
	c.Flags().BoolVarP(&o.Force, "force", "f", false, "kill and remove a running container")
	c.Flags().BoolVarP(&o.Volumes, "volumes", "v", false, "remove the container's anonymous volumes")
	return c
}

func waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			for _, ref := range args {
				code, err := e.Wait(ref)
				if err != nil {
					return err
				}
				fmt.Println(code)
			}
			return nil
		},
	}
}

func renameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return e.Rename(args[0], args[1])
		},
	}
}

func pauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER...",
		Short: "Freeze every process of containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return eachContainer(args, func(e *engine.Engine, ref string) error { return e.Pause(ref, true) })
		},
	}
}

func unpauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER...",
		Short: "Thaw paused containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return eachContainer(args, func(e *engine.Engine, ref string) error { return e.Pause(ref, false) })
		},
	}
}

func execCommand() *cobra.Command {
	var o engine.ExecOptions
	c := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			o.Args = args[1:]
			code, err := e.Exec(args[0], o, engine.Attach{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
			if err != nil {
				var se *engine.StartError
				if errors.As(err, &se) {
					return startErr(err)
				}
				if code == 125 {
					return err
				}
				fmt.Fprintf(os.Stderr, "berth: %v\n", err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.BoolVarP(&o.Interactive, "interactive", "i", false, "keep stdin open")
	f.BoolVarP(&o.Detach, "detach", "d", false, "run the command in the background")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable")
	f.StringArrayVar(&o.EnvFiles, "env-file", nil, "read environment variables from a file")
	f.StringVarP(&o.User, "user", "u", "", "user as NAME|UID[:GROUP|GID]")
	f.StringVarP(&o.Workdir, "workdir", "w", "", "working directory")
	f.BoolVar(&o.Privileged, "privileged", false, "give the process every capability")
	return c
}

func topCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Show the processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return e.Top(args[0], args[1:], os.Stdout)
		},
	}
	// Options after the container are ps's (top CTR -o pid,comm).
	c.Flags().SetInterspersed(false)
	return c
}
