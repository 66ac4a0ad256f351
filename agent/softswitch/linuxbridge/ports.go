package linuxbridge

import (
	"context"
	"errors"
	"fmt"
)

// Ports lists the ports marked as tether's: those with a chain or a
// dispatch entry in the allow-list table (every port Ensure configured and
// Remove has not taken off), sorted. A port whose interface is gone (a
// VM's tap deleted while tetherd was down) is listed while its allow-list
// objects remain; ports other software enslaved to the bridge are not
// listed. The caller removes the ones no VIF wants (agent/datapath's
// first pass after a start).
func (s *Switch) Ports(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil, errors.New("linuxbridge: switch closed")
	}
	ports, err := s.allow.managedPorts(ctx)
	if err != nil {
		return nil, fmt.Errorf("linuxbridge: %w", err)
	}
	return ports, nil
}
