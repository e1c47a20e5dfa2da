package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthproject/berth/engine"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/image/progress"
	"github.com/berthproject/berth/store"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// imageCmd is `berth image`, the noun for image subcommands.
var imageCmd = &cobra.Command{Use: "image", Short: "Manage images"}

// imgStore opens the store at --root, with progress on stderr unless quiet.
func imgStore(quiet bool) (*store.Store, *progress.Printer, error) {
	s, err := store.Open(storeRoot)
	if err != nil {
		return nil, nil, err
	}
	p := progress.New(os.Stderr, quiet)
	if p != nil {
		s.Progress = p
	}
	return s, p, nil
}

func init() {
	root.AddCommand(imageCmd)
	for _, mk := range []func() *cobra.Command{imagesCommand, tagCommand, rmiCommand, historyCommand} {
		root.AddCommand(mk())
	}
	ls := imagesCommand()
	ls.Use, ls.Aliases = "ls [REFERENCE]", []string{"list"}
	rm := rmiCommand()
	rm.Use = "rm [-f] IMAGE..."
	imageCmd.AddCommand(ls, rm, tagCommand(), historyCommand(), imageInspectCommand(), imagePruneCommand())
}

func imagesCommand() *cobra.Command {
	var quiet, digests, all, noTrunc bool
	var format string
	var filters []string
	c := &cobra.Command{
		Use:   "images [REFERENCE]",
		Short: "List images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			rows, err := image.List(s)
			if err != nil {
				return err
			}
			rows = filterImages(rows, args, all)
			for _, fl := range filters {
				if rows, err = filterImagesBy(rows, fl); err != nil {
					return err
				}
			}
			return printImages(rows, quiet, digests, noTrunc, format)
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&filters, "filter", "f", nil, "filter KEY=VALUE: dangling=true|false, reference=PATTERN")
	f.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	f.BoolVar(&digests, "digests", false, "show digests")
	f.BoolVarP(&all, "all", "a", false, "show all images (dangling ones too)")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	f.StringVar(&format, "format", "", "Go template ({{.Repository}}) or json")
	return c
}

// filterImages keeps rows whose familiar or full name matches the
// reference (a path.Match pattern on repository[:tag]).
func filterImages(rows []image.Summary, args []string, all bool) []image.Summary {
	var out []image.Summary
	for _, r := range rows {
		if len(args) == 1 {
			if r.Dangling {
				continue
			}
			pat := args[0]
			ref := r.Repository + ":" + r.Tag
			ok, _ := path.Match(pat, ref)
			ok2, _ := path.Match(pat, r.Repository)
			if full, err := store.Normalize(pat); err == nil && full == r.Name {
				ok = true
			}
			if !ok && !ok2 {
				continue
			}
		}
		out = append(out, r)
	}
	_ = all // dangling images are listed as docker does (<none>); -a is accepted for compatibility
	return out
}

// filterImagesBy applies one images --filter, as docker's.
func filterImagesBy(rows []image.Summary, f string) ([]image.Summary, error) {
	k, v, ok := strings.Cut(f, "=")
	if !ok {
		return nil, fmt.Errorf("invalid --filter %q: want KEY=VALUE", f)
	}
	var out []image.Summary
	switch k {
	case "dangling":
		if v != "true" && v != "false" {
			return nil, fmt.Errorf("invalid --filter %q: dangling is true or false", f)
		}
		for _, r := range rows {
			if r.Dangling == (v == "true") {
				out = append(out, r)
			}
		}
	case "reference":
		return filterImages(rows, []string{v}, false), nil
	default:
		return nil, fmt.Errorf("invalid --filter key %q: want dangling or reference", k)
	}
	return out, nil
}

func printImages(rows []image.Summary, quiet, digests, noTrunc bool, format string) error {
	id := func(r image.Summary) string {
		if noTrunc {
			return r.ID
		}
		return strings.TrimPrefix(r.ID, "sha256:")[:min(12, len(strings.TrimPrefix(r.ID, "sha256:")))]
	}
	if quiet {
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				fmt.Println(id(r))
			}
		}
		return nil
	}
	if format == "json" {
		type row struct {
			Id, Repository, Tag, Digest string
			Names                       []string
			Created                     int64
			CreatedAt                   string
			Size                        int64
		}
		out := []row{}
		for _, r := range rows {
			x := row{Id: strings.TrimPrefix(r.ID, "sha256:"), Repository: r.Repository, Tag: r.Tag, Digest: r.Digest,
				Created: r.Created.Unix(), CreatedAt: r.Created.Format(time.RFC3339), Size: r.Size, Names: []string{}}
			if r.Name != "" {
				x.Names = []string{r.Name}
			}
			out = append(out, x)
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if format != "" {
		// A struct, not a map: a field docker does not have is an error,
		// as under docker. "table" prints the headers and aligns columns.
		type imageRow struct{ Repository, Tag, ID, Digest, CreatedAt, CreatedSince, Size string }
		text, table := cutTable(format)
		tpl, err := parseFormat(text)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
		if table {
			hdr := imageRow{Repository: "REPOSITORY", Tag: "TAG", ID: "IMAGE ID", Digest: "DIGEST",
				CreatedAt: "CREATED AT", CreatedSince: "CREATED", Size: "SIZE"}
			if err := tpl.Execute(w, hdr); err != nil {
				return fmt.Errorf("--format: %v", err)
			}
			fmt.Fprintln(w)
		}
		for _, r := range rows {
			v := imageRow{Repository: r.Repository, Tag: r.Tag, ID: id(r), Digest: r.Digest,
				CreatedAt: r.Created.Format(time.RFC3339), CreatedSince: since(r.Created), Size: humanSize(r.Size)}
			if err := tpl.Execute(w, v); err != nil {
				return fmt.Errorf("--format: %v", err)
			}
			fmt.Fprintln(w)
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	if digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, r := range rows {
		if digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, id(r), since(r.Created), humanSize(r.Size))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, id(r), since(r.Created), humanSize(r.Size))
		}
	}
	return tw.Flush()
}

