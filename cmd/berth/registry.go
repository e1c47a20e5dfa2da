package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/berthproject/berth/registry"
	"github.com/berthproject/berth/store"
	"github.com/spf13/cobra"
)

// regContext is cancelled by ^C so a pull or push stops cleanly.
func regContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

func init() {
	pull := func() *cobra.Command {
		var o registry.Options
		var tlsVerify, quiet bool
		c := &cobra.Command{
			Use:   "pull REFERENCE",
			Short: "Fetch an image from a registry",
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				o.Insecure = !tlsVerify
				s, p, err := imgStore(quiet)
				if err != nil {
					return err
				}
				ctx, cancel := regContext()
				defer cancel()
				if p != nil {
					p.Line("Pulling %s", args[0])
				}
				res, err := registry.Pull(ctx, s, args[0], o)
				if err != nil {
					return err
				}
				if quiet {
					fmt.Println(res.ID)
					return nil
				}
				fmt.Printf("Digest: %s\n", res.Digest)
				if res.Name != "" {
					fmt.Printf("Status: image %s stored\n", store.Familiar(res.Name))
				}
				fmt.Println(res.ID)
				return nil
			},
		}
		f := c.Flags()
		f.StringVar(&o.Platform, "platform", "", "pull this platform (os/arch[/variant]) of a multi-platform image")
		f.BoolVar(&o.AllPlatforms, "all-platforms", false, "keep every platform (the whole index)")
		f.BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate (localhost registries use HTTP anyway)")
		f.BoolVarP(&quiet, "quiet", "q", false, "no progress; print only the image ID")
		return c
	}
	push := func() *cobra.Command {
		var o registry.Options
		var tlsVerify, quiet bool
		c := &cobra.Command{
			Use:   "push IMAGE [DESTINATION]",
			Short: "Send an image (or every image of a multi-platform index) to a registry",
			Args:  cobra.RangeArgs(1, 2),
			RunE: func(c *cobra.Command, args []string) error {
				o.Insecure = !tlsVerify
				s, p, err := imgStore(quiet)
				if err != nil {
					return err
				}
				dst := ""
				if len(args) == 2 {
					dst = args[1]
				}
				ctx, cancel := regContext()
				defer cancel()
				if p != nil {
					o.Progress = p
				}
				d, err := registry.Push(ctx, s, args[0], dst, o)
				if err != nil {
					return err
				}
				if !quiet {
					fmt.Printf("Digest: %s\n", d)
				}
				return nil
			},
		}
		f := c.Flags()
		f.BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate (localhost registries use HTTP anyway)")
		f.BoolVarP(&quiet, "quiet", "q", false, "no progress output")
		return c
	}
	login := &cobra.Command{
		Use:   "login [-u USER] [-p PASSWORD | --password-stdin] REGISTRY",
		Short: "Save credentials for a registry (after checking them)",
		Args:  cobra.ExactArgs(1),
	}
	var user, password, authFile string
	var stdin, tlsVerify bool
	login.Flags().StringVarP(&user, "username", "u", "", "user name")
	login.Flags().StringVarP(&password, "password", "p", "", "password")
	login.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
	login.Flags().BoolVar(&tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate")
	login.Flags().StringVar(&authFile, "authfile", "", "credential file (default $BERTH_AUTH_FILE or ~/.config/berth/auth.json)")
	login.RunE = func(c *cobra.Command, args []string) error {
		if c.Flags().Changed("password") {
			// Any user of the host reads a process's arguments (ps, /proc/PID/cmdline).
			fmt.Fprintln(os.Stderr, "WARNING! --password shows the password to every user of this host (ps, /proc/PID/cmdline): use --password-stdin")
		}
		if stdin {
			if password != "" {
				return errors.New("--password and --password-stdin are exclusive")
			}
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("reading password from stdin: %v", err)
			}
			password = strings.TrimRight(line, "\r\n")
		}
		if user == "" || password == "" {
			return errors.New("login: give -u USER and -p PASSWORD (or --password-stdin)")
		}
		ctx, cancel := regContext()
		defer cancel()
		if err := registry.Login(ctx, args[0], user, password, registry.Options{Insecure: !tlsVerify, AuthFile: authFile}); err != nil {
			return err
		}
		fmt.Println("Login Succeeded")
		return nil
	}
	logout := &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Forget a registry's credentials",
		Args:  cobra.ExactArgs(1),
	}
	var logoutFile string
	logout.Flags().StringVar(&logoutFile, "authfile", "", "credential file")
	logout.RunE = func(c *cobra.Command, args []string) error {
		if err := registry.Logout(args[0], registry.Options{AuthFile: logoutFile}); err != nil {
			return err
		}
		fmt.Printf("Removed login credentials for %s\n", args[0])
		return nil
	}
	root.AddCommand(pull(), push(), login, logout)
	imageCmd.AddCommand(pull(), push())
}
