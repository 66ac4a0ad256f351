package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/client"
)

// Environment variables the policy commands read when their flag is not
// given.
const (
	envPolicyServer    = "TETHER_POLICY_SERVER"
	envPolicyToken     = "TETHER_POLICY_TOKEN"
	envPolicyTokenFile = "TETHER_POLICY_TOKEN_FILE"
)

// policyFlags are the flags every policy command shares (persistent on
// "policy").
type policyFlags struct {
	server    string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
	output    string
	timeout   time.Duration
}

func (f *policyFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "tether-policyd's URL (default $"+envPolicyServer+", else "+client.DefaultServer+")")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token (default $"+envPolicyTokenFile+", else the token in $"+envPolicyToken+")")
	pf.StringVar(&f.caFile, "ca", "", "PEM CA bundle that signed tether-policyd's certificate (https)")
	pf.StringVar(&f.certFile, "cert", "", "client certificate (PEM) for mutual TLS")
	pf.StringVar(&f.keyFile, "key", "", "client certificate's key (PEM) for mutual TLS")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
}

// client builds the client from the flags and the environment.
func (f *policyFlags) client(cmd *cobra.Command) (*client.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usageErrorf(cmd, "--output %q is not one of table, json", f.output)
	}
	if f.timeout <= 0 {
		return nil, usageErrorf(cmd, "--timeout must be positive")
	}
	c := &client.Client{Server: f.server}
	if c.Server == "" {
		c.Server = os.Getenv(envPolicyServer)
	}
	if c.Server == "" {
		c.Server = client.DefaultServer
	}
	if !strings.HasPrefix(c.Server, "http://") && !strings.HasPrefix(c.Server, "https://") {
		return nil, usageErrorf(cmd, "--server %q: want a URL such as https://policy.example:7480", c.Server)
	}
	tokenFile := f.tokenFile
	if tokenFile == "" {
		tokenFile = os.Getenv(envPolicyTokenFile)
	}
	switch {
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, usageErrorf(cmd, "--token-file: %v", err)
		}
		c.Token = strings.TrimSpace(string(b))
		if c.Token == "" {
			return nil, usageErrorf(cmd, "--token-file %s is empty", tokenFile)
		}
	default:
		c.Token = strings.TrimSpace(os.Getenv(envPolicyToken))
	}
	if f.caFile != "" || f.certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, usageErrorf(cmd, "--ca: %v", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, usageErrorf(cmd, "--ca %s: no PEM certificate in it", f.caFile)
			}
		}
		if f.certFile != "" || f.keyFile != "" {
			cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
			if err != nil {
				return nil, usageErrorf(cmd, "--cert/--key: %v", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.TLS = tc
	}
	return c, nil
}

// run calls fn with the client and a context bounded by --timeout.
func (f *policyFlags) run(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := f.client(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, c)
}

// policyKind describes one kind for the generic list/add/set/rm commands.
type policyKind struct {
	kind   policy.Kind
	noun   string // "profile"
	keyArg string // "NAME"
	// bind registers the kind's field flags on cmd and returns the
	// object they fill and a function that finishes it (converting
	// string flags) and copies the changed flags' fields onto dst.
	bind func(cmd *cobra.Command) (fill func(dst policy.Object, all bool) error)
	// header and row render the table.
	header []string
	row    func(o policy.Object) []string
	// example shows add's use.
	example string
}

func newPolicyCommand(s *Streams) *cobra.Command {
	var f policyFlags
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage tether-policyd's profiles, port groups, hosts and VM placements",
		Long: `policy talks to tether-policyd, the DC-wide policy DB: profiles (what a vNIC
may do on the wire), port groups (which VMs get which profile), enrolled
hosts and switches (their public keys), and VM placements (which host runs
which VM with which MACs, as the VM manager reports it).

Each kind has list, add, set (change only the fields given, guarded by the
revision read) and rm. Validation errors name the field at fault.

The server is --server, else $` + envPolicyServer + `, else ` + client.DefaultServer + `;
the bearer token is read from --token-file, else $` + envPolicyTokenFile + `, else taken
from $` + envPolicyToken + `. For https use --ca; for mutual TLS --cert and --key.`,
		Args:          usageArgs(cobra.NoArgs),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          helpAsUsage(s),
	}
	f.register(cmd)
	for _, k := range policyKinds() {
		cmd.AddCommand(newPolicyKindCommand(s, &f, k))
	}
	return cmd
}

func newPolicyKindCommand(s *Streams, f *policyFlags, k policyKind) *cobra.Command {
	cmd := &cobra.Command{
		Use:           k.noun,
		Short:         fmt.Sprintf("List, add, change and remove %ss", k.noun),
		Args:          usageArgs(cobra.NoArgs),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          helpAsUsage(s),
	}
	cmd.AddCommand(newPolicyListCommand(s, f, k), newPolicyAddCommand(s, f, k), newPolicySetCommand(s, f, k), newPolicyRmCommand(s, f, k))
	return cmd
}

