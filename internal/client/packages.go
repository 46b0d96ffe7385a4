package client

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// PackagePut is the body of PUT .../packages/NAME. Every field is
// optional; Binding set makes a binding (wsk package bind).
type PackagePut struct {
	Namespace   string         `json:"namespace,omitempty"`
	Name        string         `json:"name,omitempty"`
	Binding     *whisk.Binding `json:"binding,omitempty"`
	Annotations whisk.Params   `json:"annotations,omitempty"`
	Parameters  whisk.Params   `json:"parameters,omitempty"`
	Publish     *bool          `json:"publish,omitempty"`
}

// PutPackage creates (overwrite=false) or updates a package or binding
// named name (plain or fully qualified) and returns it as stored.
func (c *Client) PutPackage(ctx context.Context, name string, p *PackagePut, overwrite bool) (*whisk.Package, error) {
	resp, err := c.Do(ctx, Request{
		Method: http.MethodPut,
		Path:   c.collectionPath("packages", name),
		Query:  "overwrite=" + strconv.FormatBool(overwrite),
		Body:   p,
	})
	if err != nil {
		return nil, err
	}
	out := new(whisk.Package)
	if decode(resp, out) != nil {
		return nil, nil
	}
	return out, nil
}

// GetPackage returns a package with its actions and feeds.
func (c *Client) GetPackage(ctx context.Context, name string) (*whisk.PackageWithActions, error) {
	out := new(whisk.PackageWithActions)
	if err := c.get(ctx, c.collectionPath("packages", name), "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeletePackage deletes a package or binding.
func (c *Client) DeletePackage(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: c.collectionPath("packages", name)})
	return err
}

// PackageSummary is a package as a list shows it; Binding is false for a
// package and {namespace, name} for a binding.
type PackageSummary struct {
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	Version     string       `json:"version"`
	Publish     bool         `json:"publish"`
	Annotations whisk.Params `json:"annotations"`
	Updated     int64        `json:"updated"`
}

// ListPackages lists the packages of the client's namespace, or of ns
// (another namespace's: its shared packages).
func (c *Client) ListPackages(ctx context.Context, ns string, opt ListOptions) ([]PackageSummary, error) {
	if ns == "" {
		ns = c.namespace
	}
	var out []PackageSummary
	if err := c.get(ctx, nsPath(ns)+"/packages", opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ListPackageActions lists the actions of a package (or of a binding's
// target), named plain or fully qualified ("/ns/pkg").
func (c *Client) ListPackageActions(ctx context.Context, pkg string, opt ListOptions) ([]whisk.Action, error) {
	var out []whisk.Action
	path := strings.TrimSuffix(c.collectionPath("actions", pkg), "/") + "/"
	if err := c.get(ctx, path, opt.query(), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ListCollection lists any collection of a namespace (triggers, rules …)
// into out, for commands that only print what they get (eddy list).
func (c *Client) ListCollection(ctx context.Context, collection, ns string, opt ListOptions, out any) error {
	if ns == "" {
		ns = c.namespace
	}
	return c.get(ctx, nsPath(ns)+"/"+collection, opt.query(), out)
}

// GetFromCollection reads one entity of any collection into out.
func (c *Client) GetFromCollection(ctx context.Context, collection, name string, out any) error {
	return c.get(ctx, c.collectionPath(collection, name), "", out)
}
