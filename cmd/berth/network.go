package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
	"github.com/berthproject/berth/network"
)

func init() {
	n := &cobra.Command{Use: "network", Short: "Manage networks"}
	n.AddCommand(networkCreateCommand(), networkLsCommand(), networkInspectCommand(), networkRmCommand(),
		networkConnectCommand(), networkDisconnectCommand(), networkPruneCommand())
	root.AddCommand(n, portCommand())
}

func networkCreateCommand() *cobra.Command {
	var o network.CreateOpts
	var driver string
	c := &cobra.Command{
		Use:   "create [OPTIONS] NAME",
		Short: "Create a bridge network",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if driver != "bridge" {
				return fmt.Errorf("network driver %q is not supported: only bridge", driver)
			}
			o.Name = args[0]
			n, err := network.Open(storeRoot).Create(o)
			if err != nil {
				return err
			}
			fmt.Println(n.ID)
			return nil
		},
	}
	c.Flags().StringVar(&o.Subnet, "subnet", "", "subnet in CIDR form (default: a free one)")
	c.Flags().StringVar(&o.Gateway, "gateway", "", "gateway address (default: the subnet's first)")
	c.Flags().StringVarP(&driver, "driver", "d", "bridge", "driver (bridge)")
	return c
}

func networkLsCommand() *cobra.Command {
	var quiet bool
	var filters []string
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			nets, err := network.Open(storeRoot).List()
			if err != nil {
				return err
			}
			// --filter name=|id=|driver=, as docker's (substring, prefix, exact).
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || (k != "name" && k != "id" && k != "driver") {
					return fmt.Errorf("invalid --filter %q: want name=, id= or driver=", f)
				}
				var keep []*network.Network
				for _, n := range nets {
					if k == "name" && strings.Contains(n.Name, v) || k == "id" && strings.HasPrefix(n.ID, v) || k == "driver" && n.Driver == v {
						keep = append(keep, n)
					}
				}
				nets = keep
			}
			if quiet {
				for _, n := range nets {
					fmt.Println(n.ID[:12])
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tGATEWAY\tBRIDGE\tCONTAINERS")
			hasDefault := false
			for _, n := range nets {
				hasDefault = hasDefault || n.Name == network.DefaultName
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", n.ID[:12], n.Name, n.Driver, n.Subnet, n.Gateway, n.Bridge, len(n.Endpoints))
			}
			if len(filters) == 0 { // the networks berth keeps no record of
				if !hasDefault {
					fmt.Fprintf(w, "-\t%s\tbridge\t(chosen on first use)\t\t\t0\n", network.DefaultName)
				}
				fmt.Fprintln(w, "-\thost\thost\t\t\t\t")
				fmt.Fprintln(w, "-\tnone\tnull\t\t\t\t")
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only IDs")
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter KEY=VALUE: name, id, driver")
	return c
}

func networkInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			m := network.Open(storeRoot)
			var out []*network.Network
			for _, a := range args {
				n, err := m.Inspect(a)
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			b, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			fmt.Println(string(b))
			return nil
		},
	}
}

func networkRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			m := e.Networks()
			var failed error
			for _, a := range args {
				n, err := m.Inspect(a)
				if err == nil {
					if users := e.NetworkUsers(n); len(users) > 0 {
						err = fmt.Errorf("network %s is in use by container(s) %s: remove them first", n.Name, strings.Join(users, ", "))
					} else {
						err = m.Remove(n.Name)
					}
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "berth: %v\n", err)
					failed = exitError{1}
					continue
				}
				fmt.Println(a)
			}
			return failed
		},
	}
}

func networkConnectCommand() *cobra.Command {
	var aliases []string
	var ip string
	c := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a running container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return e.NetworkConnect(args[0], args[1], aliases, ip)
		},
	}
	c.Flags().StringArrayVar(&aliases, "alias", nil, "extra name of the container on this network")
	c.Flags().StringVar(&ip, "ip", "", "its IPv4 address on this network")
	return c
}

func networkDisconnectCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "disconnect NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return e.NetworkDisconnect(args[0], args[1])
		},
	}
	c.Flags().BoolP("force", "f", false, "accepted for docker compatibility")
	return c
}

// pruneNetworks removes the networks no container names (docker keeps
// those) and what killed containers left on networks.
func pruneNetworks(e *engine.Engine) ([]string, error) {
	m := e.Networks()
	nets, err := m.List()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, n := range nets {
		keep[n.Name] = len(e.NetworkUsers(n)) > 0
	}
	return m.PruneExcept(keep)
}

func networkPruneCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "prune",
		Short: "Remove unused networks and what killed containers left on them",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			removed, err := pruneNetworks(e)
			for _, r := range removed {
				fmt.Println(r)
			}
			return err
		},
	}
	c.Flags().BoolP("force", "f", false, "do not ask (berth never asks)")
	return c
}

func portCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List a container's published ports",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			ports, err := e.Ports(args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				want, proto, _ := strings.Cut(args[1], "/")
				if proto == "" {
					proto = "tcp"
				}
				found := false
				for _, p := range ports {
					if strconv.Itoa(p.ContainerPort) == want && p.Proto == proto {
						_, host, _ := strings.Cut(p.String(), " -> ")
						fmt.Println(host)
						found = true
					}
				}
				if !found {
					return fmt.Errorf("no public port %s/%s published for %s", want, proto, args[0])
				}
				return nil
			}
			for _, p := range ports {
				fmt.Println(p)
			}
			return nil
		},
	}
}