func newPolicyListCommand(s *Streams, f *policyFlags, k policyKind) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   fmt.Sprintf("List the %ss with their revisions", k.noun),
		Example: fmt.Sprintf("  tetherctl policy %s list\n  tetherctl policy %s list -o json", k.noun, k.noun),
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *client.Client) error {
				objs, revs, err := c.Objects(ctx, k.kind)
				if err != nil {
					return err
				}
				if f.output == "json" {
					type item struct {
						Revision int64         `json:"revision"`
						Object   policy.Object `json:"object"`
					}
					out := make([]item, len(objs))
					for i := range objs {
						out[i] = item{revs[i], objs[i]}
					}
					return writeJSON(s.Out, out)
				}
				rows := make([][]string, len(objs))
				for i, o := range objs {
					rows[i] = append(k.row(o), strconv.FormatInt(revs[i], 10))
				}
				return table(s.Out, append(append([]string(nil), k.header...), "REV"), rows)
			})
		},
	}
}

// setKey sets the object's key.
func setKey(o policy.Object, key string) {
	switch v := o.(type) {
	case *policy.Profile:
		v.Name = key
	case *policy.PortGroup:
		v.Name = key
	case *policy.Host:
		v.Name = key
	case *policy.Placement:
		v.VM = key
	}
}

func (f *policyFlags) printObject(s *Streams, verb string, k policyKind, o policy.Object, rev int64) error {
	if f.output == "json" {
		return writeJSON(s.Out, struct {
			Revision int64         `json:"revision"`
			Object   policy.Object `json:"object"`
		}{rev, o})
	}
	fmt.Fprintf(s.Out, "%s %s %s (revision %d)\n", k.noun, o.Key(), verb, rev)
	return nil
}

func newPolicyAddCommand(s *Streams, f *policyFlags, k policyKind) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "add " + k.keyArg,
		Short:   fmt.Sprintf("Create a %s (fails if it exists; use set to change one)", k.noun),
		Example: k.example,
	}
	return policyWriteCommand(s, f, k, cmd, "created", true,
		func(ctx context.Context, c *client.Client, key string, fill func(policy.Object, bool) error) (policy.Object, int64, error) {
			o := policy.New(k.kind)
			if err := fill(o, true); err != nil {
				return nil, 0, usageErrorf(cmd, "%v", err)
			}
			setKey(o, key)
			rev, err := c.Create(ctx, o)
			return o, rev, err
		})
}

func newPolicySetCommand(s *Streams, f *policyFlags, k policyKind) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set " + k.keyArg,
		Short: fmt.Sprintf("Change the given fields of a %s; the others keep their values", k.noun),
		Long: fmt.Sprintf(`set reads the %s, changes the fields whose flags are given, and writes
it back only if nobody changed it in between (If-Match on the revision read;
on a conflict, run it again).`, k.noun),
		Example: strings.ReplaceAll(k.example, " add ", " set "),
	}
	return policyWriteCommand(s, f, k, cmd, "changed", false,
		func(ctx context.Context, c *client.Client, key string, fill func(policy.Object, bool) error) (policy.Object, int64, error) {
			o := policy.New(k.kind)
			rev, err := c.Get(ctx, k.kind, key, o)
			if err != nil {
				return nil, 0, err
			}
			if err := fill(o, false); err != nil {
				return nil, 0, usageErrorf(cmd, "%v", err)
			}
			rev, err = c.Replace(ctx, o, rev)
			return o, rev, err
		})
}

// policyWriteCommand finishes add or set: it binds the kind's field flags
// to cmd, checks them (fill with all) before any request, then runs write
// on the one KEY argument and prints the object written with verb.
func policyWriteCommand(s *Streams, f *policyFlags, k policyKind, cmd *cobra.Command, verb string, all bool,
	write func(ctx context.Context, c *client.Client, key string, fill func(policy.Object, bool) error) (policy.Object, int64, error)) *cobra.Command {
	fill := k.bind(cmd)
	cmd.Args = usageArgs(cobra.ExactArgs(1))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := fill(policy.New(k.kind), all); err != nil {
			return usageErrorf(cmd, "%v", err)
		}
		return f.run(cmd, func(ctx context.Context, c *client.Client) error {
			o, rev, err := write(ctx, c, args[0], fill)
			if err != nil {
				return err
			}
			return f.printObject(s, verb, k, o, rev)
		})
	}
	return cmd
}

