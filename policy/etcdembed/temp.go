package etcdembed

import (
	"context"
	"fmt"
	"os"
)

// StartTemp starts a single member in a new temporary directory named
// after pattern (os.MkdirTemp), with cfg's other settings (its Dir is
// replaced), for a test binary's TestMain. stop closes the member and
// removes the directory; on error nothing is left behind.
func StartTemp(ctx context.Context, pattern string, cfg Config) (s *Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, nil, fmt.Errorf("etcdembed: temporary directory: %w", err)
	}
	cfg.Dir = dir
	s, err = Start(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("etcdembed: start in %s: %w", dir, err)
	}
	return s, func() {
		s.Close()
		os.RemoveAll(dir)
	}, nil
}
