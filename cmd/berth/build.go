package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/build"
	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/store"
)

// parseSecrets reads --secret id=ID,src=FILE (or source=, or env=VAR;
// with neither, the variable named ID), as docker build takes them.
func parseSecrets(args []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, a := range args {
		var id, src, env string
		for _, kv := range strings.Split(a, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("--secret %s: type must be file or env", a)
				}
			default:
				return nil, fmt.Errorf("--secret %s: unknown key %q (want id, src, env)", a, k)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("--secret %s: needs an id", a)
		}
		switch {
		case src != "":
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("--secret %s: %w", a, err)
			}
			out[id] = b
		default:
			if env == "" {
				env = id
			}
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("--secret %s: no environment variable %s", a, env)
			}
			out[id] = []byte(v)
		}
	}
	return out, nil
}

// bundleRunner runs build RUN steps with berth's own runtime.
type bundleRunner struct{ rt *runtime.Runtime }

func (r bundleRunner) RunBundle(id, bundle string, stdio []*os.File) (int, error) {
	return r.rt.Run(id, runtime.CreateOpts{Bundle: bundle, Stdio: stdio})
}

func init() {
	// The createRuntime hook that puts a RUN step on a bridge network.
	reexecs[build.NetHookArg] = build.NetHook
	root.AddCommand(buildCommand())
	imageCmd.AddCommand(buildCommand())
	builder := &cobra.Command{Use: "builder", Short: "Manage the build cache"}
	builder.AddCommand(builderPruneCommand())
	root.AddCommand(builder)
}

func buildCommand() *cobra.Command {
	var (
		file, target, network, output, progress, iidfile string
		tags, buildArgs, labels, platforms, secrets      []string
		noCache, quiet, pull                             bool
		timestamp                                        int64
	)
	c := &cobra.Command{
		Use:   "build [OPTIONS] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			for _, t := range tags {
				if _, err := store.Normalize(t); err != nil {
					return fmt.Errorf("-t %s: %w", t, err)
				}
			}
			s, err := store.Open(storeRoot)
			if err != nil {
				return err
			}
			o := build.Options{
				Context: args[0], Dockerfile: file, Tags: tags, Target: target, NoCache: noCache,
				Network: network, Platforms: platforms, Output: output, StoreRoot: storeRoot,
				Store:   &pullingStore{Store: s, always: pull, pulled: map[string]error{}},
				Runtime: bundleRunner{runtime.New("")}, Out: os.Stderr,
				BuildArgs: map[string]string{}, Labels: map[string]string{},
			}
			if o.Secrets, err = parseSecrets(secrets); err != nil {
				return err
			}
			for _, a := range buildArgs {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					// docker takes the value from the environment then
					if v, ok = os.LookupEnv(k); !ok {
						continue
					}
				}
				o.BuildArgs[k] = v
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				o.Labels[k] = v
			}
			if c.Flags().Changed("timestamp") {
				t := time.Unix(timestamp, 0).UTC()
				o.Timestamp = &t
			} else if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
				n, err := strconv.ParseInt(e, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", e)
				}
				t := time.Unix(n, 0).UTC()
				o.Timestamp = &t
			}
			switch progress {
			case "", "auto":
				progress = "plain"
				if buildStderrIsTTY() {
					progress = "tty"
				}
			case "plain", "tty", "quiet":
			default:
				return fmt.Errorf("--progress=%s: want plain, tty or quiet", progress)
			}
			if quiet {
				progress = "quiet"
			}
			o.Progress = progress
			res, err := build.Build(o)
			if err != nil {
				var se *build.StepError
				if errors.As(err, &se) {
					if se.Tail != "" && progress != "plain" {
						fmt.Fprintf(os.Stderr, "--- last output of the failed step ---\n%s\n", se.Tail)
					}
					// The Dockerfile failed, not berth: exit 1 as docker build does.
					fmt.Fprintf(os.Stderr, "berth: %v\n", err)
					return exitError{1}
				}
				return err
			}
			if iidfile != "" {
				if err := os.WriteFile(iidfile, []byte(res.ID.String()), 0o644); err != nil {
					return err
				}
			}
			fmt.Println(res.ID.String())
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "Dockerfile (default CONTEXT/Dockerfile, else CONTEXT/Containerfile)")
	f.StringArrayVarP(&tags, "tag", "t", nil, "name:tag for the image (several allowed)")
	f.StringVar(&target, "target", "", "stage to build (default: the last)")
	f.StringArrayVar(&buildArgs, "build-arg", nil, "ARG value, NAME=VALUE")
	f.BoolVar(&noCache, "no-cache", false, "run every step, ignoring the build cache")
	f.StringArrayVar(&secrets, "secret", nil, "a secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR")
	f.BoolVar(&pull, "pull", false, "pull every image the Dockerfile names, not only those the store lacks")
	f.StringArrayVar(&labels, "label", nil, "label for the image, KEY=VALUE")
	f.StringVar(&network, "network", "host", "network for RUN steps: host (default), none, bridge or a network name")
	f.StringVar(&iidfile, "iidfile", "", "write the image ID to this file")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the image ID")
	f.StringSliceVar(&platforms, "platform", nil, "target platform(s), e.g. linux/amd64,linux/arm64")
	f.StringVarP(&output, "output", "o", "", "type=oci|docker,dest=FILE.tar or type=local,dest=DIR instead of the store")
	f.StringVar(&progress, "progress", "auto", "plain, tty or quiet")
	f.Int64Var(&timestamp, "timestamp", 0, "set every timestamp to this Unix time (reproducible; also SOURCE_DATE_EPOCH)")
	return c
}

func builderPruneCommand() *cobra.Command {
	var force, all bool
	c := &cobra.Command{
		Use:   "prune",
		Short: "Remove the build cache (cached steps, their layers, RUN cache mounts)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			r, err := build.Prune(storeRoot)
			if err != nil {
				return err
			}
			fmt.Printf("Deleted %d cache entries, reclaimed %.1f MB\n", r.Entries, float64(r.Bytes)/1e6)
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask (berth never asks)")
	c.Flags().BoolVarP(&all, "all", "a", false, "accepted for docker compatibility: everything is pruned")
	return c
}

func buildStderrIsTTY() bool {
	f := os.Stderr
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
