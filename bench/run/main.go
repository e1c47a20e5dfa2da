// Command run times `berth run --rm busybox true` against `podman run
// --rm` of the same image (and `docker run --rm` when a dockerd answers),
// round-robin in one run so machine noise hits each alike, plus berth's
// `run -d` + `rm -f` cycle; it prints medians, p90s and ratios.
//
//	go run ./bench/run [-n 20] [-berth bin/berth]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/fixture"
)

type contender struct {
	name string
	// step runs one measured iteration (it may run several commands).
	step func() error
	ms   []float64
	err  error
}

func main() {
	n := flag.Int("n", 20, "runs per contender")
	berth := flag.String("berth", "bin/berth", "berth binary")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("run as root")
	}
	bin, err := filepath.Abs(*berth)
	if err != nil {
		fatal(err.Error())
	}
	work, err := os.MkdirTemp("/var/tmp", "berth-bench-run-")
	if err != nil {
		fatal(err.Error())
	}
	defer os.RemoveAll(work)
	tarPath := filepath.Join(work, "busybox.tar")
	if err := fixture.BusyboxTar(tarPath); err != nil {
		fatal(err.Error())
	}
	root := filepath.Join(work, "berth")
	sh := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// A second root measures the cold case, where every run makes and
	// removes the bridge: on the default root berth0 stays up between
	// containers, as podman's CNI bridge does, but a non-default root's
	// default bridge goes with its last container.
	coldRoot := filepath.Join(work, "berth-cold")
	for _, r := range []string{root, coldRoot} {
		if err := sh(bin, "--root", r, "import", "-q", tarPath, "bench-busybox"); err != nil {
			fatal(err.Error())
		}
	}
	// A detached container holds the first root's bridge up, so that the
	// warm row measures what a user sees.
	holder, err := exec.Command(bin, "--root", root, "run", "-d", "bench-busybox", "sleep", "86400").Output()
	if err != nil {
		fatal("holding the bridge up: " + err.Error())
	}
	defer exec.Command(bin, "--root", root, "rm", "-f", strings.TrimSpace(string(holder))).Run()
	berthRun := func(root string, args ...string) func() error {
		return func() error { return sh(bin, append([]string{"--root", root}, args...)...) }
	}
	cs := []*contender{
		{name: "berth run --rm (none)", step: berthRun(root, "run", "--rm", "--network", "none", "bench-busybox", "true")},
		{name: "berth run -d + rm -f (none)", step: func() error {
			out, err := exec.Command(bin, "--root", root, "run", "-d", "--network", "none", "bench-busybox", "sleep", "30").Output()
			if err != nil {
				return fmt.Errorf("berth run -d: %v", err)
			}
			return sh(bin, "--root", root, "rm", "-f", strings.TrimSpace(string(out)))
		}},
		{name: "berth run --rm (bridge, the default)", step: berthRun(root, "run", "--rm", "bench-busybox", "true")},
		{name: "berth run --rm (bridge, cold: made and removed each run)", step: berthRun(coldRoot, "run", "--rm", "bench-busybox", "true")},
	}
	if _, err := exec.LookPath("podman"); err == nil {
		// podman runs with runc (Debian's crun refuses cgroups on this
		// hybrid v1/v2 host) and explicit ulimits: its defaults (nofile
		// 1048576, nproc) exceed what root without CAP_SYS_RESOURCE may set.
		proot, prun := filepath.Join(work, "podman"), filepath.Join(work, "podman-run")
		pod := []string{"--root", proot, "--runroot", prun, "--storage-driver", "overlay", "--runtime", "runc"}
		if err := sh("podman", append(pod, "import", "-q", tarPath, "localhost/bench-busybox")...); err != nil {
			fmt.Println("podman skipped:", err)
		} else {
			lim := []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
			cs = append(cs, &contender{name: "podman run --rm (none)", step: func() error {
				return sh("podman", append(append(append(pod, "run", "--rm", "--network", "none"), lim...), "localhost/bench-busybox", "true")...)
			}}, &contender{name: "podman run --rm (bridge, the default)", step: func() error {
				return sh("podman", append(append(append(pod, "run", "--rm"), lim...), "localhost/bench-busybox", "true")...)
			}})
			defer exec.Command("podman", append(pod, "system", "reset", "-f")...).Run()
		}
	}
	// docker: a private daemon from Debian's docker.io (overlay2, its
	// default driver; no bridge, so only the no-network row).
	if _, err := exec.LookPath("dockerd"); err == nil {
		d, err := fixture.StartDockerd(filepath.Join(work, "dockerd"), "overlay2")
		if err != nil {
			fmt.Println("docker skipped:", err)
		} else {
			defer d.Stop()
			dk := func(args ...string) error {
				if out, err := d.Docker(context.Background(), args...).CombinedOutput(); err != nil {
					return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
				}
				return nil
			}
			if err := dk("import", tarPath, "bench-busybox"); err != nil {
				fmt.Println("docker skipped:", err)
			} else {
				cs = append(cs, &contender{name: "docker run --rm (none)", step: func() error {
					return dk("run", "--rm", "--network", "none", "bench-busybox", "true")
				}})
			}
		}
	}
	for _, c := range cs { // warm-up
		c.err = c.step()
	}
	for i := 0; i < *n; i++ {
		for _, c := range cs {
			if c.err != nil {
				continue
			}
			t0 := time.Now()
			if err := c.step(); err != nil {
				c.err = err
				continue
			}
			c.ms = append(c.ms, float64(time.Since(t0).Microseconds())/1000)
		}
	}
	fmt.Printf("`berth run --rm busybox true` vs peers, %d interleaved runs each (ms, wall):\n\n", *n)
	fmt.Println("| command | median | p90 | berth run --rm / this, same network |")
	fmt.Println("|---|---:|---:|---:|")
	for _, c := range cs {
		if c.err != nil {
			fmt.Printf("| %s | failed: %v | | |\n", c.name, c.err)
			continue
		}
		// Each row against berth's run --rm on the same kind of network.
		base := median(cs[0].ms)
		if strings.Contains(c.name, "bridge") {
			base = median(cs[2].ms)
		}
		ratio := fmt.Sprintf("%.2f", base/median(c.ms))
		if strings.HasPrefix(c.name, "podman") && strings.Contains(c.name, "bridge") && cs[3].err == nil {
			ratio += fmt.Sprintf(" (cold: %.2f)", median(cs[3].ms)/median(c.ms))
		}
		if strings.Contains(c.name, "cold") {
			ratio = "-"
		}
		fmt.Printf("| %s | %.1f | %.1f | %s |\n", c.name, median(c.ms), pct(c.ms, 0.9), ratio)
	}
}

func median(v []float64) float64 { return pct(v, 0.5) }

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1)+0.5)]
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "bench/run:", msg)
	os.Exit(1)
}