// since is how long ago t was, as docker's CREATED columns say it.
func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return engine.HumanDuration(time.Since(t)) + " ago"
}

func humanSize(n int64) string {
	return scaledSize(uint64(max(n, 0)), 1000, []string{"B", "kB", "MB", "GB", "TB", "PB"}, "%.3g%s")
}

// scaledSize writes n in the largest unit (each base times the one before)
// that keeps it below base; whole bytes without decimals.
func scaledSize(n uint64, base float64, units []string, verb string) string {
	f := float64(n)
	for i, u := range units {
		if f < base || i == len(units)-1 {
			if i == 0 {
				return fmt.Sprintf("%d%s", n, u)
			}
			return fmt.Sprintf(verb, f, u)
		}
		f /= base
	}
	return ""
}

func tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			return s.Tag(args[0], args[1])
		},
	}
}

func rmiCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "rmi [-f] IMAGE...",
		Short: "Remove images (untag; delete with the last name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			var firstErr error
			for _, ref := range args {
				res, err := s.Remove(ref, force)
				if err != nil {
					fmt.Fprintf(os.Stderr, "berth: %v\n", err)
					firstErr = exitError{1}
					continue
				}
				for _, u := range res.Untagged {
					fmt.Printf("Untagged: %s\n", store.Familiar(u))
				}
				for _, d := range res.Deleted {
					fmt.Printf("Deleted: %s\n", d)
				}
			}
			return firstErr
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "remove an image with several names; untag an image in use")
	return c
}

func imageInspectCommand() *cobra.Command {
	var platform, format string
	c := &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show images' configuration as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			var out []*image.Inspect
			for _, ref := range args {
				in, err := image.InspectImage(s, ref, platform)
				if err != nil {
					return err
				}
				out = append(out, in)
			}
			if format != "" && format != "json" {
				tpl, err := parseFormat(format)
				if err != nil {
					return err
				}
				for _, in := range out {
					if err := tpl.Execute(os.Stdout, in); err != nil {
						return fmt.Errorf("--format: %v", err)
					}
					fmt.Println()
				}
				return nil
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "pick this platform of a multi-platform image")
	c.Flags().StringVarP(&format, "format", "f", "", "Go template")
	return c
}

func historyCommand() *cobra.Command {
	var noTrunc, quiet bool
	var format string
	c := &cobra.Command{
		Use:   "history IMAGE",
		Short: "Show how an image was made",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			img, err := s.Image(args[0], "")
			if err != nil {
				return err
			}
			hs, err := image.HistoryIn(s, img)
			if err != nil {
				return err
			}
			if format != "" {
				type historyRow struct{ ID, CreatedAt, CreatedSince, CreatedBy, Size, Comment string }
				text, table := cutTable(format)
				tpl, err := parseFormat(text)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
				if table {
					tpl.Execute(w, historyRow{"IMAGE", "CREATED AT", "CREATED", "CREATED BY", "SIZE", "COMMENT"})
					fmt.Fprintln(w)
				}
				for _, h := range hs {
					r := historyRow{ID: h.ID, CreatedAt: h.Created.Format(time.RFC3339), CreatedSince: since(h.Created),
						CreatedBy: h.CreatedBy, Size: humanSize(h.Size), Comment: h.Comment}
					if err := tpl.Execute(w, r); err != nil {
						return fmt.Errorf("--format: %v", err)
					}
					fmt.Fprintln(w)
				}
				return w.Flush()
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
			}
			for _, h := range hs {
				id, by := h.ID, h.CreatedBy
				if !noTrunc {
					if strings.HasPrefix(id, "sha256:") {
						id = id[7:19]
					}
					if len(by) > 45 {
						by = by[:44] + "…"
					}
				}
				if quiet {
					fmt.Println(id)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, since(h.Created), by, humanSize(h.Size), h.Comment)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show IDs")
	c.Flags().StringVar(&format, "format", "", "Go template (table prefix: with headers)")
	return c
}

func imagePruneCommand() *cobra.Command {
	var all, force bool
	c := &cobra.Command{
		Use:   "prune [-a]",
		Short: "Remove dangling images (-a: every image no container uses)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			res, err := s.Prune(all)
			if err != nil {
				return err
			}
			for _, e := range res.Removed {
				if e.Name != "" {
					fmt.Printf("untagged: %s\n", store.Familiar(e.Name))
				}
				fmt.Printf("deleted: %s\n", e.Descriptor.Digest)
			}
			fmt.Printf("Total reclaimed space: %s\n", humanSize(res.Reclaimed))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses")
	c.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never prompts)")
	return c
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
