package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berthproject/berth/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Network modes of --network: none, host, container:NAME, or a bridge
// network by name ("bridge" is the default one).
const (
	netNone      = "none"
	netHost      = "host"
	netContainer = "container"
	netBridge    = "bridge"
)

// networkMode classifies --network and returns the network or container
// it names. An empty mode is none, as it was before bridges existed:
// the CLI's --network default decides what users get.
func networkMode(mode string) (kind, name string) {
	switch {
	case mode == "" || mode == netNone:
		return netNone, ""
	case mode == netHost:
		return netHost, ""
	case strings.HasPrefix(mode, "container:"):
		return netContainer, strings.TrimPrefix(mode, "container:")
	case mode == "default":
		return netBridge, network.DefaultName
	}
	return netBridge, mode
}

// Networks is the store root's network manager.
func (e *Engine) Networks() *network.Manager { return network.Open(e.Root) }

// validateNetwork checks --network, -p and --network-alias before
// anything is made: a named network must exist, ports must parse, and
// ports or aliases need a network of berth's own.
func (e *Engine) validateNetwork(mode string, publish []string, publishAll bool, aliases []string) error {
	kind, name := networkMode(mode)
	for _, p := range publish {
		if _, err := network.ParsePort(p); err != nil {
			return err
		}
	}
	if kind != netBridge && (len(publish) > 0 || publishAll) {
		return fmt.Errorf("published ports need a bridge network, not --network %s", mode)
	}
	for _, a := range aliases {
		if !nameRe.MatchString(a) { // a name in a hosts file: no blanks or newlines
			return fmt.Errorf("invalid --network-alias %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", a)
		}
	}
	if len(aliases) > 0 && (kind != netBridge || name == network.DefaultName) {
		return fmt.Errorf("--network-alias needs a user-defined network, not --network %s", mode)
	}
	switch kind {
	case netContainer:
		if name == "" {
			return fmt.Errorf("invalid --network %q: want container:NAME", mode)
		}
		if _, err := e.Lookup(name); err != nil {
			return fmt.Errorf("--network %s: %w", mode, err)
		}
	case netBridge:
		if name != network.DefaultName {
			if _, err := e.Networks().Inspect(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// containerNetns is the network namespace a container:NAME container
// joins: that of the other container's init, which must be running.
func (e *Engine) containerNetns(mode string) (string, error) {
	_, name := networkMode(mode)
	other, err := e.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("--network %s: %w", mode, err)
	}
	if !other.State.Running || other.State.Pid <= 0 {
		return "", fmt.Errorf("--network %s: container %s is not running", mode, other.Name)
	}
	return "/proc/" + strconv.Itoa(other.State.Pid) + "/ns/net", nil
}

// checkJoinedNetns makes sure that pid, the init of a container made with
// --network container:NAME, is in NAME's network namespace. The spec names
// it by /proc/<NAME's pid>/ns/net when the container is prepared: had NAME
// died and its pid gone to another process before create, the new
// container would be in that process's network namespace.
func (e *Engine) checkJoinedNetns(mode string, pid int) error {
	_, name := networkMode(mode)
	return e.checkJoined("--network "+mode, name, "net", pid)
}

// checkJoined checks that pid is in container name's namespace of the
// given kind (its file under /proc/PID/ns); what names the option in errors.
func (e *Engine) checkJoined(what, name, file string, pid int) error {
	other, err := e.Lookup(name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// The runtime's state checks the init's start time: read the
	// namespace between two checks that the pid is still that init.
	alive := func() (int, bool) {
		st, err := e.Runtime.State(other.ID)
		if err != nil {
			return 0, false
		}
		return st.Pid, (st.Status == specs.StateRunning || st.Status == specs.StateCreated) && st.Pid > 0
	}
	tpid, ok := alive()
	if !ok {
		return fmt.Errorf("%s: container %s is not running", what, other.Name)
	}
	want, err := os.Readlink("/proc/" + strconv.Itoa(tpid) + "/ns/" + file)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if again, ok := alive(); !ok || again != tpid {
		return fmt.Errorf("%s: container %s is not running", what, other.Name)
	}
	got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + file)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s: container %s went away while this one was made", what, other.Name)
	}
	return nil
}

// exposeSet is --expose's ports in the image config's form ("80/tcp").
func exposeSet(expose []string) map[string]struct{} {
	out := map[string]struct{}{}
	for _, p := range expose {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		out[p] = struct{}{}
	}
	return out
}

// portBindings are the container's -p values plus, with -P, every port
// its image EXPOSEs on a random host port.
func portBindings(c *Container, publish []string, publishAll bool) ([]network.PortBinding, error) {
	var out []network.PortBinding
	for _, p := range publish {
		b, err := network.ParsePort(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if publishAll {
		ports := exposeSet(c.Opts.Expose)
		if c.ImageConfig != nil {
			for p := range c.ImageConfig.Config.ExposedPorts {
				ports[p] = struct{}{}
			}
		}
		exp, err := network.ExposedPorts(ports)
		if err != nil {
			return nil, err
		}
		out = append(out, exp...)
	}
	return out, nil
}

// attachNetwork gives the container created with init pid (not started
// yet) its network: lo up for none, a veth into the bridge network for
// bridge modes; host and container:NAME need nothing here.
func (e *Engine) attachNetwork(c *Container, pid int, publish []string, publishAll bool, aliases []string) error {
	kind, name := networkMode(c.Opts.Network)
	switch kind {
	case netHost, netContainer:
		return nil
	case netNone:
		return loopbackUp(pid)
	}
	ports, err := portBindings(c, publish, publishAll)
	if err != nil {
		return err
	}
	// The attachment maps the hostname to the container's address in its
	// hosts file, and --add-host NAME:host-gateway names to the network's
	// gateway, the host's address there, as docker does.
	var gw []string
	for _, h := range c.Opts.AddHosts {
		if name, ip, _ := strings.Cut(h, ":"); ip == "host-gateway" {
			gw = append(gw, name)
		}
	}
	_, err = e.Networks().Attach(network.AttachOpts{
		Network: name, ContainerID: c.ID, ContainerName: c.Name, Aliases: aliases,
		Pid: pid, HostsFile: filepath.Join(e.dir(c.ID), "hosts"), Ports: ports,
		Hostname: containerHostname(c), GatewayNames: gw, IP: c.Opts.IP, MAC: c.Opts.MACAddress,
	})
	if err != nil {
		return fmt.Errorf("network %s: %w", name, err)
	}
	return nil
}

// detachNetwork takes the container off every network (veth, address,
// rules, hosts entries); nothing to do is no error.
func (e *Engine) detachNetwork(id string) error {
	return e.Networks().Detach(id, "")
}

// NetworkConnect attaches a running container to one more network.
func (e *Engine) NetworkConnect(netRef, ref string, aliases []string, ip string) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	n, err := e.Networks().Inspect(netRef)
	if err != nil {
		return err
	}
	if !c.State.Running || c.State.Pid <= 0 {
		return fmt.Errorf("container %s is not running", c.Name)
	}
	if kind, _ := networkMode(c.Opts.Network); kind == netHost || kind == netContainer {
		return fmt.Errorf("container %s uses --network %s: it has no network of its own to connect", c.Name, c.Opts.Network)
	}
	_, err = e.Networks().Attach(network.AttachOpts{
		Network: n.Name, ContainerID: c.ID, ContainerName: c.Name, Aliases: aliases,
		Pid: c.State.Pid, HostsFile: filepath.Join(e.dir(c.ID), "hosts"), Hostname: containerHostname(c), IP: ip,
	})
	return err
}

// NetworkDisconnect takes a container off one network.
func (e *Engine) NetworkDisconnect(netRef, ref string) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	if err := e.Networks().Detach(c.ID, netRef); err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	return nil
}

// Ports lists a running container's published ports.
func (e *Engine) Ports(ref string) ([]network.PortBinding, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, nil
	}
	return e.Networks().Ports(c.ID)
}

// ContainerNetworks returns a container's attachments by network name,
// for inspect.
func (e *Engine) ContainerNetworks(c *Container) map[string]*network.Endpoint {
	eps, _ := e.Networks().Endpoints(c.ID)
	return eps
}

// NetworkUsers names the containers whose --network is the network, run
// or not: removing it would strand them.
func (e *Engine) NetworkUsers(n *network.Network) []string {
	all, _ := e.List()
	var names []string
	for _, c := range all {
		if kind, name := networkMode(c.Opts.Network); kind == netBridge && (name == n.Name || name == n.ID) {
			names = append(names, c.Name)
		}
	}
	return names
}
