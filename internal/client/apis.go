package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ---------------------------------------------------------------------------
// API gateway (the web actions of /whisk.system/apimgmt, as wsk calls them)

const apimgmtPath = "/api/v1/web/whisk.system/apimgmt/"

// apimgmtQuery is the query every apimgmt call carries: wsk's access token
// and the key's UUID as the tenant.
func (c *Client) apimgmtQuery(extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("accesstoken", "DUMMY TOKEN")
	uuid, _, _ := strings.Cut(c.auth, ":")
	q.Set("spaceguid", uuid)
	return q.Encode()
}

// APIAction is the action of an API endpoint (createApi's apidoc.action).
type APIAction struct {
	Name          string `json:"name"`
	Namespace     string `json:"namespace"`
	BackendMethod string `json:"backendMethod"`
	BackendURL    string `json:"backendUrl"`
	AuthKey       string `json:"authkey"`
	SecureKey     any    `json:"secureKey,omitempty"`
}

// APIDoc is createApi's apidoc: one endpoint, or a whole swagger document.
type APIDoc struct {
	Namespace      string           `json:"namespace"`
	APIName        string           `json:"apiName,omitempty"`
	BasePath       string           `json:"gatewayBasePath,omitempty"`
	RelPath        string           `json:"gatewayPath,omitempty"`
	Method         string           `json:"gatewayMethod,omitempty"`
	ID             string           `json:"id,omitempty"`
	Action         *APIAction       `json:"action,omitempty"`
	PathParameters []map[string]any `json:"pathParameters,omitempty"`
	Swagger        string           `json:"swagger,omitempty"`
}

// API is an API as the gateway returns it.
type API struct {
	GwAPIURL string         `json:"gwApiUrl"`
	APIDoc   map[string]any `json:"apidoc"`
}

// CreateAPI adds an endpoint (or a swagger document) to an API.
func (c *Client) CreateAPI(ctx context.Context, doc APIDoc, responseType string) (*API, error) {
	q := url.Values{}
	if responseType != "" {
		q.Set("responsetype", responseType)
	}
	resp, err := c.Do(ctx, Request{Method: http.MethodPost, Path: apimgmtPath + "createApi.http",
		Query: c.apimgmtQuery(q), Body: map[string]any{"apidoc": doc}})
	if err != nil {
		return nil, err
	}
	var out API
	return &out, decode(resp, &out)
}

// GetAPIs returns the APIs of the caller's namespace, or the one of a base
// path or API name.
func (c *Client) GetAPIs(ctx context.Context, basePathOrName string, opt ListOptions) ([]API, error) {
	q := url.Values{"limit": {strconv.Itoa(opt.Limit)}, "skip": {strconv.Itoa(opt.Skip)}}
	if basePathOrName != "" {
		q.Set("basepath", basePathOrName)
	}
	var out struct {
		APIs []struct {
			Value API `json:"value"`
		} `json:"apis"`
	}
	if err := c.get(ctx, apimgmtPath+"getApi.http", c.apimgmtQuery(q), &out); err != nil {
		return nil, err
	}
	apis := make([]API, len(out.APIs))
	for i, a := range out.APIs {
		apis[i] = a.Value
	}
	return apis, nil
}

// DeleteAPI deletes an API, one of its paths, or one verb of a path.
func (c *Client) DeleteAPI(ctx context.Context, basePathOrName, relPath, verb string) error {
	q := url.Values{"basepath": {basePathOrName}}
	if relPath != "" {
		q.Set("relpath", relPath)
	}
	if verb != "" {
		q.Set("operation", strings.ToUpper(verb))
	}
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: apimgmtPath + "deleteApi.http", Query: c.apimgmtQuery(q)})
	return err
}
