package main

import (
	"fmt"
	"io"
	"os"

	"github.com/berthproject/berth/image"
	"github.com/spf13/cobra"
)

func init() {
	mk := func() *cobra.Command {
		var platform, message, compression string
		var changes []string
		var quiet bool
		c := &cobra.Command{
			Use:   "import ROOTFS.tar[.gz|.zst]|- [NAME[:TAG]]",
			Short: "Make a one-layer image from a rootfs tarball",
			Args:  cobra.RangeArgs(1, 2),
			RunE: func(c *cobra.Command, args []string) error {
				switch compression {
				case "gzip", "zstd", "none":
				default:
					return fmt.Errorf("--compression %q: want gzip, zstd or none", compression)
				}
				var r io.Reader = os.Stdin
				src := args[0]
				if src != "-" {
					f, err := os.Open(src)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				tag := ""
				if len(args) == 2 {
					tag = args[1]
				}
				s, _, err := imgStore(quiet)
				if err != nil {
					return err
				}
				img, _, err := image.Import(s, r, tag, image.ImportOptions{Platform: platform, Changes: changes, Message: message, Source: src, Compression: compression})
				if err != nil {
					return err
				}
				id, _ := img.ConfigName()
				fmt.Println(id)
				return nil
			},
		}
		f := c.Flags()
		f.StringVar(&platform, "platform", "", "platform of the image (os/arch[/variant]), default the host's")
		f.StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL)")
		f.StringVarP(&message, "message", "m", "", "history comment")
		f.StringVar(&compression, "compression", "gzip", "layer compression: gzip (any tool reads it), zstd (faster, not for umoci or old docker) or none")
		f.BoolVarP(&quiet, "quiet", "q", false, "no progress output")
		return c
	}
	root.AddCommand(mk())
	imageCmd.AddCommand(mk())
}
