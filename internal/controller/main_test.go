package controller

import (
	"testing"

	"github.com/eddy-faas/eddy/internal/testenv"
)

// TestMain fails the package when a test leaves a goroutine running.
func TestMain(m *testing.M) { testenv.Main(m) }
