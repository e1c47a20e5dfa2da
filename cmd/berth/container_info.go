package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
	"github.com/berthproject/berth/network"
)

// psRow is what ps's --format templates see, named as docker names them.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Names, Labels, Mounts string
}

func newPsRow(e *engine.Engine, c *engine.Container, trunc bool) psRow {
	cmd := strings.Join(c.Command(), " ")
	id := c.ID
	if trunc {
		id = c.ShortID()
		if len(cmd) > 20 {
			cmd = cmd[:19] + "…"
		}
	}
	var mounts []string
	for _, m := range c.MountPoints {
		if m.Name != "" {
			mounts = append(mounts, m.Name)
		} else {
			mounts = append(mounts, m.Source)
		}
	}
	return psRow{
		ID: id, Image: c.Image, Command: strconv.Quote(cmd),
		CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: since(c.Created), State: stateOf(c), Status: c.StatusText(), Names: c.Name,
		Labels: strings.Join(c.Opts.Labels, ","), Mounts: strings.Join(mounts, ","), Ports: portsColumn(e, c),
	}
}

// portsColumn is docker's PORTS: 0.0.0.0:8080->80/tcp, ...
func portsColumn(e *engine.Engine, c *engine.Container) string {
	if !c.State.Running || len(c.Opts.Publish) == 0 && !c.Opts.PublishAll {
		return ""
	}
	ports, err := e.Ports(c.ID)
	if err != nil {
		return ""
	}
	var out []string
	for _, p := range ports {
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.HostPort, p.ContainerPort, p.Proto))
	}
	return strings.Join(out, ", ")
}

func stateOf(c *engine.Container) string {
	if c.State.Status == "" {
		return engine.StatusCreated
	}
	return c.State.Status
}

// psFilter is one --filter KEY=VALUE.
func psMatch(c *engine.Container, filters []string) (bool, error) {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false, fmt.Errorf("invalid --filter %q: want KEY=VALUE", f)
		}
		switch k {
		case "status":
			if stateOf(c) != v {
				return false, nil
			}
		case "name":
			if !strings.Contains(c.Name, v) {
				return false, nil
			}
		case "id":
			if !strings.HasPrefix(c.ID, v) {
				return false, nil
			}
		case "ancestor":
			if c.Image != v && !strings.HasPrefix(c.ImageID, v) && !strings.HasPrefix(strings.TrimPrefix(c.ImageID, "sha256:"), v) {
				return false, nil
			}
		case "label":
			found := false
			for _, l := range c.Opts.Labels {
				if l == v || strings.HasPrefix(l, v+"=") {
					found = true
				}
			}
			if !found {
				return false, nil
			}
		case "exited":
			if stateOf(c) != engine.StatusExited || strconv.Itoa(c.State.ExitCode) != v {
				return false, nil
			}
		case "health":
			h := "none"
			if c.State.Health != nil && c.State.Running {
				h = c.State.Health.Status
			}
			if h != v {
				return false, nil
			}
		case "volume":
			found := false
			for _, m := range c.MountPoints {
				if m.Name == v || m.Destination == v {
					found = true
				}
			}
			if !found {
				return false, nil
			}
		default:
			return false, fmt.Errorf("invalid --filter key %q: want status, name, id, ancestor, label, exited, health or volume", k)
		}
	}
	return true, nil
}

