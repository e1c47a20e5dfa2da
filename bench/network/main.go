// Command network measures berth's container networking against podman's
// on this machine only (loopback): HTTP connection rate and download
// throughput from the host to busybox httpd behind a published port, and
// container start time with a bridge vs --network none, round-robin so
// that machine noise hits each alike.
//
//	go run ./bench/network [-n 15] [-secs 3] [-berth bin/berth]
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/fixture"
)

// The served files: a tiny page for connection rate, 32 MiB for throughput.
const httpd = "mkdir -p /www && echo ok > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count=32 2>/dev/null && exec httpd -f -p 80 -h /www"

func main() {
	n := flag.Int("n", 15, "start-time runs per contender")
	secs := flag.Int("secs", 3, "seconds per connection-rate round")
	berth := flag.String("berth", "bin/berth", "berth binary")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("run as root")
	}
	bin, err := filepath.Abs(*berth)
	if err != nil {
		fatal(err.Error())
	}
	work, err := os.MkdirTemp("/var/tmp", "berth-bench-net-")
	if err != nil {
		fatal(err.Error())
	}
	defer os.RemoveAll(work)
	tarPath := filepath.Join(work, "busybox.tar")
	if err := fixture.BusyboxTar(tarPath); err != nil {
		fatal(err.Error())
	}
	root := filepath.Join(work, "berth")
	b := []string{"--root", root}
	if _, err := sh(bin, append(b, "import", tarPath, "bench-busybox")...); err != nil {
		fatal(err.Error())
	}
	defer sh(bin, append(b, "network", "prune")...)

	type server struct {
		name string
		addr string
	}
	var servers []server
	bport, pport := freePort(), freePort()
	id, err := sh(bin, append(b, "run", "-d", "--network", "bridge", "-p", "127.0.0.1:"+bport+":80", "bench-busybox", "sh", "-c", httpd)...)
	if err != nil {
		fatal(err.Error())
	}
	defer sh(bin, append(b, "rm", "-f", strings.TrimSpace(id))...)
	servers = append(servers, server{"berth -p", "127.0.0.1:" + bport})

	proot, prun := filepath.Join(work, "podman"), filepath.Join(work, "podman-run")
	pod := []string{"--root", proot, "--runroot", prun, "--storage-driver", "overlay", "--runtime", "runc"}
	podmanOK := false
	if _, err := exec.LookPath("podman"); err == nil {
		defer podmanLeftovers()()
		defer exec.Command("podman", append(pod, "system", "reset", "-f")...).Run()
		if _, err := sh("podman", append(pod, "import", "-q", tarPath, "localhost/bench-busybox")...); err != nil {
			fmt.Println("podman skipped:", err)
		} else if pid, err := sh("podman", append(pod, "run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"-p", "127.0.0.1:"+pport+":80", "localhost/bench-busybox", "sh", "-c", httpd)...); err != nil {
			fmt.Println("podman skipped:", err)
		} else {
			defer sh("podman", append(pod, "rm", "-f", strings.TrimSpace(pid))...)
			servers = append(servers, server{"podman -p", "127.0.0.1:" + pport})
			podmanOK = true
		}
	}
	for _, s := range servers {
		if err := waitHTTP(s.addr); err != nil {
			fatal(s.name + ": " + err.Error())
		}
	}

	// Connection rate: sequential GETs of a tiny page, each a new TCP
	// connection (busybox httpd closes after every answer).
	rates := map[string][]float64{}
	mbps := map[string][]float64{}
	for round := 0; round < 3; round++ {
		for _, s := range servers {
			rates[s.name] = append(rates[s.name], connRate(s.addr, time.Duration(*secs)*time.Second))
			mbps[s.name] = append(mbps[s.name], throughput(s.addr, 4))
		}
	}
	fmt.Printf("Host -> busybox httpd behind a published port on 127.0.0.1 (3 interleaved rounds, median):\n\n")
	fmt.Println("| server | connections/s | throughput MB/s |")
	fmt.Println("|---|---:|---:|")
	for _, s := range servers {
		fmt.Printf("| %s | %.0f | %.0f |\n", s.name, median(rates[s.name]), median(mbps[s.name]))
	}
	if podmanOK {
		fmt.Printf("\nberth/podman: connections %.2fx, throughput %.2fx\n",
			median(rates["berth -p"])/median(rates["podman -p"]), median(mbps["berth -p"])/median(mbps["podman -p"]))
	}

	// Start time, bridge vs none (the bridge exists: the server above
	// holds it, as the default bridge of a running host does).
	starts := []struct {
		name string
		args []string
		ms   []float64
	}{
		{name: "berth run --rm --network none", args: append(b, "run", "--rm", "--network", "none", "bench-busybox", "true")},
		{name: "berth run --rm --network bridge", args: append(b, "run", "--rm", "--network", "bridge", "bench-busybox", "true")},
		{name: "berth run --rm --network bridge -p 80", args: append(b, "run", "--rm", "--network", "bridge", "-p", "80", "bench-busybox", "true")},
	}
	for i := 0; i <= *n; i++ {
		for j := range starts {
			t0 := time.Now()
			if _, err := sh(bin, starts[j].args...); err != nil {
				fatal(err.Error())
			}
			if i > 0 { // the first round warms up
				starts[j].ms = append(starts[j].ms, float64(time.Since(t0).Microseconds())/1000)
			}
		}
	}
	fmt.Printf("\nContainer start to exit, `true`, %d interleaved runs each (ms, wall):\n\n", *n)
	fmt.Println("| command | median | p90 |")
	fmt.Println("|---|---:|---:|")
	for _, s := range starts {
		fmt.Printf("| %s | %.1f | %.1f |\n", s.name, median(s.ms), pct(s.ms, 0.9))
	}
}

