package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tether-net/tether/api"
)

// agentFlags are the flags every command that talks to tetherd shares.
type agentFlags struct {
	socket  string
	output  string
	timeout time.Duration
}

func (f *agentFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", api.DefaultSocket, "tetherd's unix socket")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
}

// check validates the flags before anything is sent.
func (f *agentFlags) check(cmd *cobra.Command) error {
	if f.output != "table" && f.output != "json" {
		return usageErrorf(cmd, "--output %q is not one of table, json", f.output)
	}
	if f.timeout <= 0 {
		return usageErrorf(cmd, "--timeout must be positive")
	}
	return nil
}

func (f *agentFlags) client() *api.Client { return &api.Client{Socket: f.socket} }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows with aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func num(n uint16) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func newStatusCommand(s *Streams) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether tetherd runs, its inventory size and its event sources",
		Example: `  tetherctl status
  tetherctl status -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := f.client().Status(ctx)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(s.Out, st)
			}
			ready := "yes"
			if !st.Ready {
				ready = "no (first reconcile still running)"
			}
			fmt.Fprintf(s.Out, "tetherd %s on %s, up %s, ready: %s\n", st.Version, st.Hostname,
				time.Since(st.Started).Round(time.Second), ready)
			fmt.Fprintf(s.Out, "inventory: %d VMs, %d VIFs, generation %d\n", st.VMs, st.VIFs, st.Generation)
			if st.KeyID != "" {
				fmt.Fprintf(s.Out, "host key: %s\n", st.KeyID)
			}
			rows := make([][]string, 0, len(st.Sources))
			for _, src := range st.Sources {
				c := "connected"
				if !src.Connected {
					c = "DISCONNECTED"
				}
				rows = append(rows, []string{src.Name, c, fmt.Sprint(src.Events), dash(src.LastError)})
			}
			if err := table(s.Out, []string{"SOURCE", "STATE", "EVENTS", "LAST ERROR"}, rows); err != nil {
				return err
			}
			return vnicTable(s.Out, st.Sources)
		},
	}
	f.register(cmd)
	return cmd
}

// vnicTable lists the vNICs the sources configure (the datapath's VFs and
// partitions) with their state and, for a drifted or failed one, how it
// differs or why it failed; nothing when there are none.
func vnicTable(w io.Writer, srcs []api.SourceStatus) error {
	var rows [][]string
	for _, src := range srcs {
		for _, v := range src.VNICs {
			why := strings.Join(v.Drift, "; ")
			if v.LastError != "" {
				why = strings.Join(slices.DeleteFunc([]string{why, v.LastError}, func(s string) bool { return s == "" }), "; ")
			}
			rows = append(rows, []string{v.VIF, v.Kind, dash(v.Device), v.State, dash(why)})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return table(w, []string{"VNIC", "KIND", "DEVICE", "STATE", "DRIFT OR LAST ERROR"}, rows)
}

func newVMsCommand(s *Streams) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:     "vms",
		Short:   "List the VMs tetherd knows, with their vNICs",
		Example: "  tetherctl vms\n  tetherctl vms -o json | jq '.[].name'",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			vms, err := f.client().VMs(ctx)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(s.Out, vms)
			}
			rows := make([][]string, 0, len(vms))
			for _, vm := range vms {
				rows = append(rows, []string{vm.Name, vm.UUID, vm.State, dash(strings.Join(vm.VIFs, ","))})
			}
			return table(s.Out, []string{"NAME", "UUID", "STATE", "VIFS"}, rows)
		},
	}
	f.register(cmd)
	return cmd
}

func newVIFsCommand(s *Streams) *cobra.Command {
	var f agentFlags
	var vm, state string
	cmd := &cobra.Command{
		Use:   "vifs",
		Short: "List every vNIC with its VM, kind, tags and lifecycle state",
		Example: `  tetherctl vifs
  tetherctl vifs --state rejected
  tetherctl vifs --vm web-01 -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			switch state {
			case "", "pending", "pre-associated", "associated", "verified", "rejected", "gone":
			default:
				return usageErrorf(cmd, "--state %q is not one of pending, pre-associated, associated, verified, rejected, gone", state)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			vifs, err := f.client().VIFs(ctx)
			if err != nil {
				return err
			}
			kept := vifs[:0]
			for _, v := range vifs {
				if (vm == "" || v.VM == vm || v.VMName == vm) && (state == "" || v.State == state) {
					kept = append(kept, v)
				}
			}
			if f.output == "json" {
				return writeJSON(s.Out, kept)
			}
			rows := make([][]string, 0, len(kept))
			for _, v := range kept {
				rows = append(rows, []string{v.MAC, dash(v.VMName), v.Kind, dash(v.Device), num(v.STag), num(v.CVID),
					dash(v.PortGroup), v.State, dash(v.Reason), ago(v.Since)})
			}
			return table(s.Out, []string{"MAC", "VM", "KIND", "DEVICE", "STAG", "CVID", "PORTGROUP", "STATE", "REASON", "SINCE"}, rows)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&vm, "vm", "", "only the vNICs of this VM (name or UUID)")
	cmd.Flags().StringVar(&state, "state", "", "only vNICs in this lifecycle state")
	return cmd
}

func newVIFCommand(s *Streams) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:     "vif MAC",
		Short:   "Show one vNIC in full",
		Example: "  tetherctl vif 52:54:00:6b:3c:58",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			v, err := f.client().VIF(ctx, args[0])
			var se *api.StatusError
			if errors.As(err, &se) && se.HTTPStatus == 400 {
				return usageErrorf(cmd, "%v", err)
			}
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(s.Out, v)
			}
			rows := [][]string{
				{"mac", v.MAC}, {"vendor", v.Vendor}, {"vm", dash(v.VMName) + " (" + v.VM + ")"},
				{"kind", v.Kind}, {"device", dash(v.Device)}, {"stag", num(v.STag)}, {"cvid", num(v.CVID)},
				{"port group", dash(v.PortGroup)}, {"state", v.State}, {"reason", dash(v.Reason)},
				{"since", v.Since.Format(time.RFC3339) + " (" + ago(v.Since) + ")"},
			}
			for k, val := range v.VirtualPort {
				rows = append(rows, []string{"virtualport " + k, val})
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			for _, r := range rows {
				fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func newEventsCommand(s *Streams) *cobra.Command {
	var f agentFlags
	var follow bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print inventory changes as tetherd commits them",
		Long: `events prints every inventory change tetherd commits: VMs and vNICs added,
changed and removed, and lifecycle transitions with their reasons. With
--follow it runs until interrupted; without it, it prints what arrives
within --timeout and exits.`,
		Example: "  tetherctl events --follow\n  tetherctl events --follow -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, f.timeout)
				defer cancel()
			}
			enc := json.NewEncoder(s.Out)
			err := f.client().Events(ctx, 0, func(ev api.Event) error {
				if f.output == "json" {
					return enc.Encode(ev)
				}
				line := fmt.Sprintf("%s gen=%d %s %s %s", ev.Time.Format(time.RFC3339Nano), ev.Generation, ev.Kind, ev.Op, ev.Key)
				if ev.To != "" {
					line += fmt.Sprintf(" %s -> %s", ev.From, ev.To)
				}
				if ev.Reason != "" {
					line += fmt.Sprintf(" (%s)", ev.Reason)
				}
				_, err := fmt.Fprintln(s.Out, line)
				return err
			})
			if errors.Is(err, context.DeadlineExceeded) && !follow {
				return nil
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until interrupted")
	return cmd
}