func psCommand() *cobra.Command {
	var all, quiet, noTrunc, latest bool
	var last int
	var format string
	var filters []string
	c := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			list, err := e.List()
			if err != nil {
				return err
			}
			if latest {
				last = 1
			}
			// Only running containers unless -a, -n or a status filter
			// asks for others, as docker does.
			for _, f := range filters {
				if strings.HasPrefix(f, "status=") || strings.HasPrefix(f, "exited=") {
					all = true
				}
			}
			var rows []*engine.Container
			for _, ctr := range list {
				if !all && last <= 0 && !ctr.State.Running {
					continue
				}
				ok, err := psMatch(ctr, filters)
				if err != nil {
					return err
				}
				if ok {
					rows = append(rows, ctr)
				}
			}
			if last > 0 && len(rows) > last {
				rows = rows[:last]
			}
			if quiet {
				for _, r := range rows {
					if noTrunc {
						fmt.Println(r.ID)
					} else {
						fmt.Println(r.ShortID())
					}
				}
				return nil
			}
			if format == "json" {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range rows {
					enc.Encode(newPsRow(e, r, !noTrunc))
				}
				return nil
			}
			tplText, table := cutTable(format)
			table = table || format == ""
			if tplText == "" {
				tplText = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			}
			tpl, err := parseFormat(tplText)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			if table {
				hdr := psRow{ID: "CONTAINER ID", Image: "IMAGE", Command: "COMMAND", CreatedAt: "CREATED AT",
					RunningFor: "CREATED", Ports: "PORTS", State: "STATE", Status: "STATUS", Names: "NAMES",
					Labels: "LABELS", Mounts: "MOUNTS"}
				tpl.Execute(w, hdr)
				fmt.Fprintln(w)
			}
			for _, r := range rows {
				if err := tpl.Execute(w, newPsRow(e, r, !noTrunc)); err != nil {
					return fmt.Errorf("--format: %v", err)
				}
				fmt.Fprintln(w)
			}
			return w.Flush()
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all", "a", false, "show all containers (default: running only)")
	f.BoolVarP(&quiet, "quiet", "q", false, "only show IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	f.BoolVarP(&latest, "latest", "l", false, "show the latest created container")
	f.IntVarP(&last, "last", "n", -1, "show the n last created containers")
	f.StringVar(&format, "format", "", "Go template, table TEMPLATE, or json")
	f.StringArrayVarP(&filters, "filter", "f", nil, "filter KEY=VALUE (status, name, id, ancestor, label, exited, health, volume)")
	return c
}

// inspectJSON is docker's container inspect shape (the parts berth has).
type inspectJSON struct {
	ID              string `json:"Id"`
	Created         time.Time
	Path            string
	Args            []string
	State           inspectState
	Image           string
	ImageDigest     string
	Name            string
	RestartCount    int
	Driver          string
	Platform        string
	LogPath         string
	HostConfig      map[string]any
	Mounts          []engine.MountPoint
	Config          map[string]any
	NetworkSettings map[string]any
}

type inspectState struct {
	Health     *engine.Health `json:",omitempty"`
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  string
	FinishedAt string
}

func zeroTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.Format(time.RFC3339Nano)
}