// podmanLeftovers notes what of podman's CNI networking the host lacks
// now and returns a func that removes it again: CNI leaves its bridge and
// iptables-nft tables behind, even after a system reset.
func podmanLeftovers() func() {
	had := map[string]bool{}
	out, _ := exec.Command("nft", "list", "tables").Output()
	for _, l := range strings.Split(string(out), "\n") {
		had[strings.TrimSpace(l)] = true
	}
	_, err := net.InterfaceByName("cni-podman0")
	hadBridge := err == nil
	return func() {
		for _, t := range []string{"table ip nat", "table ip filter", "table ip6 nat", "table ip6 filter"} {
			if !had[t] {
				exec.Command("nft", "delete", "table", strings.Fields(t)[1], strings.Fields(t)[2]).Run()
			}
		}
		if !hadBridge {
			exec.Command("ip", "link", "del", "cni-podman0").Run()
		}
	}
}

func sh(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

func freePort() string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fatal(err.Error())
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func waitHTTP(addr string) error {
	var err error
	for i := 0; i < 100; i++ {
		var r *http.Response
		if r, err = http.Get("http://" + addr + "/"); err == nil {
			r.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// connRate does sequential GETs on fresh connections for d (bounded).
func connRate(addr string, d time.Duration) float64 {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t0 := time.Now()
	n := 0
	for time.Since(t0) < d && n < 200000 {
		r, err := c.Get("http://" + addr + "/")
		if err != nil {
			fatal("GET: " + err.Error())
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		n++
	}
	return float64(n) / time.Since(t0).Seconds()
}

// throughput downloads the 32 MiB file k times and returns MB/s.
func throughput(addr string, k int) float64 {
	c := &http.Client{Timeout: 60 * time.Second}
	t0 := time.Now()
	var total int64
	for i := 0; i < k; i++ {
		r, err := c.Get("http://" + addr + "/big")
		if err != nil {
			fatal("GET big: " + err.Error())
		}
		n, _ := io.Copy(io.Discard, r.Body)
		r.Body.Close()
		total += n
	}
	return float64(total) / 1e6 / time.Since(t0).Seconds()
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
	fmt.Fprintln(os.Stderr, "bench/network:", msg)
	os.Exit(1)
}
