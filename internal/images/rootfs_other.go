//go:build !linux

package images

import (
	"context"
	"errors"
)

// rootfs needs Linux (debootstrap, file ownership); other systems can
// build the native image only.
func (b *builder) rootfs(ctx context.Context, s rootfsSpec) (ref, version, id string, made bool, err error) {
	return "", "", "", false, errors.New("building a Debian root file system needs Linux")
}
