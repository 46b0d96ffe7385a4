// Command eddy-runtime is Eddy's runtime server on its own: the OpenWhisk
// runtime protocol (/init, /run) for one action, with the python and native
// launchers. It imports only the standard library and builds with
// CGO_ENABLED=0 into a static binary for FROM-scratch images. See package
// internal/runtime for the flags.
package main

import (
	"os"

	"github.com/eddy-faas/eddy/internal/runtime"
)

func main() {
	os.Exit(runtime.Main(os.Args[1:], os.Stdout, os.Stderr))
}
