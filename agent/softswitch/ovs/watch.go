package ovs

import (
	"context"
	"fmt"

	"github.com/tether-net/tether/agent/softswitch/ovs/ovsdb"
)

// watchColumns are the columns whose change can make a port drift.
func watchColumns() map[string]ovsdb.MonitorRequest {
	return map[string]ovsdb.MonitorRequest{
		"Port":      {Columns: []string{"name", "tag", "trunks", "vlan_mode", "cvlans", "other_config", "external_ids", "interfaces"}},
		"Interface": {Columns: []string{"name", "ingress_policing_rate", "ingress_policing_burst", "external_ids", "ofport"}},
		"Bridge":    {Columns: []string{"name", "ports", "datapath_type"}},
	}
}

// Watch monitors OVSDB (RFC 7047 monitor) and calls changed with the name
// of every port whose Port or Interface row is inserted, modified or
// deleted, and with "" when a bridge changes (resync every port). The
// events are hints for a level-triggered reconcile (Check, Ensure), not
// the state itself; OpenFlow rules are not in OVSDB, so a flushed
// allow-list is found by Check, not here. Once the monitor is in place
// Watch calls changed("") first, so the loop checks every port for what
// changed before it was watched. changed runs on Watch's goroutine. Watch
// returns when ctx ends (nil) or the OVSDB connection fails.
func (s *Switch) Watch(ctx context.Context, changed func(port string)) error {
	events := make(chan string, 256)
	overflow := make(chan struct{}, 1)
	deliver := func(tu ovsdb.TableUpdates) {
		for table, rows := range tu {
			for _, u := range rows {
				name := ""
				if table != "Bridge" {
					if u.New != nil {
						name = u.New.String("name")
					} else {
						name = u.Old.String("name")
					}
				}
				select {
				case events <- name:
				default:
					// Full: ask for a resync of everything instead.
					select {
					case overflow <- struct{}{}:
					default:
					}
				}
			}
		}
	}
	id := fmt.Sprintf("tether-watch-%p", &events)
	if _, err := s.db.Monitor(ctx, Database, id, watchColumns(), deliver); err != nil {
		return fmt.Errorf("ovs: watch: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), monitorCancelTimeout)
		defer cancel()
		s.db.MonitorCancel(cctx, id)
	}()
	changed("")
	for {
		select {
		case name := <-events:
			changed(name)
		case <-overflow:
			changed("")
		case <-s.db.Done():
			return fmt.Errorf("ovs: watch: %w", s.db.Err())
		case <-ctx.Done():
			return nil
		}
	}
}
