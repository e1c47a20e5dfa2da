package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/engine"
	"github.com/berthproject/berth/inspect"
	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/store"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() {
	root.AddCommand(doctorCommand(), slimCommand(), debugCommand())
}

func doctorCommand() *cobra.Command {
	var format, platform string
	var compare []string
	c := &cobra.Command{
		Use:   "doctor IMAGE [--compare IMAGE2 ...]",
		Short: "Report what an image holds and whether its entrypoint can start (read from its layers, never run)",
		Long: `doctor reads an image's layers and reports its distro, libc, shell, package
manager, sizes, wasted space, setuid files and users, resolves the
entrypoint as the runtime and the dynamic loader would (PATH, symlinks,
ELF interpreter, every needed library) and gives a verdict with numbers.
With --compare (or several images) it prints one table with a column per image.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			s, err := store.Open(storeRoot)
			if err != nil {
				return err
			}
			// `doctor A --compare B C`: cobra hands over B as the flag's
			// value and C as an argument; keep the order as typed.
			refs := append(append([]string{args[0]}, compare...), args[1:]...)
			var reports []*inspect.Report
			for _, ref := range refs {
				img, err := s.Image(ref, platform)
				if err != nil {
					return err
				}
				r, err := inspect.Doctor(ref, img)
				if err != nil {
					return fmt.Errorf("%s: %w", ref, err)
				}
				reports = append(reports, r)
			}
			switch {
			case format == "json" && len(reports) == 1:
				return writeJSON(reports[0])
			case format == "json":
				return writeJSON(reports)
			case len(reports) == 1:
				reports[0].WriteText(os.Stdout)
			default:
				inspect.WriteCompare(os.Stdout, reports)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "output format: text or json")
	c.Flags().StringArrayVar(&compare, "compare", nil, "images to compare side by side (repeatable; extra arguments count too)")
	c.Flags().StringVar(&platform, "platform", "", "platform of a multi-arch image (default: the host's)")
	return c
}

func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func slimCommand() *cobra.Command {
	var tags, includes []string
	var probe, platform string
	c := &cobra.Command{
		Use:   "slim IMAGE -t NEW [--include PATH]... [--probe 'ARGS']",
		Short: "Make a distroless copy of an image: only what its entrypoint loads and reads",
		Long: `slim writes a single-layer image that keeps the entrypoint, its ELF
interpreter and libraries (with the symlinks on the way), the NSS files and
modules glibc loads at run time, CA certificates, tzdata, an interpreted
app's interpreter, runtime files and app directory, and the --include paths.
Shell, package manager and everything else are dropped; the config is the
original's. --probe runs both images with the same arguments (berth run --rm)
and fails if their output or exit status differ.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(tags) == 0 {
				return errors.New("slim: -t NEW is required")
			}
			var probeArgs []string
			if c.Flags().Changed("probe") {
				var err error
				if probeArgs, err = inspect.SplitArgs(probe); err != nil {
					return fmt.Errorf("--probe %q: %w", probe, err)
				}
			}
			s, err := store.Open(storeRoot)
			if err != nil {
				return err
			}
			img, err := s.Image(args[0], platform)
			if err != nil {
				return err
			}
			res, err := inspect.Slim(img, includes)
			if err != nil {
				return fmt.Errorf("slim %s: %w", args[0], err)
			}
			defer res.Close()
			for _, p := range res.Missing {
				fmt.Fprintf(os.Stderr, "warning: the original already fails: %s\n", p)
			}
			if _, err := s.Write(res.Image, tags...); err != nil {
				return err
			}
			id, err := res.Image.ConfigName()
			if err != nil {
				return err
			}
			fmt.Printf("%s: %d files, %s\n", args[0], res.BeforeFiles, inspect.MB(res.BeforeBytes))
			fmt.Printf("%s: %d files, %s (%.1fx smaller)\n", tags[0], res.AfterFiles, inspect.MB(res.AfterBytes), float64(res.BeforeBytes)/float64(max(res.AfterBytes, 1)))
			fmt.Printf("image ID %s\n", id.Hex[:12])
			if probeArgs != nil || c.Flags().Changed("probe") {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				a, _, err := inspect.Probe(self, []string{"--root", storeRoot}, args[0], tags[0], probeArgs)
				if err != nil {
					// A slim image that does not behave like the original is not kept.
					for _, t := range tags {
						s.Remove(t, false)
					}
					return err
				}
				fmt.Printf("probe: same output (%d bytes) and exit status %d from both images\n", len(a.Stdout), a.Code)
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&tags, "tag", "t", nil, "name of the slim image (repeatable)")
	c.Flags().StringArrayVar(&includes, "include", nil, "path of the image to keep as well (repeatable)")
	c.Flags().StringVar(&probe, "probe", "", "arguments to run both images with and compare")
	c.Flags().StringVar(&platform, "platform", "", "platform of a multi-arch image (default: the host's)")
	return c
}

func debugCommand() *cobra.Command {
	var toolbox string
	c := &cobra.Command{
		Use:   "debug TARGET [--toolbox IMAGE] [-- CMD...]",
		Short: "Open a toolbox beside a running container (its processes, network and files at /target)",
		Long: `debug starts a toolbox container (default: busybox from busybox-static,
stored as ` + inspect.DefaultToolbox + `) in the target container's pid, net, ipc and
uts namespaces: ps shows the target's processes, the network is the
target's, and the target's root filesystem is at /target. The target is
left untouched; the toolbox is removed when its command exits.
With an image as TARGET, a container of the image is started (detached)
for the session and removed with the toolbox.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			target, cmd := args[0], args[1:]
			e, err := openEngine()
			if err != nil {
				return err
			}
			ctr, lerr := e.Lookup(target)
			if lerr != nil {
				// Not a container: an image to run for the session.
				if _, err := e.Store.Image(target, ""); err != nil {
					return fmt.Errorf("debug: %s is neither a container (%v) nor an image (%v)", target, lerr, err)
				}
				if ctr, err = e.Create(engine.Options{Image: target}); err != nil {
					return err
				}
				defer e.Remove(ctr.ID, engine.RemoveOpts{Force: true, Volumes: true})
				if err := e.StartDetached(ctr); err != nil {
					return startErr(err)
				}
				if ctr, err = e.Lookup(ctr.ID); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "debug: started %s from %s for this session\n", ctr.ShortID(), target)
			}
			if !ctr.State.Running || ctr.State.Pid <= 0 {
				return fmt.Errorf("debug: container %s is not running", target)
			}
			tb, err := inspect.ToolboxImage(e.Store, toolbox)
			if err != nil {
				return err
			}
			tty := debugTTY(os.Stdin) && debugTTY(os.Stdout)
			run := func(id, dir string, stdio []*os.File, sock string) (int, error) {
				defer e.Runtime.Delete(id, true)
				return e.Runtime.Run(id, runtime.CreateOpts{Bundle: dir, Stdio: stdio, ConsoleSocket: sock})
			}
			code, err := inspect.Debug(e.Store, run, tb, inspect.DebugOptions{
				Pid: ctr.State.Pid, Cmd: cmd, Stdio: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Tty: tty,
				WorkDir: filepath.Join(runtime.DefaultRoot, "..", "debug"),
				Forget:  func(id string) { e.Runtime.Delete(id, true) },
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	c.Flags().StringVar(&toolbox, "toolbox", "", "image to use as the toolbox (default "+inspect.DefaultToolbox+")")
	return c
}

// debugTTY tells whether the user sits at a terminal (then the toolbox
// shell runs interactive).
func debugTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
