package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-net/tether/edge/switchapi"
)

// switchFlags are the flags every command that talks to tether-switchd
// shares.
type switchFlags struct {
	agentFlags
}

func (f *switchFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", switchapi.DefaultSocket, "tether-switchd's unix socket")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
}

func (f *switchFlags) client() *switchapi.Client { return &switchapi.Client{Socket: f.socket} }

// run checks the flags and calls fn with a context bounded by --timeout.
func (f *switchFlags) run(cmd *cobra.Command, fn func(ctx context.Context, c *switchapi.Client) error) error {
	if err := f.check(cmd); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, f.client())
}

func newSwitchCommand(s *Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "switch",
		Short: "Inspect tether-switchd: ports, verified VMs, refusals",
		Long: `switch talks to tether-switchd on the edge switch: which host is behind
each port and what it negotiated, which VM MACs are verified on which port
(since when, verified how), and which requests were refused and why.`,
		Args:          usageArgs(cobra.NoArgs),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          helpAsUsage(s),
	}
	cmd.AddCommand(newSwitchStatusCommand(s), newSwitchPortsCommand(s), newSwitchVMsCommand(s), newSwitchRejectsCommand(s))
	return cmd
}

func newSwitchStatusCommand(s *Streams) *cobra.Command {
	var f switchFlags
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show tether-switchd's key, restart grace period, counts and rule latency",
		Example: "  tetherctl switch status\n  tetherctl switch status -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *switchapi.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return writeJSON(s.Out, st)
				}
				fmt.Fprintf(s.Out, "tether-switchd %s on %s (bridge %s, table %s), key %s, up %s\n", st.Version, st.Switch,
					st.Bridge, st.Table, st.KeyID, time.Since(st.Started).Round(time.Second))
				grace := "over"
				if !st.Grace.Done {
					grace = "until " + st.Grace.Until.Format(time.RFC3339)
				}
				fmt.Fprintf(s.Out, "restart grace: %s (%d pairs inherited, %d stale removed)\n", grace, st.Grace.Inherited, st.Grace.Removed)
				fmt.Fprintf(s.Out, "ports: %d, verified MACs: %d, accepted: %d, refused: %s\n", st.Ports, st.VMs, st.Accepted, refusedString(st.Refused))
				l := st.RuleLatency
				fmt.Fprintf(s.Out, "request to rule installed: p50 %dus, p99 %dus, max %dus over %d\n", l.P50, l.P99, l.Max, l.Count)
				return nil
			})
		},
	}
	f.register(cmd)
	return cmd
}

func refusedString(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	parts := make([]string, 0, len(m))
	for r, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func newSwitchPortsCommand(s *Streams) *cobra.Command {
	var f switchFlags
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "List the managed ports with their LLDP neighbour, EVB state, VSIs and counters",
		Example: `  tetherctl switch ports
  tetherctl switch ports -o json | jq '.[] | {name, neighbor}'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *switchapi.Client) error {
				ports, err := c.Ports(ctx)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return writeJSON(s.Out, ports)
				}
				rows := make([][]string, 0, len(ports))
				for _, p := range ports {
					state := "up"
					if !p.Running {
						state = "DOWN"
						if p.Error != "" {
							state += " (" + p.Error + ")"
						}
					}
					nb, key := "-", "-"
					if p.Neighbor != nil {
						nb = dash(p.Neighbor.SystemName)
						if p.Neighbor.Signed {
							key = p.Neighbor.KeyID
						} else {
							key = "unsigned"
						}
					} else if p.Neighbors > 1 {
						nb = fmt.Sprintf("%d (ambiguous)", p.Neighbors)
					}
					evbState := "-"
					if p.EVB.PeerSeen {
						evbState = fmt.Sprintf("r=%d rte=%d rwd=%d rka=%d", p.EVB.R, p.EVB.RTE, p.EVB.RWD, p.EVB.RKA)
					}
					acc, drop := "-", "-"
					if p.Counters != nil {
						acc, drop = fmt.Sprint(p.Counters.AcceptedPackets), fmt.Sprint(p.Counters.DroppedPackets)
					}
					rows = append(rows, []string{p.Name, state, nb, key, evbState,
						fmt.Sprintf("%d/%d", p.Associated, p.PreAssociated), acc, drop})
				}
				return table(s.Out, []string{"PORT", "STATE", "NEIGHBOR", "KEY", "EVB", "VSIS(A/P)", "ACCEPTED", "DROPPED"}, rows)
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newSwitchVMsCommand(s *Streams) *cobra.Command {
	var f switchFlags
	var port, host string
	cmd := &cobra.Command{
		Use:   "vms",
		Short: "List the verified VM MACs: which port, since when, verified how",
		Example: `  tetherctl switch vms
  tetherctl switch vms --port swp3 -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *switchapi.Client) error {
				vms, err := c.VMs(ctx)
				if err != nil {
					return err
				}
				kept := vms[:0]
				for _, v := range vms {
					if (port == "" || v.Port == port) && (host == "" || v.Host == host) {
						kept = append(kept, v)
					}
				}
				if f.output == "json" {
					return writeJSON(s.Out, kept)
				}
				rows := make([][]string, 0, len(kept))
				for _, v := range kept {
					vid := "untagged"
					if v.VID != 0 {
						vid = fmt.Sprint(v.VID)
					}
					how := "key " + v.Verified.KeyID + ", " + v.Verified.VMManager
					if v.Verified.Migration {
						how += ", migration"
					}
					if strings.HasPrefix(v.Verified.Note, "migrating:") {
						how += ", " + v.Verified.Note
					}
					rows = append(rows, []string{v.MAC, v.VM, v.Host, v.Port, vid, v.State, ago(v.Since), how})
				}
				return table(s.Out, []string{"MAC", "VM", "HOST", "PORT", "VID", "STATE", "SINCE", "VERIFIED"}, rows)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&port, "port", "", "only this switch port")
	cmd.Flags().StringVar(&host, "host", "", "only this host")
	return cmd
}

func newSwitchRejectsCommand(s *Streams) *cobra.Command {
	var f switchFlags
	var port, reason string
	cmd := &cobra.Command{
		Use:   "rejects",
		Short: "List the last refused requests and frames, and why",
		Example: `  tetherctl switch rejects
  tetherctl switch rejects --reason mac-live-elsewhere -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *switchapi.Client) error {
				rjs, err := c.Rejects(ctx)
				if err != nil {
					return err
				}
				kept := rjs[:0]
				for _, r := range rjs {
					if (port == "" || r.Port == port) && (reason == "" || r.Reason == reason) {
						kept = append(kept, r)
					}
				}
				if f.output == "json" {
					return writeJSON(s.Out, kept)
				}
				rows := make([][]string, 0, len(kept))
				for _, r := range kept {
					rows = append(rows, []string{r.Time.Format(time.RFC3339), r.Port, dash(r.Mode), dash(r.MAC), dash(r.VM),
						dash(r.Host), r.Reason, r.Message})
				}
				return table(s.Out, []string{"TIME", "PORT", "MODE", "MAC", "VM", "HOST", "REASON", "MESSAGE"}, rows)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&port, "port", "", "only this switch port")
	cmd.Flags().StringVar(&reason, "reason", "", "only this reason (for example mac-live-elsewhere)")
	return cmd
}