func inspectOf(e *engine.Engine, c *engine.Container) inspectJSON {
	cmd := c.Command()
	var path string
	var args []string
	if len(cmd) > 0 {
		path, args = cmd[0], cmd[1:]
	}
	if args == nil {
		args = []string{}
	}
	pid := 0
	if c.State.Running {
		pid = c.State.Pid
	}
	o := c.Opts
	img := c.ImageConfig
	cfg := map[string]any{"Image": c.Image, "Tty": o.Tty, "OpenStdin": o.Interactive, "Hostname": o.Hostname}
	if img != nil {
		cfg["Env"], cfg["Cmd"], cfg["Entrypoint"] = img.Config.Env, img.Config.Cmd, img.Config.Entrypoint
		cfg["WorkingDir"], cfg["User"], cfg["StopSignal"] = img.Config.WorkingDir, img.Config.User, img.Config.StopSignal
	}
	// The container's labels over its image's, as docker shows them.
	labels := map[string]string{}
	if img != nil {
		maps.Copy(labels, img.Config.Labels)
	}
	for _, l := range o.Labels {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	cfg["Labels"] = labels
	cfg["Env"] = c.ConfigEnv()
	if len(o.Args) > 0 {
		cfg["Cmd"] = o.Args
	}
	if o.Entrypoint != nil {
		cfg["Entrypoint"] = []string{*o.Entrypoint}
	}
	if o.User != "" {
		cfg["User"] = o.User
	}
	if o.Workdir != "" {
		cfg["WorkingDir"] = o.Workdir
	}
	if o.StopSignal != "" {
		cfg["StopSignal"] = o.StopSignal
	}
	if cfg["Hostname"] == "" {
		cfg["Hostname"] = c.ShortID()
	}
	mem, swap, nano := engine.ResourceNumbers(&o)
	policy, maxRestarts := engine.RestartPolicy(&o)
	host := map[string]any{
		"NetworkMode": o.Network, "Privileged": o.Privileged, "ReadonlyRootfs": o.ReadOnly,
		"AutoRemove": o.AutoRemove, "CapAdd": o.CapAdd, "CapDrop": o.CapDrop, "SecurityOpt": o.SecurityOpt,
		"Memory": mem, "MemorySwap": swap, "NanoCpus": nano, "CpuShares": o.CPUShares,
		"PidsLimit": o.PidsLimit, "Ulimits": o.Ulimits, "Init": o.Init, "Binds": o.Volumes, "Tmpfs": o.Tmpfs,
		"ExtraHosts": o.AddHosts, "RestartPolicy": map[string]any{"Name": policy, "MaximumRetryCount": maxRestarts},
	}
	st := c.State
	return inspectJSON{
		ID: c.ID, Created: c.Created, Path: path, Args: args,
		State: inspectState{Status: stateOf(c), Running: st.Running, Paused: st.Paused, Restarting: st.Restarting, OOMKilled: st.OOMKilled, Health: st.Health,
			Pid: pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: zeroTime(st.StartedAt), FinishedAt: zeroTime(st.FinishedAt)},
		Image: c.ImageID, ImageDigest: c.ImageDigest, Name: "/" + c.Name, RestartCount: c.RestartCount,
		Driver: "overlay", Platform: c.Platform, LogPath: e.LogPath(c.ID), HostConfig: host,
		Mounts: c.MountPoints, Config: cfg, NetworkSettings: networkSettings(e, c),
	}
}

// networkSettings is docker's NetworkSettings: the container's networks
// (address, MAC, aliases) and published ports.
func networkSettings(e *engine.Engine, c *engine.Container) map[string]any {
	ns := map[string]any{"Networks": map[string]any{}, "Ports": map[string]any{},
		"IPAddress": "", "Gateway": "", "MacAddress": "", "IPPrefixLen": 0, "Bridge": ""}
	if !c.State.Running {
		return ns
	}
	// docker's shape: each network's address, gateway, MAC and prefix, and
	// the default bridge's at top level too.
	nets := map[string]any{}
	for name, ep := range e.ContainerNetworks(c) {
		n, err := e.Networks().Inspect(name)
		if err != nil {
			continue
		}
		prefix := 0
		if _, sn, err := net.ParseCIDR(n.Subnet); err == nil {
			prefix, _ = sn.Mask.Size()
		}
		nets[name] = map[string]any{"NetworkID": n.ID, "EndpointID": ep.HostVeth, "IPAddress": ep.IP,
			"Gateway": n.Gateway, "MacAddress": ep.MAC, "IPPrefixLen": prefix, "Aliases": ep.Aliases}
		if name == network.DefaultName {
			ns["IPAddress"], ns["Gateway"], ns["MacAddress"], ns["IPPrefixLen"], ns["Bridge"] = ep.IP, n.Gateway, ep.MAC, prefix, n.Bridge
		}
	}
	ns["Networks"] = nets
	if ports, err := e.Ports(c.ID); err == nil {
		pm := map[string][]map[string]string{}
		for _, p := range ports {
			k := strconv.Itoa(p.ContainerPort) + "/" + p.Proto
			ip := p.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			pm[k] = append(pm[k], map[string]string{"HostIp": ip, "HostPort": strconv.Itoa(p.HostPort)})
		}
		ns["Ports"] = pm
	}
	return ns
}

// printInspect prints objects as a JSON array or through a Go template.
func printInspect(objs []any, format string) error {
	if format != "" && format != "json" {
		tpl, err := parseFormat(format)
		if err != nil {
			return err
		}
		for _, o := range objs {
			// Templates see the JSON shape, as docker's do.
			var m any
			b, _ := json.Marshal(o)
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber() // 33554432, not 3.3554432e+07
			dec.Decode(&m)
			if err := tpl.Execute(os.Stdout, m); err != nil {
				return fmt.Errorf("--format: %v", err)
			}
			fmt.Println()
		}
		return nil
	}
	if objs == nil {
		objs = []any{}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	return enc.Encode(objs)
}

func containerInspectCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' configuration and state as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var objs []any
			for _, ref := range args {
				ctr, err := e.Lookup(ref)
				if err != nil {
					return err
				}
				objs = append(objs, inspectOf(e, ctr))
			}
			return printInspect(objs, format)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Go template")
	return c
}

// inspectCommand is top-level `berth inspect`: containers first, then
// images, as docker resolves a name.
func inspectCommand() *cobra.Command {
	var format, typ string
	c := &cobra.Command{
		Use:   "inspect [--type container|image] NAME|ID...",
		Short: "Show containers' or images' configuration as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch typ {
			case "", "container":
			case "image":
				ic := imageInspectCommand()
				ia := args
				if format != "" {
					ia = append([]string{"--format", format}, args...)
				}
				ic.SetArgs(ia)
				ic.SilenceErrors, ic.SilenceUsage = true, true
				return ic.Execute()
			default:
				return fmt.Errorf("invalid --type %q: want container or image", typ)
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			var objs []any
			for _, ref := range args {
				ctr, err := e.Lookup(ref)
				if err != nil && typ == "container" {
					return err
				}
				if err != nil {
					ic := imageInspectCommand()
					ia := []string{ref}
					if format != "" {
						ia = append(ia, "--format", format)
					}
					if len(args) == 1 {
						ic.SetArgs(ia)
						ic.SilenceErrors, ic.SilenceUsage = true, true
						if ierr := ic.Execute(); ierr != nil {
							return fmt.Errorf("no such container or image: %s", ref)
						}
						return nil
					}
					return fmt.Errorf("no such container: %s (for images, use berth image inspect)", ref)
				}
				objs = append(objs, inspectOf(e, ctr))
			}
			return printInspect(objs, format)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Go template")
	c.Flags().StringVar(&typ, "type", "", "only containers or only images")
	return c
}

// parseSince reads docker's --since/--until: RFC 3339, a unix time, or a
// duration ago (10m).
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(f*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339, a unix timestamp or a duration like 10m", s)
}

func logsCommand() *cobra.Command {
	var o engine.LogOptions
	var tail, since, until string
	c := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Show a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			o.Tail = -1
			if tail != "" && tail != "all" {
				n, err := strconv.Atoi(tail)
				if err != nil || n < 0 {
					return fmt.Errorf("invalid --tail %q: want a number or all", tail)
				}
				o.Tail = n
			}
			if o.Since, err = parseSince(since); err != nil {
				return err
			}
			if o.Until, err = parseSince(until); err != nil {
				return err
			}
			return e.Logs(args[0], o, os.Stdout, os.Stderr)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.Follow, "follow", "f", false, "follow the output")
	f.BoolVarP(&o.Timestamps, "timestamps", "t", false, "show timestamps")
	f.StringVarP(&tail, "tail", "n", "all", "lines to show from the end")
	f.StringVar(&since, "since", "", "show logs since a time or duration ago")
	f.StringVar(&until, "until", "", "show logs before a time or duration ago")
	return c
}

func containerPruneCommand() *cobra.Command {
	return pruneCommand("Remove every stopped container (and what a killed berth left)", "Deleted Containers:", (*engine.Engine).Prune)
}

// pruneCommand is a docker-style `prune [-f]`: berth never prompts, so -f
// is accepted and changes nothing.
func pruneCommand(short, heading string, prune func(*engine.Engine) ([]string, error)) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "prune [-f]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			gone, err := prune(e)
			if len(gone) > 0 {
				fmt.Println(heading)
				for _, x := range gone {
					fmt.Println(x)
				}
			}
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never prompts)")
	return c
}
