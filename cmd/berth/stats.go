package main

import (
	"bytes"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
)

// statsRow is one line of docker stats, its --format fields.
type statsRow struct {
	Container, ID, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs string
}

func statsCommand() *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	c := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Show containers' CPU, memory, network, block I/O and pids, every second",
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			text := "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
			if format != "" {
				text = format
			}
			body, table := cutTable(text)
			tpl, err := parseFormat(body)
			if err != nil {
				return err
			}
			refs := args
			list := func() ([]string, error) {
				if len(args) > 0 {
					return refs, nil
				}
				cs, err := e.List()
				if err != nil {
					return nil, err
				}
				var ids []string
				for _, c := range cs {
					if all || c.State.Running {
						ids = append(ids, c.ID)
					}
				}
				return ids, nil
			}
			prev := map[string]engine.Usage{}
			read := func() ([]statsRow, error) {
				ids, err := list()
				if err != nil {
					return nil, err
				}
				var rows []statsRow
				for _, id := range ids {
					u, err := e.Usage(id)
					if err != nil && len(args) == 0 {
						continue // it went between the list and the reading
					}
					if err != nil {
						return nil, err
					}
					before, seen := prev[u.ID]
					prev[u.ID] = u
					cpu := 0.0
					if seen {
						cpu = engine.CPUPercent(before, u)
					}
					rows = append(rows, newStatsRow(u, cpu, !noTrunc))
				}
				return rows, nil
			}
			// The first reading only starts the CPU clock; docker's first
			// line, too, comes a second in.
			if _, err := read(); err != nil {
				return err
			}
			tty := isTerminal(os.Stdout)
			for {
				time.Sleep(time.Second)
				rows, err := read()
				if err != nil {
					return err
				}
				var out bytes.Buffer
				w := tabwriter.NewWriter(&out, 0, 8, 3, ' ', 0)
				if table {
					tpl.Execute(w, statsRow{Container: "CONTAINER", ID: "CONTAINER ID", Name: "NAME", CPUPerc: "CPU %",
						MemUsage: "MEM USAGE / LIMIT", MemPerc: "MEM %", NetIO: "NET I/O", BlockIO: "BLOCK I/O", PIDs: "PIDS"})
					fmt.Fprintln(w)
				}
				for _, r := range rows {
					if err := tpl.Execute(w, r); err != nil {
						return fmt.Errorf("--format: %v", err)
					}
					fmt.Fprintln(w)
				}
				w.Flush()
				if !noStream && tty {
					os.Stdout.WriteString("\033[2J\033[H") // redraw in place
				}
				os.Stdout.Write(out.Bytes())
				if noStream {
					return nil
				}
			}
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all", "a", false, "every container (default: the running ones)")
	f.BoolVar(&noStream, "no-stream", false, "print one reading and exit")
	f.BoolVar(&noTrunc, "no-trunc", false, "full container IDs")
	f.StringVar(&format, "format", "", "Go template (table prefix: with headers)")
	return c
}

func newStatsRow(u engine.Usage, cpu float64, trunc bool) statsRow {
	id := u.ID
	if trunc {
		id = id[:12]
	}
	r := statsRow{Container: id, ID: id, Name: u.Name, CPUPerc: "--", MemUsage: "-- / --", MemPerc: "--",
		NetIO: "--", BlockIO: "--", PIDs: "--"}
	if !u.Running {
		return r
	}
	r.CPUPerc = fmt.Sprintf("%.2f%%", cpu)
	r.MemUsage = binarySize(u.MemUsage) + " / " + binarySize(u.MemLimit)
	if u.MemLimit > 0 {
		r.MemPerc = fmt.Sprintf("%.2f%%", float64(u.MemUsage)/float64(u.MemLimit)*100)
	}
	r.NetIO = humanSize(int64(u.NetRx)) + " / " + humanSize(int64(u.NetTx))
	r.BlockIO = humanSize(int64(u.BlockRead)) + " / " + humanSize(int64(u.BlockWrite))
	r.PIDs = fmt.Sprint(u.Pids)
	return r
}

// binarySize is docker stats' memory size: 1024-based, two decimals.
func binarySize(n uint64) string {
	return scaledSize(n, 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}, "%.2f%s")
}
