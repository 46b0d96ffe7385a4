package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/eddy-faas/eddy/internal/container"
	"github.com/eddy-faas/eddy/internal/container/process"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// processRunDir holds the process backend's work roots when it isolates
// containers (Eddy runs as root): their uids must traverse every directory
// above their work dirs, which a data dir (0700, often under /root) does
// not allow.
const processRunDir = "/run/eddy"

// processWorkRoot is where the process backend of dataDir keeps its
// containers' work dirs: DATA-DIR/containers, or, when it isolates,
// /run/eddy/process-HASH (HASH of the data dir's absolute path, so a
// restart on the same data dir finds what a killed run left).
func processWorkRoot(dataDir string) (string, error) {
	if !process.Isolating(process.Isolation{}) {
		return filepath.Join(dataDir, "containers"), nil
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(processRunDir, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(processRunDir, 0o711); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(processRunDir, "process-"+hex.EncodeToString(sum[:6])), nil
}

// tenantLister is what warnSharedBackend needs of the store.
type tenantLister interface {
	ListIdentities(ctx context.Context, namespace string) ([]whisk.Identity, error)
}

// warnSharedBackend warns, once, when the process backend runs the actions
// of namespaces other than guest: always in a cluster (st nil), and in
// standalone when the store has keys of other namespaces. (The backend
// also warns when a container of another namespace starts later.)
func warnSharedBackend(ctx context.Context, b container.Backend, st tenantLister, log *slog.Logger) {
	pb, ok := b.(*process.Backend)
	if !ok {
		return
	}
	if st == nil {
		pb.WarnShared("a cluster invoker serves every namespace")
		return
	}
	ids, err := st.ListIdentities(ctx, "")
	if err != nil {
		log.Warn("listing namespaces", "err", err)
		return
	}
	for _, id := range ids {
		if id.Namespace != whisk.GuestNamespace {
			pb.WarnShared("the store has keys of namespace " + id.Namespace)
			return
		}
	}
}
