package directory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// BulkLoad records arts as the first version of a new catalog name in the
// state under dataDir, without any file: the way benchmarks and tests get a
// catalog of a million artifacts in seconds instead of publishing a million
// files. The directory must not be running on dataDir, and name must not
// exist yet.
//
// The artifacts' bytes are not in the directory's store, so a download no
// relay can take fails with 503; relays must hold (or report holding) the
// digests for downloads to be redirected.
func BulkLoad(ctx context.Context, dataDir, name string, arts []catalog.Artifact) error {
	if err := catalog.ValidateName(name); err != nil {
		return fmt.Errorf("directory: bulk load: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("directory: bulk load: %w", err)
	}
	st, err := openState(ctx, filepath.Join(dataDir, "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	c, err := st.ensureCatalog(ctx, name, now)
	if err != nil {
		return err
	}
	if c.Version != 0 {
		return fmt.Errorf("directory: bulk load: catalog %s already has version %d", name, c.Version)
	}
	var sum catalog.Summary
	sum.Added = len(arts)
	for i := range arts {
		if err := catalog.ValidatePath(arts[i].Path); err != nil {
			return fmt.Errorf("directory: bulk load: %w", err)
		}
	}
	if _, err := st.commit(ctx, c.ID, 0, arts, nil, nil, sum, now, nil); err != nil {
		return fmt.Errorf("directory: bulk load: %w", err)
	}
	return nil
}
