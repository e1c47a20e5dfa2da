package build

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/network"
)

// NetHookArg is the hidden first argument under which a program using
// this package runs NetHook (cmd/berth registers it as a re-exec entry).
// A RUN on a bridge network names the running executable, with this
// argument, as its createRuntime hook: the runtime runs it once the
// step's namespaces exist and before its command starts, which is when
// the veth must go in; whatever runner executes the bundle honours it.
const NetHookArg = "build-network-attach"

// netHookTimeout bounds the hook (seconds): an attach waits on the
// network state's lock behind other containers, never for long.
const netHookTimeout = 60

// NetHook attaches the RUN container whose OCI state is on stdin to a
// network. args: store root, network, container ID, hosts file.
func NetHook(args []string) int {
	if len(args) != 4 {
		fmt.Fprintf(os.Stderr, "%s: want STORE-ROOT NETWORK ID HOSTS-FILE\n", NetHookArg)
		return 2
	}
	var st specs.State
	if err := json.NewDecoder(os.Stdin).Decode(&st); err != nil {
		fmt.Fprintf(os.Stderr, "%s: container state on stdin: %v\n", NetHookArg, err)
		return 1
	}
	_, err := network.Open(args[0]).Attach(network.AttachOpts{
		Network: args[1], ContainerID: args[2], ContainerName: args[2],
		Pid: st.Pid, HostsFile: args[3], Hostname: runHostname,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "network %s: %v\n", args[1], err)
		return 1
	}
	return 0
}

// runHostname is the hostname of every RUN step.
const runHostname = "berth-build"

// bridged reports whether a RUN network mode is a network of berth's
// own ("bridge" or a user-defined one) rather than host or none.
func bridged(mode string) bool { return mode != "host" && mode != "none" }

// checkNetwork vets a build or RUN network mode before anything runs:
// host, none, bridge, or an existing network of the store at root.
func checkNetwork(root, mode string) error {
	switch {
	case !bridged(mode) || mode == network.DefaultName:
		return nil
	case strings.HasPrefix(mode, "container:"):
		return fmt.Errorf("--network %s: joining a container's network is not supported for builds", mode)
	case root == "":
		return fmt.Errorf("--network %s: bridge networks need a store root", mode)
	}
	if _, err := network.Open(root).Inspect(mode); err != nil {
		return fmt.Errorf("--network %s: %w", mode, err)
	}
	return nil
}

// netHook is the createRuntime hook that attaches RUN container id to
// network mode, keeping hostsFile current.
func netHook(root, mode, id, hostsFile string) specs.Hook {
	// The build process's own executable by pid: the hook is run by the
	// runtime, which may be another program, and berth's binary may have
	// been replaced on disk since this build started.
	exe := "/proc/" + strconv.Itoa(os.Getpid()) + "/exe"
	t := netHookTimeout
	return specs.Hook{Path: exe, Args: []string{"berth", NetHookArg, root, mode, id, hostsFile}, Timeout: &t}
}

// detachRun takes RUN container id off its networks: veth, address,
// rules; the store's default bridge of a temporary root goes with its
// last endpoint.
func detachRun(root, id string) error {
	if err := network.Open(root).Detach(id, ""); err != nil {
		return fmt.Errorf("detaching the RUN container from its network: %w", err)
	}
	return nil
}

// runNetworkFlags takes from the RUN lines of a parsed Dockerfile the
// --network values BuildKit's parser refuses (it knows only default,
// none and host) and returns them by line, leaving --network=default in
// their place so the parse goes through.
func runNetworkFlags(nodes []*parser.Node) map[int]string {
	out := map[int]string{}
	for _, n := range nodes {
		if !strings.EqualFold(n.Value, "run") {
			continue
		}
		for i, f := range n.Flags {
			v, ok := strings.CutPrefix(f, "--network=")
			if !ok || v == "" || v == "default" || v == "none" || v == "host" {
				continue
			}
			n.Flags[i] = "--network=default"
			out[n.StartLine] = v
		}
	}
	return out
}
