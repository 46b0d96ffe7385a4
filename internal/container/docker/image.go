package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// MsgPullFailed is OpenWhisk's message for an image that cannot be pulled.
func MsgPullFailed(ref string) string {
	return fmt.Sprintf("Failed to pull container image '%s'.", ref)
}

// ensureImage pulls ref unless it is present locally. A failed pull is an
// Invalid error with OpenWhisk's message (a developer error: the action
// names an image that cannot be had).
func (b *Backend) ensureImage(ctx context.Context, ref string) error {
	_, err := b.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return whisk.E("docker.Create", whisk.Internal, "", fmt.Errorf("inspect image %s: %w", ref, err))
	}
	b.log.Info("pulling a missing image", "image", ref)
	if err := b.pull(ctx, ref); err != nil {
		if ctx.Err() != nil {
			return whisk.E("docker.Create", whisk.Timeout, "", fmt.Errorf("pull %s: %w", ref, ctx.Err()))
		}
		return whisk.E("docker.Create", whisk.Invalid, MsgPullFailed(ref), err)
	}
	return nil
}

// pull pulls ref within PullTimeout; the Engine reports failures inside
// the progress stream, so the stream is read to its end.
func (b *Backend) pull(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PullTimeout)
	defer cancel()
	rc, err := b.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	return ReadStream(rc, nil)
}

// ReadStream reads an Engine progress stream (the JSON messages of pull,
// build and import), passes each message's text ("stream" or "status") to
// text when it is not nil, and returns the first error the stream reports.
func ReadStream(r io.Reader, text func(string)) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if text != nil && m.Stream+m.Status != "" {
			text(m.Stream + m.Status)
		}
	}
}
