package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/engine"
	"github.com/berthproject/berth/image"
)

// splitCtrPath splits CONTAINER:PATH; ok is false for a host path.
func splitCtrPath(arg string) (ctr, p string, ok bool) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg, false
	}
	ctr, p, ok = strings.Cut(arg, ":")
	if !ok || ctr == "" {
		return "", arg, false
	}
	return ctr, p, true
}

// copyTarget decides, with docker cp's rules, the directory to extract
// into and the name the source takes there.
func copyTarget(src string, srcIsDir bool, dst string, dstExists, dstIsDir bool) (dir, name string, err error) {
	base := path.Base(path.Clean(src))
	contents := strings.HasSuffix(src, "/.")
	switch {
	case dstExists && dstIsDir:
		if contents {
			return dst, "", nil
		}
		return dst, base, nil
	case dstExists:
		if srcIsDir {
			return "", "", fmt.Errorf("cannot copy a directory to the file %s", dst)
		}
		return path.Dir(path.Clean(dst)), path.Base(path.Clean(dst)), nil
	default:
		if strings.HasSuffix(dst, "/") && !srcIsDir {
			return "", "", fmt.Errorf("destination directory %s does not exist", dst)
		}
		return path.Dir(path.Clean(dst)), path.Base(path.Clean(dst)), nil
	}
}

func cpCommand() *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "cp CONTAINER:SRC DEST|-  or  cp SRC|- CONTAINER:DEST",
		Short: "Copy files between a container and the host (tar archive semantics)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			sc, sp, sIn := splitCtrPath(args[0])
			dc, dp, dIn := splitCtrPath(args[1])
			switch {
			case sIn && dIn:
				return errors.New("cp: copying between containers is not supported")
			case sIn:
				return copyOut(e, sc, sp, dp, follow)
			case dIn:
				return copyIn(e, sp, dc, dp)
			}
			return errors.New("cp: one side must be CONTAINER:PATH")
		},
	}
	c.Flags().BoolVarP(&follow, "follow-link", "L", false, "always follow a symlink given as the source")
	return c
}

// copyOut copies a symlink named as src as the link, as docker cp does,
// unless follow or src ends in "/" or "/.".
func copyOut(e *engine.Engine, ctr, src, dst string, follow bool) error {
	follow = follow || strings.HasSuffix(src, "/") || strings.HasSuffix(src, "/.")
	exists, isDir, err := e.StatPath(ctr, src, follow)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("cp: no such file or directory in container %s: %s", ctr, src)
	}
	if dst == "-" {
		return e.CopyFrom(ctr, src, path.Base(path.Clean(src)), follow, os.Stdout)
	}
	st, serr := os.Stat(dst)
	dir, name, err := copyTarget(src, isDir, dst, serr == nil, serr == nil && st.IsDir())
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("cp: destination directory %s does not exist", dir)
	}
	return e.CopyOut(ctr, src, dir, name, follow)
}

func copyIn(e *engine.Engine, src, ctr, dst string) error {
	if src == "-" {
		return e.CopyTo(ctr, dst, os.Stdin)
	}
	st, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	exists, isDir, err := e.StatPath(ctr, dst, true)
	if err != nil {
		return err
	}
	dir, name, err := copyTarget(src, st.IsDir(), dst, exists, isDir)
	if err != nil {
		return err
	}
	srcPath := src
	if strings.HasSuffix(src, "/.") {
		srcPath = filepath.Clean(src)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(engine.WriteTar("", srcPath, name, pw)) }()
	err = e.CopyTo(ctr, dir, pr)
	pr.CloseWithError(err)
	return err
}

func diffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "List the files a container changed (A added, C changed, D deleted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			changes, err := e.Diff(args[0])
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Println(ch.String())
			}
			return nil
		},
	}
}

func commitCommand() *cobra.Command {
	var o engine.CommitOptions
	var changes []string
	c := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Make an image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var tags []string
			if len(args) == 2 {
				tags = append(tags, args[1])
			}
			if len(changes) > 0 {
				o.Config = func(cfg *v1.Config) error { return image.ApplyChanges(cfg, changes) }
			}
			id, err := e.Commit(args[0], o, tags...)
			if err != nil {
				return err
			}
			fmt.Println(id.String())
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Author, "author", "a", "", "author")
	f.StringVarP(&o.Message, "message", "m", "", "commit message")
	f.StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction (CMD, ENV, ...) to the image")
	f.BoolVarP(&o.Pause, "pause", "p", true, "pause the container while committing")
	return c
}

func exportCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "export [-o FILE] CONTAINER",
		Short: "Write a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err == nil {
					return errors.New("refusing to write a tar archive to a terminal: use -o FILE or redirect")
				}
				return e.Export(args[0], os.Stdout)
			}
			tmp := output + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			if err := e.Export(args[0], f); err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
			if err := f.Close(); err != nil {
				os.Remove(tmp)
				return err
			}
			return os.Rename(tmp, output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	return c
}