func newPolicyRmCommand(s *Streams, f *policyFlags, k policyKind) *cobra.Command {
	var ifMatch int64
	cmd := &cobra.Command{
		Use:     "rm " + k.keyArg + "...",
		Aliases: []string{"delete"},
		Short:   fmt.Sprintf("Remove %ss", k.noun),
		Example: fmt.Sprintf("  tetherctl policy %s rm %s", k.noun, k.keyArg),
		Args:    usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ifMatch != 0 && len(args) > 1 {
				return usageErrorf(cmd, "--if-match applies to one %s only", k.noun)
			}
			return f.run(cmd, func(ctx context.Context, c *client.Client) error {
				for _, key := range args {
					if err := c.Delete(ctx, k.kind, key, ifMatch); err != nil {
						return err
					}
					if f.output == "table" {
						fmt.Fprintf(s.Out, "%s %s removed\n", k.noun, key)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().Int64Var(&ifMatch, "if-match", 0, "remove only if the revision is still this one")
	return cmd
}

// changed reports whether flag name was given (or all is set).
func changed(cmd *cobra.Command, all bool, name string) bool {
	return all || cmd.Flags().Changed(name)
}

// assign sets *dst to v when flag name was given (or all is set).
func assign[T any](cmd *cobra.Command, all bool, name string, dst *T, v T) {
	if changed(cmd, all, name) {
		*dst = v
	}
}

func policyKinds() []policyKind {
	return []policyKind{profileKind(), groupKind(), hostKind(), placementKind()}
}

func profileKind() policyKind {
	return policyKind{
		kind: policy.KindProfiles, noun: "profile", keyArg: "NAME",
		example: "  tetherctl policy profile add web --vid 100 --ether-types 0x0800,0x86dd,0x0806 --rate-kbps 100000",
		bind: func(cmd *cobra.Command) func(policy.Object, bool) error {
			var (
				in  policy.Profile
				ets []string
			)
			fl := cmd.Flags()
			fl.Uint16Var(&in.VID, "vid", 0, "VLAN ID, 0-4094 (0: untagged)")
			fl.StringVar(&in.Mode, "mode", policy.ModeSwitch, "S-Tag handling: switch or io-extender")
			fl.StringSliceVar(&ets, "ether-types", nil, "EtherTypes the vNIC may send, e.g. 0x0800,0x86dd (none: all)")
			fl.Uint32Var(&in.RateKbps, "rate-kbps", 0, "rate limit in kbit/s (0: none)")
			fl.Uint8Var(&in.Priority, "priority", 0, "802.1Q priority, 0-7")
			fl.StringVar(&in.ACL, "acl", "", "name of the ACL the switch applies")
			return func(o policy.Object, all bool) error {
				p := o.(*policy.Profile)
				assign(cmd, all, "vid", &p.VID, in.VID)
				assign(cmd, all, "mode", &p.Mode, in.Mode)
				if changed(cmd, all, "ether-types") {
					p.EtherTypes = nil
					for _, s := range ets {
						v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 16)
						if err != nil {
							return fmt.Errorf("--ether-types: %q is not a 16-bit number (0x0800)", s)
						}
						p.EtherTypes = append(p.EtherTypes, uint16(v))
					}
				}
				assign(cmd, all, "rate-kbps", &p.RateKbps, in.RateKbps)
				assign(cmd, all, "priority", &p.Priority, in.Priority)
				assign(cmd, all, "acl", &p.ACL, in.ACL)
				return nil
			}
		},
		header: []string{"NAME", "VID", "MODE", "ETHERTYPES", "RATE-KBPS", "PRIO", "ACL"},
		row: func(o policy.Object) []string {
			p := o.(*policy.Profile)
			ets := make([]string, len(p.EtherTypes))
			for i, e := range p.EtherTypes {
				ets[i] = fmt.Sprintf("%#04x", e)
			}
			rate := "-"
			if p.RateKbps > 0 {
				rate = strconv.FormatUint(uint64(p.RateKbps), 10)
			}
			return []string{p.Name, num(p.VID), p.Mode, dash(strings.Join(ets, ",")), rate, strconv.Itoa(int(p.Priority)), dash(p.ACL)}
		},
	}
}

func groupKind() policyKind {
	return policyKind{
		kind: policy.KindGroups, noun: "group", keyArg: "NAME",
		example: "  tetherctl policy group add web --profile web --name-pattern 'web-*' --label tenant=a",
		bind: func(cmd *cobra.Command) func(policy.Object, bool) error {
			var (
				in     policy.PortGroup
				labels []string
			)
			fl := cmd.Flags()
			fl.StringVar(&in.Profile, "profile", "", "the group's profile")
			fl.StringSliceVar(&in.Match.UUIDs, "uuid", nil, "VM UUIDs in the group (repeat or comma-separate)")
			fl.StringSliceVar(&in.Match.NamePatterns, "name-pattern", nil, "VM name globs (web-*)")
			fl.StringArrayVar(&labels, "label", nil, "a libvirt label the VMs must carry: key=value or key (repeat: all must match)")
			fl.IntVar(&in.Match.Priority, "priority", 0, "order among matching groups: higher wins")
			return func(o policy.Object, all bool) error {
				g := o.(*policy.PortGroup)
				assign(cmd, all, "profile", &g.Profile, in.Profile)
				assign(cmd, all, "uuid", &g.Match.UUIDs, in.Match.UUIDs)
				assign(cmd, all, "name-pattern", &g.Match.NamePatterns, in.Match.NamePatterns)
				if changed(cmd, all, "label") {
					g.Match.Labels = nil
					if len(labels) > 0 {
						g.Match.Labels = policy.LabelPairs(labels)
					}
				}
				assign(cmd, all, "priority", &g.Match.Priority, in.Match.Priority)
				return nil
			}
		},
		header: []string{"NAME", "PROFILE", "PRIORITY", "MATCH"},
		row: func(o policy.Object) []string {
			g := o.(*policy.PortGroup)
			var m []string
			for _, u := range g.Match.UUIDs {
				m = append(m, "uuid="+u)
			}
			for _, p := range g.Match.NamePatterns {
				m = append(m, "name="+p)
			}
			keys := make([]string, 0, len(g.Match.Labels))
			for k := range g.Match.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				l := k
				if v := g.Match.Labels[k]; v != "" {
					l += "=" + v
				}
				m = append(m, "label:"+l)
			}
			return []string{g.Name, g.Profile, strconv.Itoa(g.Match.Priority), dash(strings.Join(m, " "))}
		},
	}
}

func hostKind() policyKind {
	return policyKind{
		kind: policy.KindHosts, noun: "host", keyArg: "NAME",
		example: "  tetherctl policy host add hv12 --role host --public-key-file /etc/tether/hv12.pub",
		bind: func(cmd *cobra.Command) func(policy.Object, bool) error {
			var in policy.Host
			var keyFile string
			fl := cmd.Flags()
			fl.StringVar(&in.Role, "role", policy.RoleHost, "host (a hypervisor running tetherd) or switch")
			fl.StringVar(&keyFile, "public-key-file", "", "the host's Ed25519 public key (PEM), as tetherd wrote it")
			return func(o policy.Object, all bool) error {
				h := o.(*policy.Host)
				assign(cmd, all, "role", &h.Role, in.Role)
				if cmd.Flags().Changed("public-key-file") {
					b, err := os.ReadFile(keyFile)
					if err != nil {
						return fmt.Errorf("--public-key-file: %w", err)
					}
					h.PublicKey = string(b)
					h.KeyID = "" // derived again from the new key
				}
				return nil
			}
		},
		header: []string{"NAME", "ROLE", "KEY-ID"},
		row: func(o policy.Object) []string {
			h := o.(*policy.Host)
			return []string{h.Name, h.Role, dash(h.KeyID)}
		},
	}
}

func placementKind() policyKind {
	return policyKind{
		kind: policy.KindPlacements, noun: "placement", keyArg: "VM-UUID",
		example: "  tetherctl policy placement add 6f1c0a2e-8d1e-4f7a-9b1c-2d3e4f5a6b7c --host hv12 --mac 52:54:00:12:34:56 --name web-01 --label tenant=a --label pci",
		bind: func(cmd *cobra.Command) func(policy.Object, bool) error {
			var in policy.Placement
			fl := cmd.Flags()
			fl.StringVar(&in.Host, "host", "", "the host running the VM")
			fl.StringSliceVar(&in.MACs, "mac", nil, "the VM's MACs (repeat or comma-separate)")
			fl.StringVar(&in.State, "state", policy.StateRunning, "running, paused, migrating-in, migrating-out or shut-off")
			fl.StringVar(&in.Name, "name", "", "the VM's name")
			fl.StringArrayVar(&in.Labels, "label", nil, "the VM's tether labels, \"k=v\" or \"k\" (repeat; set replaces them all)")
			return func(o policy.Object, all bool) error {
				p := o.(*policy.Placement)
				assign(cmd, all, "label", &p.Labels, in.Labels)
				assign(cmd, all, "host", &p.Host, in.Host)
				assign(cmd, all, "mac", &p.MACs, in.MACs)
				assign(cmd, all, "state", &p.State, in.State)
				assign(cmd, all, "name", &p.Name, in.Name)
				p.Source = "tetherctl"
				p.Updated = time.Now().UTC()
				return nil
			}
		},
		header: []string{"VM", "NAME", "HOST", "STATE", "MACS", "LABELS", "UPDATED"},
		row: func(o policy.Object) []string {
			p := o.(*policy.Placement)
			return []string{p.VM, dash(p.Name), p.Host, p.State, dash(strings.Join(p.MACs, ",")), dash(strings.Join(p.Labels, ",")), ago(p.Updated)}
		},
	}
}
