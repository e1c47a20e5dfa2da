package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/image/archive"
	"github.com/berthproject/berth/store"
	"github.com/spf13/cobra"
)

func init() {
	save := func() *cobra.Command {
		var output, format string
		var quiet bool
		c := &cobra.Command{
			Use:   "save [-o FILE] IMAGE...",
			Short: "Write images to a docker-archive or oci-archive tarball",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				s, p, err := imgStore(quiet)
				if err != nil {
					return err
				}
				if format != archive.DockerArchive && format != archive.OCIArchive {
					return fmt.Errorf("unknown format %q (want docker-archive or oci-archive)", format)
				}
				for _, ref := range args {
					if _, err := s.Resolve(ref); err != nil {
						return err
					}
				}
				var w io.Writer = os.Stdout
				var tmp *os.File
				if output != "" {
					// Write beside the target and rename: a failed save
					// leaves no half archive under the name.
					tmp, err = os.CreateTemp(filepath.Dir(output), ".berth-save-")
					if err != nil {
						return fmt.Errorf("-o %s: cannot write there: %w", output, errors.Unwrap(err))
					}
					defer os.Remove(tmp.Name())
					w = tmp
				} else if isTerminal(os.Stdout) {
					return fmt.Errorf("refusing to write an archive to a terminal: use -o FILE or redirect")
				}
				bw := bufio.NewWriterSize(w, 1<<20)
				var rep store.Progress
				if p != nil {
					rep = p
				}
				err = archive.Save(s, bw, args, format, rep)
				if err == nil {
					err = bw.Flush()
				}
				if err != nil {
					return err
				}
				if tmp != nil {
					if err := tmp.Close(); err != nil {
						return err
					}
					if err := os.Chmod(tmp.Name(), 0o644); err != nil {
						return err
					}
					return os.Rename(tmp.Name(), output)
				}
				return nil
			},
		}
		c.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
		c.Flags().StringVar(&format, "format", archive.DockerArchive, "docker-archive or oci-archive")
		c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
		return c
	}
	load := func() *cobra.Command {
		var input string
		var quiet bool
		c := &cobra.Command{
			Use:   "load [-i FILE]",
			Short: "Load images from a docker or OCI archive (gzip too; stdin by default)",
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, args []string) error {
				var r io.Reader = os.Stdin
				if input != "" && input != "-" {
					f, err := os.Open(input)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				s, _, err := imgStore(quiet)
				if err != nil {
					return err
				}
				loaded, err := archive.Load(s, r)
				if err != nil {
					return err
				}
				for _, l := range loaded {
					if len(l.Names) == 0 {
						fmt.Printf("Loaded image ID: %s\n", l.ID)
					}
					for _, n := range l.Names {
						fmt.Printf("Loaded image: %s\n", store.Familiar(n))
					}
				}
				return nil
			},
		}
		c.Flags().StringVarP(&input, "input", "i", "", "read from FILE instead of stdin")
		c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
		return c
	}
	root.AddCommand(save(), load())
	imageCmd.AddCommand(save(), load())
}
