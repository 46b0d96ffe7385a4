package scheduler_test

import (
	"testing"

	"github.com/eddy-faas/eddy/internal/testenv"
)

// TestMain fails the package when a test leaves a goroutine running
// (but for etcd's own peer connections: its tests stop and restart members).
func TestMain(m *testing.M) { testenv.Main(m, testenv.EtcdPeerHTTP...) }
