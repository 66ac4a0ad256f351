package identity

import (
	"os"

	"github.com/tether-net/tether/internal/atomicfile"
)

// writeFileAtomic replaces path with data (mode perm) so that a crash at
// any point leaves either the old or the new content.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}
